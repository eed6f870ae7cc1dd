"""Where stock Invoke would break the README's promises, the pipeline's tasks step in.

Projects run our tasks with the stock ``invoke`` program, which loads ``invoke.yaml`` before any task
code runs, and whose defaults break the promises of the README:

- a malformed ``invoke.yaml`` is a traceback, even for ``invoke --list``;
- ``INVOKE_PIPELINE_*`` variables are cast by Invoke's rules ("false" is true, a list is a crash);
- a usage mistake (unknown task or flag, a flag without its value) exits 1, our "rolled back".

``install()`` runs when ``pipeline.tasks`` is imported (inside Invoke's collection loading, before the
project file is read) and wraps two seams: Invoke's YAML/JSON file loaders, which from then on read
strictly and keep the ``pipeline`` section for us (so Invoke never merges or casts it), and the task
parsing step, whose errors become exit 2 with a usage line. ``layers()`` gives the tasks the
``pipeline`` section of each file Invoke loaded, or the error that file has. If Invoke's internals
ever change shape, nothing is wrapped and Invoke's own behaviour remains.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from pipeline.errors import ConfigError

# Each config file Invoke loaded: its ``pipeline`` section, or why it cannot be used.
_NEEDS = re.compile(r"Flag <Argument: (\w+)[^>]*> needed value and was not given one")
_FILES: dict[str, dict[str, Any] | ConfigError] = {}
_LEVELS = ("system", "user", "project", "runtime")


def shown(path: str) -> str:
    """A file's name as a user would type it: relative to the current directory when inside it."""
    relative = os.path.relpath(path) if os.path.isabs(path) else path
    return path if relative.startswith("..") else relative


def layers(config: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file, pipeline section)`` of each config file Invoke loaded, lowest level first.

    Raises the ConfigError of the first file that is broken, and of a ``-f`` file that is missing.
    """
    for level in _LEVELS:
        path = getattr(config, f"_{level}_path", None)
        if level == "runtime" and path and not getattr(config, "_runtime_found", None):
            raise ConfigError(f"{shown(path)}: no such configuration file (given with -f)")
        if not path:
            continue
        found = _FILES.get(os.path.abspath(os.path.expanduser(path)))
        if isinstance(found, ConfigError):
            raise found
        if found:
            yield shown(path), found


def broken(config: Any) -> str | None:
    """Why the configuration cannot be used, or None."""
    try:
        list(layers(config))
    except ConfigError as exc:
        return str(exc)
    return None


def install() -> None:
    """Wrap Invoke's file loaders and task parsing (once; a no-op if Invoke has changed shape)."""
    from invoke.config import Config
    from invoke.program import Program

    if getattr(Config, "_pipeline_guarded", False):
        return
    if not all(hasattr(Config, name) for name in ("_load_yaml", "_load_yml", "_load_json")):
        return
    if not hasattr(Program, "parse_tasks") or not hasattr(Program, "parse_cleanup"):
        return
    Config._load_yaml = Config._load_yml = Config._load_json = _load  # type: ignore[method-assign,assignment]
    Config._pipeline_guarded = True  # type: ignore[attr-defined]
    Program.parse_tasks = _usage_errors(Program.parse_tasks)  # type: ignore[method-assign,assignment]
    Program.parse_cleanup = _listing_warns(Program.parse_cleanup)  # type: ignore[method-assign,assignment]


def _load(self: Any, path: str) -> dict[str, Any]:
    """Invoke's loader for one file: the file without ``pipeline``, whose section we keep."""
    from pipeline.configfile import pipeline_section, read_config_file

    path = os.path.abspath(os.path.expanduser(str(path)))
    name = shown(path)
    try:
        data = read_config_file(path, name)  # FileNotFoundError: Invoke tries the next suffix
        _FILES[path] = pipeline_section(data, name) or {}
    except ConfigError as exc:
        _FILES[path] = exc
        return {}
    return {key: value for key, value in (data or {}).items() if key != "pipeline"}


def _usage_errors(parse_tasks: Callable[[Any], None]) -> Callable[[Any], None]:
    def parse(self: Any) -> None:
        from invoke.exceptions import Exit, ParseError

        try:
            parse_tasks(self)
        except ParseError as exc:
            raise Exit(_usage(self, str(exc), getattr(exc.context, "name", None)), code=2) from None
        except ValueError as exc:  # a flag's value of the wrong type, e.g. --limit abc
            raise Exit(_usage(self, *_bad_value(self, str(exc))), code=2) from None

    return parse


def _listing_warns(parse_cleanup: Callable[[Any], None]) -> Callable[[Any], None]:
    def cleanup(self: Any) -> None:
        if self.args.list.value:
            problem = broken(self.config)
            if problem:
                print(f"warning: the pipeline tasks will refuse to run: {problem}", file=sys.stderr)
        try:
            parse_cleanup(self)
        except BrokenPipeError:  # `invoke --list | head`: the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(0) from None

    return cleanup


def _bad_value(program: Any, message: str) -> tuple[str, str | None]:
    """``'abc' is not a whole number`` for the flag that got it, and the task it belongs to."""
    value = message.rsplit(": ", 1)[-1]
    kind = "a whole number" if "int()" in message else "a number"
    argv = list(getattr(program.core, "unparsed", []) or [])
    tasks = getattr(program.collection, "tasks", {})
    name = None
    flag = "a flag"
    for i, word in enumerate(argv):
        if repr(word) == value or f"'{word}'" == value:
            flag = argv[i - 1] if i and argv[i - 1].startswith("-") else flag
            names = [w for w in argv[:i] if w in tasks]
            name = names[-1] if names else None
            break
    return f"{flag}: {value} is not {kind}", name


def _usage(program: Any, message: str, name: str | None) -> str:
    """``error: ...`` and a usage line for the task concerned (or the list of tasks)."""
    message = re.sub(r"No idea what (.*) is!", r"unknown task or flag \1", message)
    message = _NEEDS.sub(r"--\1 needs a value", message).rstrip("!")
    message = message.replace("_", "-") if message.startswith("--") else message
    binary = program_name()
    tasks = getattr(program.collection, "tasks", {})
    if name and name in tasks:
        return f"error: {name}: {message}\n{usage(binary, name, tasks[name].body)}"
    names = ", ".join(sorted(tasks))
    return f"error: {message}\nusage: {binary} TASK [--flags]; tasks: {names} (`{binary} --list`)"


def program_name() -> str:
    """How the user ran us: ``invoke``, ``inv`` or ``pipeline`` (``invoke`` under ``python -m``/``-c``)."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "invoke" if not called or called.startswith("-") or called.endswith(".py") else called


def usage(binary: str, name: str, body: Callable[..., Any]) -> str:
    """``usage: invoke deploy --env ENV [--version VERSION] ...`` from the task's signature."""
    import inspect

    words = []
    for parameter in list(inspect.signature(body).parameters.values())[1:]:
        flag = "--" + parameter.name.replace("_", "-")
        metavar = parameter.name.upper()
        if parameter.default is inspect.Parameter.empty:
            words.append(f"{flag} {metavar}")
        elif isinstance(parameter.default, bool):
            words.append(f"[{flag}]")
        else:
            words.append(f"[{flag} {metavar}]")
    return f"usage: {binary} {name} {' '.join(words)} (`{binary} {name} --help`)".replace("  ", " ")

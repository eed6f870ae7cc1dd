"""Invoke's configuration files read strictly: bounded, one clear line for every way they can be wrong.

PyYAML alone takes a duplicate key silently (the last wins), builds anchors that refer to themselves
(a crash much later), and reports a tab as a traceback. Here each of those is a ``ConfigError`` that
names the file, and where the parser knows it, the line and column.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from pipeline.errors import ConfigError

# A configuration file is a few kilobytes; anything this big is a mistake (or an attack).
MAX_BYTES = 1 << 20
# Anchors may share values; expanded, a document stays below this many values.
MAX_VALUES = 100_000


def read_config_file(path: str, shown: str) -> Any:
    """The data of a YAML or JSON file; raises FileNotFoundError (invoke tries the next suffix)."""
    text = _read_text(path, shown)
    if path.endswith(".json"):
        try:
            data = json.loads(text, object_pairs_hook=lambda pairs: _unique(pairs, shown))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{shown}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    else:
        data = _load_yaml(text, shown)
    _check_size(data, shown)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{shown}: the top level must be a mapping of keys, got {_kind(data)}")
    return data


def pipeline_section(data: Any, shown: str) -> dict[str, Any] | None:
    """The ``pipeline`` mapping of a file's data (None when absent or empty)."""
    section = data.get("pipeline") if isinstance(data, dict) else None
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"{shown}: pipeline: expected a mapping of keys, got {_kind(section)}")
    return section


def _read_text(path: str, shown: str) -> str:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{shown}: not a regular file")
    if info.st_size > MAX_BYTES:
        raise ConfigError(f"{shown}: {info.st_size} bytes; a configuration file is at most {MAX_BYTES}")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{shown}: more than {MAX_BYTES} bytes; a configuration file is smaller")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{shown}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    if "\0" in text:
        raise ConfigError(f"{shown}: contains a NUL byte (offset {text.index(chr(0))}); not a text file")
    return text


def _yaml() -> Any:
    """Invoke's own copy of PyYAML, which Invoke has already imported; else PyYAML itself."""
    import importlib

    try:
        return importlib.import_module("invoke.vendor.yaml")
    except ImportError:  # pragma: no cover - an Invoke without its vendored copy
        return importlib.import_module("yaml")


def _load_yaml(text: str, shown: str) -> Any:
    yaml = _yaml()

    class StrictLoader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        """SafeLoader that refuses duplicate keys (a merge ``<<`` may still be overridden)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                if key in seen:
                    raise ConfigError(
                        f"{shown}: line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                        f"(first on line {seen[key]})"
                    )
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "not valid YAML"
        if "could not determine a constructor" in problem:
            problem = f"the tag {problem.split('tag ', 1)[-1]} is not allowed (plain YAML only)"
        raise ConfigError(f"{shown}: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise ConfigError(f"{shown}: nested too deeply") from None


def _check_size(data: Any, shown: str) -> None:
    """Refuse anchors that refer to themselves, and documents that expand past ``MAX_VALUES``."""
    count = 0
    stack: list[tuple[Any, frozenset[int]]] = [(data, frozenset())]
    while stack:
        value, parents = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"{shown}: more than {MAX_VALUES} values once anchors are expanded")
        if isinstance(value, (dict, list)):
            if id(value) in parents:
                raise ConfigError(f"{shown}: an anchor refers to itself (a recursive alias)")
            inside = parents | {id(value)}
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, inside) for child in children)


def _unique(pairs: list[tuple[str, Any]], shown: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError(f"{shown}: duplicate key {key!r}")
        result[key] = value
    return result


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )

"""The configuration's levels laid over each other, remembering which file or variable set each key.

Invoke's levels (defaults, system, user, project, ``-f`` file) are merged here rather than by Invoke,
so that an error names the file that set the key, and ``INVOKE_PIPELINE_*`` variables are read by the
declared type of their key: ``false``, ``no``, ``off`` and ``0`` are false; a list is JSON.
"""

from __future__ import annotations

import difflib
import json
import math
import types
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from pipeline.errors import ConfigError

ENV_PREFIX = "INVOKE_PIPELINE_"
Path = tuple[str, ...]
# Strings longer than this are a mistake in a configuration (a pasted file, a runaway anchor).
MAX_STRING = 10_000
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


class Layers:
    """Merged configuration data, and where each key path came from."""

    def __init__(self, base: Mapping[str, Any], default_source: str) -> None:
        self.data: dict[str, Any] = json.loads(json.dumps(base))
        self.default_source = default_source
        self.origins: dict[Path, str] = {}

    def add(self, source: str, section: Mapping[str, Any]) -> None:
        """Lay one file's ``pipeline`` section over what is there."""
        self.data = self._merged(self.data, _plain(section), (), source)

    def _merged(self, base: Any, override: Any, path: Path, source: str) -> Any:
        self.origins[path] = source
        if isinstance(base, dict) and isinstance(override, dict):
            merged = dict(base)
            for key, value in override.items():
                merged[key] = self._merged(base.get(key), value, (*path, key), source)
            return merged
        return override

    def source_of(self, path: Path) -> str:
        """The file (or variable) that set ``path``, or the closest key above it."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return self.default_source

    def apply_environ(self, environ: Mapping[str, str], root: type) -> None:
        """Lay the ``INVOKE_PIPELINE_*`` variables over the files, cast by their key's type."""
        given = {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
        if not given:
            return
        names: dict[str, tuple[Path, Any]] = {}
        for path, kind in _settable(self.data, root, ()):
            name = ENV_PREFIX + "_".join(path).upper()
            if name in names and names[name][0] != path:
                raise ConfigError(f"{name}: names both pipeline.{'.'.join(names[name][0])} and {_dot(path)}")
            names[name] = (path, kind)
        for name, text in sorted(given.items()):
            if name not in names:
                close = difflib.get_close_matches(name, list(names), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"{name}: no such setting{hint}; variables name keys of pipeline")
            path, kind = names[name]
            value = _cast(name, path, kind, text)
            target = self.data
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
            self.origins[path] = name


def check_values(data: Any, path: Path = ()) -> Iterable[str]:
    """Strings with NUL or other control characters, absurdly long strings, NaN and infinities."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from check_values(value, (*path, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from check_values(value, (*path[:-1], f"{path[-1]}[{i}]") if path else (f"[{i}]",))
    elif isinstance(data, str):
        if len(data) > MAX_STRING:
            yield f"{_dot(path)}: {len(data)} characters; at most {MAX_STRING}"
        elif any((ord(c) < 32 and c not in "\t\n") or ord(c) == 127 for c in data):
            bad = next(c for c in data if (ord(c) < 32 and c not in "\t\n") or ord(c) == 127)
            yield f"{_dot(path)}: contains the control character {bad!r}"
    elif isinstance(data, float) and not math.isfinite(data):
        yield f"{_dot(path)}: {data} is not a number this setting can use"


def _settable(data: Any, kind: Any, path: Path) -> Iterable[tuple[Path, Any]]:
    """Every key path a variable may set, with its declared type (a tagged union: the tagged one)."""
    kind = _tagged(kind, data)
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        for field in msgspec.structs.fields(kind):
            value = data.get(field.name) if isinstance(data, dict) else None
            yield from _settable(value, field.type, (*path, field.name))
    elif get_origin(kind) is dict and isinstance(data, dict):
        for key, value in data.items():
            yield from _settable(value, get_args(kind)[1], (*path, str(key)))
    elif get_origin(kind) is not dict:
        yield path, kind


def _cast(name: str, path: Path, kind: Any, text: str) -> Any:
    where = f"{name}: {_dot(path)}"
    if kind is bool:
        if text.strip().lower() in _TRUE | _FALSE:
            return text.strip().lower() in _TRUE
        raise ConfigError(f"{where}: {text!r} is not true or false (true/false, yes/no, on/off, 1/0)")
    if kind in (int, float):
        try:
            number = int(text) if kind is int else float(text)
        except ValueError:
            raise ConfigError(f"{where}: {text!r} is not a {'whole ' if kind is int else ''}number") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ConfigError(f"{where}: {text!r} is not a number this setting can use")
        return number
    if get_origin(kind) is tuple and _unwrap(get_args(kind)[0]) is str:
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f'{where}: a list; give it as JSON, e.g. ["one", "two"] (got {text!r})')
        return items
    if kind is str or get_origin(kind) is Literal:
        return text
    raise ConfigError(f"{where}: cannot be set from a variable; set it in invoke.yaml")


def _tagged(kind: Any, data: Any) -> Any:
    """The member of a union of tagged structs that ``data``'s tag names (the union otherwise)."""
    if not (isinstance(kind, types.UnionType) or get_origin(kind) is Union) or not isinstance(data, dict):
        return kind
    for option in get_args(kind):
        config = getattr(option, "__struct_config__", None)
        if config is not None and config.tag_field and data.get(config.tag_field) == config.tag:
            return option
    return kind


def _unwrap(kind: Any) -> Any:
    """``X`` of ``X | None``; a struct of ``str | X``."""
    if isinstance(kind, types.UnionType) or get_origin(kind) is Union:
        options = [k for k in get_args(kind) if k is not type(None)]
        structs = [k for k in options if isinstance(k, type) and issubclass(k, msgspec.Struct)]
        if structs and len(options) > 1:
            return object  # a string or a mapping: not settable from one variable
        return structs[0] if structs else options[0] if len(options) == 1 else kind
    return kind


def _dot(path: Path) -> str:
    return "pipeline" + "".join(f".{p}" if not p.startswith("[") else p for p in path)


def _plain(value: Any) -> Any:
    """Invoke's DataProxy and friends as plain dicts and lists."""
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

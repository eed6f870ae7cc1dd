"""Secrets as a type that hides itself when printed, and a redactor for every text that leaves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar, cast
from urllib.parse import quote

from pipeline.errors import ConfigError

MASK = "***"
# Shorter values are too likely to occur by accident: redacting "abc" would garble every log.
MIN_LENGTH = 4

_T = TypeVar("_T")


class Secret:
    """A secret string: prints as ``***`` everywhere; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that must send it."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(self._value)


class Redactor:
    """Collects secret values and replaces them with ``***`` in text and JSON-like data."""

    def __init__(self, values: Iterable[str | Secret] = ()) -> None:
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: str | Secret) -> None:
        """Hide this value (and its URL-encoded form) from now on; short values are ignored."""
        text = value.reveal() if isinstance(value, Secret) else value
        if len(text) < MIN_LENGTH:
            return
        self._values.add(text)
        self._values.add(quote(text, safe=""))

    def redact(self, text: str) -> str:
        """The text with every occurrence of every secret replaced by ``***``."""
        spans = sorted(_occurrences(text, self._values))
        if not spans:
            return text
        # Overlapping or adjacent occurrences merge into one span, so no fragment of either shows.
        merged = [list(spans[0])]
        for start, end in spans[1:]:
            if start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        parts, position = [], 0
        for start, end in merged:
            parts += [text[position:start], MASK]
            position = end
        parts.append(text[position:])
        return "".join(parts)

    def redact_data(self, obj: _T) -> _T:
        """``redact`` applied to every string in nested dicts, lists and tuples (keys included)."""
        if isinstance(obj, str):
            return cast(_T, self.redact(obj))
        if isinstance(obj, Mapping):
            return cast(_T, {self.redact_data(k): self.redact_data(v) for k, v in obj.items()})
        if isinstance(obj, list):
            return cast(_T, [self.redact_data(v) for v in obj])
        if isinstance(obj, tuple):
            return cast(_T, tuple(self.redact_data(v) for v in obj))
        return obj

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"


def _occurrences(text: str, values: Iterable[str]) -> Iterable[tuple[int, int]]:
    """Every (start, end) of every value in the text, overlapping occurrences included."""
    for value in values:
        start = text.find(value)
        while start != -1:
            yield start, start + len(value)
            start = text.find(value, start + 1)


def secret_from_env(env: Mapping[str, str], name: str, key: str) -> Secret:
    """The secret held by environment variable ``name``; ``key`` is the config path naming it."""
    # A secret pasted into CI with a trailing newline is the same secret.
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{key}: environment variable {name} is not set")
    return Secret(value)

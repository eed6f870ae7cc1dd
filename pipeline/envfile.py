"""A compose ``.env`` file as text: parsed as compose reads it, changed, and written back.

Pure: text in, values out. The rules are compose's own (compose-go's dotenv reader): ``KEY=VALUE``
with an optional ``export``; an unquoted value ends at `` #`` and loses its trailing blanks, and
``$VAR`` in it is expanded; a single-quoted value is literal (``\\'`` is a quote); a double-quoted
one knows ``\\n``, ``\\\\``, ``\\"`` and ``\\$`` and expands ``$VAR``; a quoted value may span lines.
A change keeps every other line as it was (order, comments, blanks, formatting), and a value is
written so that compose reads back exactly that value, ``$`` included, never expanded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.errors import InputError
from pipeline.terminal import printable

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=[ \t]*")
_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]*\Z")  # written unquoted: nothing compose would read apart
_FORBIDDEN = ("\n", "\r", "\0")
MAX_VALUE = 64 * 1024  # characters in one value
KEEP_BACKUPS = 10  # old files each host keeps (the newest)


@dataclass(frozen=True)
class Line:
    """One entry of the file: a ``KEY=VALUE`` (``key`` set, possibly over several lines), or any other
    line kept as it is (a comment, a blank, something compose would refuse)."""

    raw: str  # the text as in the file, without the final newline
    key: str | None = None
    value: str = ""  # as compose reads it, before ``$`` expansion
    literal: bool = True  # no ``$`` expansion can change it (single-quoted, or no ``$`` at all)


@dataclass(frozen=True)
class Changes:
    """What was asked: keys to set (in order, the last of a repeated key wins) and keys to unset."""

    sets: tuple[tuple[str, str], ...] = ()
    unsets: tuple[str, ...] = ()

    def values(self) -> list[str]:
        """Every value given (each a secret)."""
        return [value for _, value in self.sets]


@dataclass(frozen=True)
class Diff:
    """What a change does to one file, by key name only."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the file stays as it is."""
        return not (self.added or self.changed or self.removed)

    @property
    def set_keys(self) -> tuple[str, ...]:
        """Keys that get a (new) value."""
        return (*self.added, *self.changed)

    def describe(self) -> str:
        """``added A, B; changed C; removed D`` (``no change`` when empty)."""
        parts = [
            f"{word} {', '.join(keys)}"
            for word, keys in (("added", self.added), ("changed", self.changed), ("removed", self.removed))
            if keys
        ]
        return "; ".join(parts) or "no change"


@dataclass(frozen=True)
class Edited:
    """A file after a change: its text, what changed, and every value it held or holds."""

    text: str
    diff: Diff
    values: list[str] = field(default_factory=list)


# -- reading -------------------------------------------------------------------------------------


def parse(text: str) -> list[Line]:
    """Every entry of a ``.env`` text, in order; nothing is refused (unknown lines are kept)."""
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    lines: list[Line] = []
    index = 0
    while index < len(rows):
        match = _ASSIGNMENT.match(rows[index])
        if match is None or rows[index].lstrip().startswith("#"):
            lines.append(Line(rows[index]))
            index += 1
            continue
        taken, value, literal = _value(rows, index, match.end())
        lines.append(Line("\n".join(rows[index : index + taken]), match[1], value, literal))
        index += taken
    return lines


def _value(rows: Sequence[str], index: int, start: int) -> tuple[int, str, bool]:
    """How many rows the value at ``rows[index][start:]`` takes, the value, and whether it is literal."""
    rest = rows[index][start:]
    if rest[:1] in ("'", '"'):
        quote, body, taken = rest[0], rest[1:], 1
        while True:
            end = _closing(body, quote)
            if end is not None:
                inner = body[:end]
                if quote == "'":
                    return taken, inner.replace("\\'", "'"), True
                return taken, _unescape(inner), "$" not in inner.replace("\\$", "")
            if index + taken >= len(rows):  # never closed: compose refuses it; keep it as it is
                return taken, rest, False
            body += "\n" + rows[index + taken]
            taken += 1
    value = re.split(r"\s#", rest, maxsplit=1)[0].rstrip()
    return 1, value, "$" not in value


def _closing(body: str, quote: str) -> int | None:
    """Where the unescaped closing quote is, if any."""
    position = 0
    while position < len(body):
        if body[position] == "\\" and position + 1 < len(body):
            position += 2
            continue
        if body[position] == quote:
            return position
        position += 1
    return None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}


def _unescape(inner: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), inner)


def values_of(lines: Sequence[Line]) -> list[str]:
    """Every value in the file (each a secret)."""
    return [line.value for line in lines if line.key is not None]


# -- writing -------------------------------------------------------------------------------------


def render_value(value: str) -> str:
    """The value as written after ``KEY=``, read back by compose as exactly ``value``."""
    if _PLAIN.match(value):
        return value
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def edit(text: str, changes: Changes) -> Edited:
    """The file with ``changes`` applied: a set key keeps its place (its later repeats go), a new key
    goes at the end, an unset key's lines go; every other line stays byte for byte."""
    lines = parse(text)
    wanted = dict(changes.sets)
    present = {line.key for line in lines if line.key is not None}
    current = {line.key: line for line in lines if line.key is not None}  # the last one is what counts
    out: list[str] = []
    written: set[str] = set()
    for line in lines:
        key = line.key
        if key is None or (key not in wanted and key not in changes.unsets):
            out.append(line.raw)
        elif key in wanted and key not in written:
            keep = _same(current[key], wanted[key]) and not _repeated(lines, key)
            out.append(line.raw if keep else f"{key}={render_value(wanted[key])}")
            written.add(key)
    added = [key for key in wanted if key not in present]
    out += [f"{key}={render_value(wanted[key])}" for key in added]
    changed = [k for k in wanted if k in present and not _same(current[k], wanted[k])]
    changed += [k for k in wanted if k in present and _repeated(lines, k) and k not in changed]
    removed = [key for key in changes.unsets if key in present]
    new_text = "\n".join(out) + ("\n" if out else "")
    return Edited(new_text, Diff(tuple(added), tuple(changed), tuple(removed)), values_of(lines))


def _same(line: Line, value: str) -> bool:
    return line.literal and line.value == value


def _repeated(lines: Sequence[Line], key: str) -> bool:
    return sum(1 for line in lines if line.key == key) > 1


# -- what was asked ------------------------------------------------------------------------------


def check_key(key: str, where: str) -> str:
    """A variable name compose and a shell accept, else an input error naming where it came from."""
    if not KEY.match(key):
        raise InputError(
            f"{where}: {printable(repr(key), keep_lines=False)} is not a variable name "
            "(letters, digits and _, not starting with a digit)"
        )
    return key


def check_value(key: str, value: str, where: str) -> str:
    """A value on one line (never shown: the error names only its key)."""
    if any(c in value for c in _FORBIDDEN):
        raise InputError(f"{where}: the value of {key} holds a newline, carriage return or NUL")
    if len(value) > MAX_VALUE:
        raise InputError(f"{where}: the value of {key} is longer than {MAX_VALUE} characters")
    return value


def parse_set(text: str) -> tuple[str, str]:
    """``--set KEY=VALUE``."""
    key, equals, value = text.partition("=")
    if not equals:
        shown = printable(repr(key), keep_lines=False) if KEY.match(key) else "the argument"
        raise InputError(f"--set: {shown} is not KEY=VALUE")
    return check_key(key, "--set"), check_value(key, value, "--set")


def parse_assignments(text: str, name: str) -> list[tuple[str, str]]:
    """The ``KEY=VALUE`` lines of a ``--from-file``: comments and blank lines allowed, ``export``
    allowed, one pair of quotes around a value taken off; nothing else is interpreted (``$`` stays)."""
    pairs = []
    for number, row in enumerate(text.splitlines(), start=1):
        stripped = row.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{name}, line {number}"
        body = stripped[len("export ") :].lstrip() if stripped.startswith("export ") else stripped
        key, equals, value = body.partition("=")
        if not equals:
            raise InputError(f"{where}: not KEY=VALUE")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            raise InputError(f"{where}: the value of {check_key(key, where)} opens a quote it never closes")
        pairs.append((check_key(key, where), check_value(key, value, where)))
    return pairs


def changes_of(sets: Sequence[str], unsets: Sequence[str], from_file: Sequence[tuple[str, str]]) -> Changes:
    """The request as one Changes: the file's pairs first, then ``--set`` (which wins); no key both
    set and unset; at least one change."""
    pairs = [*from_file, *(parse_set(s) for s in sets)]
    keys = [check_key(u, "--unset") for u in unsets]
    both = sorted({k for k, _ in pairs} & set(keys))
    if both:
        raise InputError(f"--unset: {', '.join(both)} is also set; a key is either set or unset")
    if not pairs and not keys:
        raise InputError("setenv: give at least one --set KEY=VALUE, --unset KEY or --from-file FILE")
    ordered = dict(pairs)
    return Changes(tuple(ordered.items()), tuple(dict.fromkeys(keys)))

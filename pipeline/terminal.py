"""Text from hosts made safe to print: a hostile journal or lock must not rewrite the terminal."""

from __future__ import annotations

import re
from collections.abc import Mapping

# C0 controls but newline and tab, DEL, C1 controls, lone surrogates (they cannot be encoded), and the
# bidirectional overrides that reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, keep_lines: bool = True) -> str:
    """Control characters written as escapes (``\\x1b``); newlines and tabs kept when ``keep_lines``."""
    safe = _UNSAFE.sub(_escaped, text)
    if not keep_lines:
        safe = safe.replace("\n", "\\x0a").replace("\t", "\\x09")
    return safe


_VERDICT = re.compile(r"^(FAIL|ok|skip)(?= )", re.M)
_COLOURS = {"FAIL": "\x1b[1;31m", "ok": "\x1b[32m", "skip": "\x1b[2m"}


def colour_wanted(stream: object, environ: Mapping[str, str]) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` set (https://no-color.org) or ``TERM=dumb``."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"


def coloured_verdicts(text: str) -> str:
    """The checklist's ``FAIL``/``ok``/``skip`` at the start of lines, in colour."""
    return _VERDICT.sub(lambda m: f"{_COLOURS[m.group()]}{m.group()}\x1b[0m", text)

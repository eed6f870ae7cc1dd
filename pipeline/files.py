"""Local files read safely: bounded, text only, regular files only, and inside the project.

A VERSION that is a directory, a CHANGELOG.md that is a FIFO or a lock file full of binary
must each give one line a person can act on, never a hang or a Python exception string.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError

KIB = 1024
MIB = 1024 * KIB


class UnreadableFile(InputError):
    """A local file exists but cannot be used as text; the message names it and says why."""


class MissingFile(InputError):
    """A local file does not exist."""


@dataclass(frozen=True)
class Location:
    """A place in a file that a failure points at (for annotations and editors)."""

    file: str
    line: int
    message: str


def read_text(path: Path, what: str, limit: int = MIB, root: Path | None = None) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, or an error naming ``what``.

    With ``root``, a path that resolves (symlinks included) outside that directory is refused.
    The file is stat-ed before it is opened, and opened non-blocking, so a FIFO never hangs.
    """
    if root is not None:
        _inside(path, what, root)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MissingFile(f"{what}: file not found") from None
    except NotADirectoryError:
        raise MissingFile(f"{what}: file not found (a folder on its path is a file)") from None
    except OSError as exc:
        raise UnreadableFile(f"{what}: cannot be read ({_why(exc)})") from None
    _regular(info.st_mode, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnreadableFile(f"{what}: cannot be read ({_why(exc)})") from None
    try:
        _regular(os.fstat(fd).st_mode, what)  # replaced between the stat and the open
        data = _read_at_most(fd, limit + 1, what)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnreadableFile(
            f"{what}: larger than {_size(limit)}, the limit for this file; is it the right file?"
        )
    return decode(data, what)


def read_optional(path: Path, what: str, limit: int = MIB, root: Path | None = None) -> str | None:
    """Like ``read_text``, but None when the file does not exist."""
    try:
        return read_text(path, what, limit, root)
    except MissingFile:
        return None


def decode(data: bytes, what: str) -> str:
    """Bytes as UTF-8 text, refusing binary (NUL bytes) and other encodings with the offset."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise UnreadableFile(f"{what}: binary content (a NUL byte at offset {nul}), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise UnreadableFile(f"{what}: not UTF-8 text (byte 0x{byte:02x} at offset {exc.start})") from None


def _inside(path: Path, what: str, root: Path) -> None:
    try:
        resolved, top = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UnreadableFile(f"{what}: cannot be resolved ({_why(exc)})") from None
    if resolved != top and top not in resolved.parents:
        raise UnreadableFile(f"{what}: resolves to {resolved}, outside the project {top}; refused")


def _regular(mode: int, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        kind = "a directory"
    elif stat.S_ISFIFO(mode):
        kind = "a named pipe (FIFO)"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "not a regular file"
    raise UnreadableFile(f"{what}: is {kind}, not a file" if kind.startswith("a ") else f"{what}: is {kind}")


def _read_at_most(fd: int, count: int, what: str) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        try:
            chunk = os.read(fd, min(left, MIB))
        except OSError as exc:
            raise UnreadableFile(f"{what}: cannot be read ({_why(exc)})") from None
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _why(exc: BaseException) -> str:
    """The reason without the file name Python puts in the message (the caller names the file)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return type(exc).__name__


def _size(limit: int) -> str:
    if limit >= MIB and limit % MIB == 0:
        return f"{limit // MIB} MiB"
    if limit >= KIB and limit % KIB == 0:
        return f"{limit // KIB} KiB"
    return f"{limit} bytes"

"""Files a run writes at its end (``--report``, ``$GITHUB_STEP_SUMMARY``): checked first, never fatal last.

A path that cannot be written is refused before anything is touched (exit 2). If writing fails at
the end anyway (a full disk, a directory removed meanwhile), the run's outcome and exit code stay
what they were, and a warning says what was not written.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from pipeline.errors import InputError


def outputs_of(report_file: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """``{what: path}`` of the files a run will write."""
    files = {}
    if report_file is not None:
        files["--report"] = report_file
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        files["$GITHUB_STEP_SUMMARY"] = summary
    return files


def check_writable(files: Mapping[str, str]) -> None:
    """Refuse (exit 2) a path that cannot be written, without creating or changing anything."""
    for what, path in files.items():
        problem = _problem(path)
        if problem:
            raise InputError(f"{what} {path!r}: {problem}; nothing was touched")


def write(what: str, path: str, text: str, append: bool = False) -> str | None:
    """Write (or append) ``text``; a warning instead of an exception when it cannot be written."""
    try:
        with open(path, "a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        return f"warning: {what} was not written to {path!r} ({exc.strerror or exc})"
    return None


def _problem(path: str) -> str | None:
    if not path or "\0" in path:
        return "not a file name"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            return f"its directory {parent!r} does not exist"
        return None if os.access(parent, os.W_OK) else f"its directory {parent!r} is not writable"
    except OSError as exc:
        return f"cannot be used ({exc.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory"
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        return "is not a regular file"
    return None if os.access(path, os.W_OK) else "is not writable"

"""Alembic migrations read statically: where the revision files are, and the heads they form.

Nothing is imported or run: each revision file is parsed with ``ast`` and only its literal
``revision`` and ``down_revision`` are read, so a checklist never executes project code.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError
from pipeline.files import MIB, Location, MissingFile, read_text

_FALLBACKS = ("alembic/versions", "migrations/versions")
_SOURCE = re.compile(r"^(?!\.#|__init__)(.*\.py)$")  # the revision files alembic loads


@dataclass(frozen=True)
class Revision:
    """One revision file: its id, the revisions it follows, and where it says so."""

    id: str
    down: tuple[str, ...]
    file: str
    line: int


@dataclass(frozen=True)
class Migrations:
    """The project's revision files (``where`` is None when it has no migrations)."""

    where: tuple[str, ...] = ()
    revisions: tuple[Revision, ...] = ()
    problems: tuple[Location, ...] = ()

    def heads(self) -> list[Revision]:
        """The revisions no other revision follows, in file order."""
        followed = {down for r in self.revisions for down in r.down}
        return [r for r in self.revisions if r.id not in followed]


def find(root: Path) -> Migrations | None:
    """Read the project's revision files: from alembic.ini, else a conventional folder; None if none."""
    try:
        ini = read_text(root / "alembic.ini", "alembic.ini", MIB, root)
    except MissingFile:
        ini = None
    except InputError as exc:
        return Migrations(("alembic.ini",), problems=(Location("alembic.ini", 1, str(exc)),))
    if ini is not None:
        located = _from_ini(ini, root)
        if isinstance(located, Location):
            return Migrations(("alembic.ini",), problems=(located,))
        folders = located
    else:
        folders = [root / f for f in _FALLBACKS if (root / f).is_dir()]
        if not folders:
            return None
    return read_revisions(root, folders)


def _from_ini(text: str, root: Path) -> list[Path] | Location:
    import configparser  # only for projects with an alembic.ini: off the everyday preflight path

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, "alembic.ini")
    except configparser.Error as exc:
        line = getattr(exc, "lineno", 1) or 1
        return Location("alembic.ini", line, f"alembic.ini: cannot be parsed ({exc.message})")
    if not parser.has_option("alembic", "script_location"):
        return Location("alembic.ini", 1, "alembic.ini: [alembic] has no script_location")
    here = str(root)
    location = parser.get("alembic", "script_location").replace("%(here)s", here).strip()
    if ":" in location and not Path(location).is_absolute() and not (root / location).exists():
        return Location(
            "alembic.ini",
            1,
            f"alembic.ini: script_location {location!r} is a package resource; "
            "point it at a folder for the checklist to read the revisions",
        )
    versions = parser.get("alembic", "version_locations", fallback="").replace("%(here)s", here)
    if not versions.strip():
        return [root / location / "versions"]
    separator = parser.get("alembic", "version_path_separator", fallback="")
    return [root / p for p in _split(versions, separator)]


def _split(value: str, separator: str) -> list[str]:
    named = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}
    if separator in named:
        return [p.strip() for p in value.split(named[separator]) if p.strip()]
    return [p for p in re.split(r"[\s,]+", value) if p]


def read_revisions(root: Path, folders: Iterable[Path]) -> Migrations:
    """Parse every revision file in the folders (not their sub-folders), without running them."""
    where, revisions, problems = [], [], []
    for folder in folders:
        shown = _relative(folder, root)
        where.append(shown)
        resolved = folder.resolve()
        if resolved != root.resolve() and root.resolve() not in resolved.parents:
            problems.append(
                Location(shown, 1, f"{shown}: the revisions folder is outside the project; refused")
            )
            continue
        if not folder.is_dir():
            problems.append(Location(shown, 1, f"{shown}: the revisions folder does not exist"))
            continue
        for path in sorted(folder.iterdir()):
            if not _SOURCE.match(path.name) or path.is_dir():
                continue
            file = _relative(path, root)
            try:
                parsed = parse_revision(read_text(path, file, MIB, root), file)
            except InputError as exc:
                problems.append(Location(file, 1, str(exc)))
                continue
            if isinstance(parsed, Location):
                problems.append(parsed)
            else:
                revisions.append(parsed)
    problems.extend(_graph_problems(revisions))
    return Migrations(tuple(where), tuple(revisions), tuple(problems))


def parse_revision(text: str, file: str) -> Revision | Location:
    """The literal ``revision`` and ``down_revision`` of a revision file's source."""
    try:
        tree = ast.parse(text, file)
    except SyntaxError as exc:
        return Location(file, exc.lineno or 1, f"{file}:{exc.lineno}: not valid Python ({exc.msg})")
    values: dict[str, tuple[object, int]] = {}
    for node in tree.body:
        target, value = _assignment(node)
        if target in ("revision", "down_revision") and value is not None:
            try:
                values[target] = (ast.literal_eval(value), node.lineno)
            except ValueError:
                return Location(file, node.lineno, f"{file}:{node.lineno}: {target} is not a literal")
    if "revision" not in values:
        return Location(file, 1, f"{file}: has no `revision = '...'`; alembic will refuse it")
    revision, line = values["revision"]
    down, down_line = values.get("down_revision", (None, line))
    if not isinstance(revision, str) or not revision:
        return Location(file, line, f"{file}:{line}: revision must be a non-empty string")
    if isinstance(down, str):
        down = (down,)
    elif down is None:
        down = ()
    if not isinstance(down, (tuple, list)) or not all(isinstance(d, str) for d in down):
        return Location(
            file, down_line, f"{file}:{down_line}: down_revision must be None, a string or a tuple"
        )
    return Revision(revision, tuple(down), file, line)


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _graph_problems(revisions: list[Revision]) -> list[Location]:
    problems = []
    first: dict[str, Revision] = {}
    for r in revisions:
        if r.id in first:
            problems.append(
                Location(r.file, r.line, f"{r.file}: revision {r.id} is also in {first[r.id].file}")
            )
        first.setdefault(r.id, r)
    for r in revisions:
        for down in r.down:
            if down not in first:
                problems.append(Location(r.file, r.line, f"{r.file}: down_revision {down} names no revision"))
    return problems


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)

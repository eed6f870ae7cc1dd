"""Alembic revision files read statically: ids, links, heads, and what stops the heads being known."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.files import Location
from pipeline.migration_heads import Revision, find, parse_revision

MODERN = '''"""add items

Revision ID: 3f2a
Revises: 1b0c
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "3f2a"
down_revision: Union[str, None] = "1b0c"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    revision = "not this one"
    op.add_column("items", sa.Column("x", sa.Text))
'''


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MODERN, Revision("3f2a", ("1b0c",), "v.py", 11)),
        ("revision = 'a'\ndown_revision = None\n", Revision("a", (), "v.py", 1)),
        ("revision = 'm'\ndown_revision = ('a',\n    'b')\n", Revision("m", ("a", "b"), "v.py", 1)),
        ("x = 1\nrevision = 'm'\ndown_revision = ['a', 'b']\n", Revision("m", ("a", "b"), "v.py", 2)),
        ("revision = 'a'\n", Revision("a", (), "v.py", 1)),
    ],
)
def test_revision_and_down_revision_are_read_as_literals(text: str, expected: Revision) -> None:
    assert parse_revision(text, "v.py") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("revision = 'a'\ndown_revision = (\n", "v.py:2: not valid Python ('(' was never closed)"),
        ("import os\nrevision = os.environ['R']\n", "v.py:2: revision is not a literal"),
        ("down_revision = None\n", "v.py: has no `revision = '...'`; alembic will refuse it"),
        ("revision = ''\n", "v.py:1: revision must be a non-empty string"),
        ("revision = 'a'\ndown_revision = 3\n", "v.py:2: down_revision must be None, a string or a tuple"),
    ],
)
def test_what_cannot_be_read_statically_is_a_problem_with_its_line(text: str, message: str) -> None:
    problem = parse_revision(text, "v.py")
    assert isinstance(problem, Location) and problem.message == message


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_project_without_migrations_has_none(tmp_path: Path) -> None:
    assert find(tmp_path) is None


def test_the_conventional_folders_are_found_without_an_ini(tmp_path: Path) -> None:
    write(tmp_path, "alembic/versions/a.py", "revision = 'a'\ndown_revision = None\n")
    write(tmp_path, "alembic/versions/__init__.py", "")
    write(tmp_path, "alembic/versions/.#a.py", "editor lock")
    write(tmp_path, "alembic/versions/README", "not python")
    found = find(tmp_path)
    assert found is not None and found.where == ("alembic/versions",)
    assert [r.id for r in found.heads()] == ["a"] and not found.problems


def test_the_ini_names_the_folders_and_version_locations(tmp_path: Path) -> None:
    write(tmp_path, "alembic.ini", "[alembic]\nscript_location = db\nversion_locations = db/one db/two\n")
    write(tmp_path, "db/one/a.py", "revision = 'a'\n")
    write(tmp_path, "db/two/b.py", "revision = 'b'\ndown_revision = 'a'\n")
    found = find(tmp_path)
    assert found is not None and found.where == ("db/one", "db/two")
    assert [r.id for r in found.heads()] == ["b"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"alembic.ini": "[alembic]\nsqlalchemy.url = x\n"}, "alembic.ini: [alembic] has no script_location"),
        ({"alembic.ini": "no section\n"}, "alembic.ini: cannot be parsed"),
        (
            {"alembic.ini": "[alembic]\nscript_location = gone\n"},
            "gone/versions: the revisions folder does not",
        ),
        ({"alembic.ini": "[alembic]\nscript_location = ../../etc\n"}, "is outside the project; refused"),
        ({"alembic/versions/a.py": "revision = 'a'\ndown_revision = 'zz'\n"}, "down_revision zz names no"),
        (
            {"alembic/versions/a.py": "revision = 'a'\n", "alembic/versions/b.py": "revision = 'a'\n"},
            "alembic/versions/b.py: revision a is also in alembic/versions/a.py",
        ),
        ({"alembic/versions/a.py": "revision = 'caf\xe9'\n".encode("latin-1")}, "not UTF-8 text (byte 0xe9"),
    ],
)
def test_problems_name_the_file(tmp_path: Path, files: dict[str, str | bytes], message: str) -> None:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    found = find(tmp_path)
    assert found is not None
    assert any(message in p.message for p in found.problems), found.problems


def test_revision_files_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    write(
        tmp_path,
        "migrations/versions/a.py",
        f"open({str(marker)!r}, 'w').close()\nrevision = 'a'\ndown_revision = None\n",
    )
    found = find(tmp_path)
    assert found is not None and [r.id for r in found.heads()] == ["a"]
    assert not marker.exists()

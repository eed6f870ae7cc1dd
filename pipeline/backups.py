"""Database backups: their configuration, their names, and what a listing of them says.

A backup is a compressed dump kept on the unit of its database (the host where migrations run),
named so that the name alone says when it was taken, for which release and at which database
revision: ``20261201T041500Z-2.0.0-0003.sql.gz``. A name given on the command line is checked
against that shape before anything is asked of a host, so it can never be a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from pipeline.errors import ExitCode, InputError, PipelineError

DEFAULT_COMMAND = 'pg_dump --no-owner --clean --if-exists "$DATABASE_URL"'
DEFAULT_RESTORE = 'psql --quiet -v ON_ERROR_STOP=1 --single-transaction "$DATABASE_URL"'
NO_REVISION = "none"  # the revision part of a name when no migrations are configured to read one
UNKNOWN = "unknown"  # ... and when the code that serves cannot read it

_STAMP = r"[0-9]{8}T[0-9]{6}Z"
_VERSION = r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}"
_REVISION = r"[0-9A-Za-z_]{1,128}"
NAME = re.compile(rf"(?P<at>{_STAMP})-(?P<version>{_VERSION})-(?P<revision>{_REVISION})\.sql\.gz")
# The same shape for grep -E on a host (POSIX ERE has no named groups nor {0,128} past 255).
NAME_ERE = r"^[0-9]{8}T[0-9]{6}Z-[0-9A-Za-z][0-9A-Za-z._+-]*-[0-9A-Za-z_]+\.sql\.gz$"
_DIR = re.compile(r"/[A-Za-z0-9._/@+-]*\Z")


class BackupConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``backup``: how a database is dumped and restored, where the dumps are kept, and how many.

    ``command`` writes the dump on stdout and ``restore`` reads it on stdin; both are shell command
    lines (``sh -c``), so ``"$DATABASE_URL"`` is expanded where they run: in ``service`` with
    ``docker compose exec -T`` when one is named, else on the host in the ssh session.
    """

    command: str = DEFAULT_COMMAND
    restore: str = DEFAULT_RESTORE
    service: str = ""
    keep: int = 7
    dir: str = ""  # default: backups/ in the host's state directory, beside the journal


class RestoreFailed(PipelineError):
    """A restore failed: the database may be in any state, a human is needed now (exit 4)."""

    exit_code = ExitCode.ROLLBACK_FAILED


@dataclass(frozen=True)
class BackupFile:
    """A backup kept on a unit: its name and its size in bytes."""

    name: str
    size: int

    @property
    def revision(self) -> str:
        """The database revision the backup holds."""
        match = NAME.fullmatch(self.name)
        return match["revision"] if match else ""

    @property
    def at(self) -> str:
        """When it was taken, ``2026-12-01T04:15:00Z``."""
        match = NAME.fullmatch(self.name)
        if not match:
            return ""
        s = match["at"]
        return f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}Z"


def backup_problems(at: str, backup: BackupConfig) -> list[str]:
    """Commands that parse, a service name, a retention and a folder that are safe to use."""
    from pipeline.environments import command_problems

    problems = []
    for key in ("command", "restore"):
        problems.extend(command_problems(f"{at}.{key}", getattr(backup, key)))
    if backup.service and not re.match(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z", backup.service):
        problems.append(f"{at}.service: {backup.service!r} is not a service name")
    if not 1 <= backup.keep <= 1000:
        problems.append(f"{at}.keep: {backup.keep} must be between 1 and 1000")
    if backup.dir and (not _DIR.match(backup.dir) or ".." in backup.dir.split("/")):
        problems.append(f"{at}.dir: {backup.dir!r} must be an absolute path of plain characters")
    return problems


def backup_name(now: str, version: str, revision: str) -> str:
    """The name of a backup taken at ``now`` (``2026-12-01T04:15:00Z``) for a release and revision."""
    stamp = re.sub(r"[^0-9TZ]", "", now)
    name = f"{stamp}-{version}-{revision or NO_REVISION}.sql.gz"
    if not NAME.fullmatch(name):
        raise ValueError(f"not a backup name: {name!r}")
    return name


def check_name(name: str | None, flag: str = "--from") -> str:
    """A backup's name as given on the command line, or exit 2 saying the shape it must have."""
    text = (name or "").strip()
    if not NAME.fullmatch(text):
        from pipeline.terminal import printable

        raise InputError(
            f"{flag}: {printable(repr(text), keep_lines=False)} is not a backup name "
            "(like 20261201T041500Z-2.0.0-0003.sql.gz; `invoke backup --env NAME --list` lists them)"
        )
    return text


def parse_listing(output: str) -> list[BackupFile]:
    """``NAME SIZE`` lines (a host's listing) as backups, oldest first; other lines are skipped."""
    found = []
    for line in output.splitlines():
        name, _, size = line.strip().partition(" ")
        if NAME.fullmatch(name) and size.isdigit():
            found.append(BackupFile(name, int(size)))
    return sorted(found, key=lambda b: b.name)


def human_size(size: int) -> str:
    """``512 B``, ``3.4 KiB``, ``12.0 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns

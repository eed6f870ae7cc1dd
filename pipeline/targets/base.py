"""The target seam: how each operation is done on one unit (a host over ssh, a Helm release).

The engine decides what runs, in which order, under which deadline, and what a failure means; a
target only knows how. Every operation takes a ``Call`` (its deadline, the run's cancellation) and
raises ``StageError`` (``DeadlineExceeded``) or ``Cancelled`` from ``pipeline.errors``; any other
exception is a bug the engine still rolls back from. An interrupted operation leaves nothing of its
own running on the unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pipeline.backups import BackupFile
from pipeline.engine.cancel import Call
from pipeline.engine.values import LockInfo, Release, UnitState
from pipeline.health import HealthResult
from pipeline.journal import Entry
from pipeline.runreport import Evidence


class Target(Protocol):
    """A deploy target: its units, and each operation on one of them."""

    kind: str

    def units(self) -> list[str]:
        """The units' names, in configuration order."""
        ...

    def databases(self) -> list[str]:
        """The units where migrations run: one per database (empty without migrations)."""
        ...

    def read(self, units: Sequence[str], seconds: float) -> list[UnitState]:
        """Journal, lock and what serves on each unit; read-only. Unreachable: InputError."""
        ...

    def lock(self, unit: str, info: LockInfo, call: Call, take_over: str = "") -> LockInfo | None:
        """Take the unit's lock atomically with its holder; the holder found if it is held.

        ``take_over`` names the run whose lock may be replaced (finishing an interrupted run).
        """
        ...

    def unlock(self, unit: str, call: Call) -> None:
        """Release the unit's lock."""
        ...

    def deploy(self, unit: str, release: Release, call: Call) -> None:
        """Put the release in place on the unit and start it."""
        ...

    def revision(self, unit: str, release: Release, call: Call) -> str:
        """The database revision now (``base`` when empty), read with the release's code."""
        ...

    def head(self, unit: str, release: Release, call: Call) -> str:
        """The release's own head revision: where its migrations must leave the database."""
        ...

    def migrate(self, unit: str, release: Release, call: Call) -> None:
        """Upgrade the database with the release's migrations."""
        ...

    def downgrade(self, unit: str, release: Release, revision: str, call: Call) -> None:
        """Downgrade the database to ``revision`` with the release's (the newer) scripts."""
        ...

    def backup_units(self) -> list[str]:
        """The units that keep a database's backups (empty: backups are not configured)."""
        ...

    def backup(self, unit: str, name: str, version: str, call: Call) -> BackupFile:
        """Dump the unit's database into a new backup ``name`` (complete, or not there at all), then
        keep only the newest the configuration says; ``version`` is the release whose files run it."""
        ...

    def backups(self, unit: str, call: Call) -> list[BackupFile]:
        """The backups kept on the unit, oldest first."""
        ...

    def restore_backup(self, unit: str, name: str, version: str, call: Call) -> None:
        """Load backup ``name`` into the unit's database; a backup that is missing or damaged (checked
        whole first) is an InputError, and nothing was loaded."""
        ...

    def describe_backup(self, unit: str, operation: str, name: str, version: str) -> list[str]:
        """The commands of ``backup`` or ``restore`` on a unit, for ``--dry-run`` (no I/O)."""
        ...

    def health(self, unit: str, version: str, call: Call) -> list[HealthResult]:
        """Every health check on the unit, expecting ``version``; stops at the first failure."""
        ...

    def evidence(self, unit: str, release: Release, call: Call) -> list[Evidence]:
        """Logs and states of the release on the unit, before a rollback replaces them."""
        ...

    def restore(self, unit: str, previous: Entry | None, release: Release, call: Call) -> str | None:
        """Bring ``previous`` back without rebuilding (None: a failed first deploy, removed or kept);
        what the report should say about it, if anything."""
        ...

    def record(self, unit: str, entries: Sequence[Entry], call: Call) -> None:
        """Append entries to the unit's journal."""
        ...

    def spent(self) -> float:
        """Seconds spent waiting on the units' commands so far (for the overhead benchmark)."""
        ...

    def describe(
        self, unit: str, operation: str, release: Release, previous: Entry | None = None, revision: str = ""
    ) -> list[str]:
        """The commands an operation would run on a unit, for ``--dry-run`` (no I/O)."""
        ...

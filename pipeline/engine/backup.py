"""The backup a deploy takes before a migration that changes the schema.

When the database is not at the release's head and the target keeps backups, the database's unit
dumps it first, under the migrate stage's deadline; a backup that fails stops the stage before any
migration ran, and the deploy is rolled back like any failed stage. The backup's name goes into the
run's journal lines and its report, so that a failed downgrade can name the restore that undoes it.
"""

from __future__ import annotations

from pipeline.backups import NO_REVISION, backup_name
from pipeline.engine.cancel import Call
from pipeline.engine.core import EngineCore, Run
from pipeline.errors import StageError


class BackingUp(EngineCore):
    """The backup step of the migrate stage."""

    def _backup_first(self, run: Run, unit: str, call: Call) -> str | None:
        """Back the database up when the migration will change it; the release's head when it was read."""
        if unit not in self.target.backup_units():
            return None
        db = run.databases[unit]
        head = self.target.head(unit, run.release, call)
        if db.before == head:
            return head
        name = backup_name(self.context.now(), run.release.version, db.before or NO_REVISION)
        self.context.say(f"   backup of the database on {unit} before migrating: {name}")
        try:
            self.target.backup(unit, name, run.release.version, call)
        except StageError as exc:
            raise StageError(
                "migrate",
                f"the backup before the migration failed; nothing was migrated: {exc}",
                unit,
                exc.output,
            ) from exc
        db.backup = name
        with run.guard:
            run.report.backups[unit] = name
        return head

"""What a run writes in each unit's journal, and what its databases went through.

The journal's meaning lives here: an ``in_progress`` record before the first change, the outcome
at the end, and for a rollback a ``restored`` line for the release that serves again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.engine.values import Release
from pipeline.journal import FAILED, IN_PROGRESS, RESTORED, ROLLED_BACK, Entry


@dataclass
class DatabaseRecord:
    """One database during a run: where it was before, after the migration, and at the end."""

    unit: str
    before: str | None = None
    after: str | None = None
    end: str | None = None
    started: bool = False  # a migration began: the rollback must look at it
    backup: str = ""  # the backup taken before the migration, if one was

    def to_data(self) -> dict[str, str | None]:
        """For the report."""
        return {"before": self.before, "after": self.after, "end": self.end}


@dataclass(frozen=True)
class Stamp:
    """Who and when, for every record of one run."""

    run: str
    who: str
    at: str
    run_url: str
    emergency: str = ""  # the run's emergency reason, carried by each of its records


def progress(
    stamp: Stamp,
    unit: str,
    event: str,
    release: Release,
    previous: Entry | None,
    phase: str,
    db: DatabaseRecord | None = None,
) -> Entry:
    """The record written before a change: enough for the next run to finish this one."""
    return Entry(
        event=event, version=release.version, commit=release.commit,
        previous_version=previous.version if previous else None,
        db_before=db.before if db else None, db_after=None, result=IN_PROGRESS, reason="",
        who=stamp.who, at=stamp.at, run_url=stamp.run_url, host=unit, run=stamp.run, phase=phase,
        emergency=stamp.emergency, backup=db.backup if db else "",
    )  # fmt: skip


def outcome(
    stamp: Stamp,
    unit: str,
    event: str,
    release: Release,
    previous_version: str | None,
    result: str,
    reason: str,
    db: DatabaseRecord | None,
    touched: bool,
) -> Entry:
    """The record of how the run ended on a unit."""
    return Entry(
        event=event, version=release.version, commit=release.commit, previous_version=previous_version,
        db_before=db.before if db else None, db_after=db.after if db else None,
        db_end=db.end if db else None, result=result, reason=reason, who=stamp.who, at=stamp.at,
        run_url=stamp.run_url, host=unit, run=stamp.run, touched=touched, emergency=stamp.emergency,
        backup=db.backup if db else "",
    )  # fmt: skip


def rollback_lines(
    stamp: Stamp,
    unit: str,
    release: Release,
    previous: Entry | None,
    restored: bool,
    reason: str,
    db: DatabaseRecord | None,
    touched: bool,
    event: str = "deploy",
) -> list[Entry]:
    """A rolled-back release's outcome, then the release that serves again on a restored unit.

    The ``restored`` line has its own database fields: where the rollback found the database and
    where it left it, and who ran the rollback.
    """
    before = previous.version if previous else None
    result = ROLLED_BACK if restored else FAILED
    lines = [outcome(stamp, unit, event, release, before, result, reason, db, touched)]
    if restored and touched and previous is not None:
        back = Release(previous.version, previous.commit)
        found = (db.after or db.before) if db else None
        moves = DatabaseRecord(unit, found, db.end, db.end) if db else None
        why = f"{release.version}: {reason}"
        lines.append(outcome(stamp, unit, "rollback", back, release.version, RESTORED, why, moves, True))
    return lines

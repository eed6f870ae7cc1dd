"""The engine's foundation: a run's state, the calls it makes on units, and what it records.

``EngineCore`` holds what the forward path (``pipeline.engine.run``) and the rollback
(``pipeline.engine.rollback``) share: the Call for a stage on a unit, health checks, and the journal
records of a run (its ``in_progress`` records, its outcome, a rollback's lines).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from pipeline.engine import fleet
from pipeline.engine.cancel import Call, Cancellation
from pipeline.engine.records import DatabaseRecord, Stamp, outcome, progress, rollback_lines
from pipeline.engine.values import Policy, Release, UnitState
from pipeline.errors import InputError, StageError, failure_text
from pipeline.health import HealthResult
from pipeline.journal import FAILED, MIGRATED, Entry
from pipeline.runreport import RunReport, StageResult
from pipeline.targets.base import Target


@dataclass
class Context:
    """What a run needs from outside: who runs it, where to say things, the clock."""

    who: str = ""
    run_url: str = ""
    now: Callable[[], str] = lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    say: Callable[[str], None] = lambda line: print(line, flush=True)
    debug_log: str = ""  # where the traceback of an internal error goes
    runner: str = ""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    emergency: str = ""  # the reason of an emergency deploy: every journal record of the run carries it
    # Entered while a stage runs on a unit (a terminal's live progress); by default nothing.
    activity: Callable[[str, str], AbstractContextManager[object]] = lambda stage, unit: nullcontext()


@dataclass
class Run:
    """One run's state: what was locked, changed and migrated, and the report being written."""

    release: Release
    states: dict[str, UnitState]
    report: RunReport
    event: str = "deploy"
    locked: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    databases: dict[str, DatabaseRecord] = field(default_factory=dict)
    previous: dict[str, Entry | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # a rollback part's detail when it did nothing
    take_over: str = ""  # the interrupted run whose locks this run may take
    guard: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.monotonic)  # the origin of the report's timeline

    def previous_of(self, unit: str) -> Entry | None:
        """The release a unit goes back to: the one named for it, else what it served."""
        return self.previous[unit] if unit in self.previous else self.states[unit].serving


class EngineCore:
    """What every part of the engine shares: the environment's target, policy and context."""

    def __init__(
        self,
        name: str,
        target: Target,
        policy: Policy,
        context: Context,
        cancel: Cancellation | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self.policy = policy
        self.context = context
        self.cancel = cancel or Cancellation(policy.deadlines.cancel_grace)

    def call(self, stage: str, unit: str, shielded: bool = False, run: Run | None = None) -> Call:
        """A Call for one stage on one unit, with the stage's deadline."""
        seconds = getattr(self.policy.deadlines, stage)
        changed = (lambda u: self._changing(run, u)) if run is not None else (lambda u: None)
        return Call(stage, unit, seconds, self.cancel, shielded=shielded, on_change=changed)

    def _changing(self, run: Run, unit: str) -> None:
        """Before the first change of a unit: mark it touched, and say so in its journal."""
        with run.guard:
            first = unit not in run.touched
            run.touched.add(unit)
        if first:
            entry = progress(self._stamp(), unit, run.event, run.release, run.previous_of(unit), "changing")
            self.target.record(unit, [entry], self.call("record", unit, shielded=True))

    def _check(self, run: Run, unit: str, version: str, record: bool = True) -> list[HealthResult]:
        """Every health check on one unit; StageError names what failed."""
        results = self.target.health(unit, version, self.call("health", unit, shielded=not record))
        if record:
            with run.guard:
                run.report.health += results
        bad = [r for r in results if not r.ok]
        if bad:
            raise StageError("health", "; ".join(f"{r.host}: {r.check}: {r.detail}" for r in bad), unit)
        return results

    # -- records -------------------------------------------------------------------------------

    def _stamp(self) -> Stamp:
        context = self.context
        return Stamp(context.run_id, context.who, context.now(), context.run_url, context.emergency)

    def _database_of(self, run: Run, unit: str) -> DatabaseRecord | None:
        """The database a unit's code uses: the shared one, or its own."""
        if self.policy.database == "per_host":
            return run.databases.get(unit)
        return next(iter(run.databases.values()), None)

    def _sync_databases(self, run: Run) -> None:
        """Keep the report's database fields in step (the first database fills the scalar fields)."""
        report = run.report
        report.databases = {unit: db.to_data() for unit, db in run.databases.items()}
        first = next(iter(run.databases.values()), None)
        if first is not None:
            report.db_before, report.db_after, report.db_end = first.before, first.after, first.end

    def _record_progress(self, run: Run, phase: str, only: Sequence[str] | None = None) -> None:
        """The ``in_progress`` record on every unit before any change: a killed run is then visible.

        A rollback's record carries the revision it goes back to, for a later run to finish it.
        """
        units = list(run.states) if only is None else list(only)
        stamp = self._stamp()

        def write(unit: str) -> None:
            db = self._database_of(run, unit) if phase == "rolling back" else None
            previous = run.previous_of(unit)
            entry = progress(
                stamp, unit, run.event, run.release, previous, phase, db if db and db.started else None
            )
            self.target.record(unit, [entry], self.call("record", unit, shielded=True))

        failures = fleet.each(units, write)
        if failures:
            unit, exc = next(iter(failures.items()))
            raise InputError(f"cannot write the journal on {unit}: {failure_text(exc)}; nothing was changed")

    def _record_rollback(self, run: Run, ok: bool) -> None:
        """A manual or recovering rollback's lines on every unit (the untouched ones say so)."""
        event = "deploy" if run.take_over else "rollback"
        self._write_records(run, self._rollback_entries(run, ok, run.report.reason, event))

    def _rollback_entries(self, run: Run, ok: bool, reason: str, event: str) -> dict[str, list[Entry]]:
        """Each unit's fate in the report, and its journal lines after a rollback."""
        entries = {}
        for unit in run.states:
            touched = unit in run.touched
            run.report.units[unit] = ("restored" if ok else "rollback failed") if touched else "untouched"
            db = self._database_of(run, unit)
            previous = run.previous_of(unit)
            entries[unit] = rollback_lines(
                self._stamp(), unit, run.release, previous, ok, reason, db, touched, event=event
            )
        return entries

    def _write_records(self, run: Run, entries: dict[str, list[Entry]], required: bool = True) -> None:
        """Append each unit's lines; a journal that cannot be written makes the run need a human
        (unless nothing was changed: then the records only close the run's ``in_progress`` ones)."""

        def write(unit: str) -> None:
            if entries.get(unit):
                self.target.record(unit, entries[unit], self.call("record", unit, shielded=True))

        failures = fleet.each([u for u in entries if entries[u]], write)
        for unit, exc in failures.items():
            run.report.stages.append(
                StageResult("record", "failed", 0.0, f"the journal was not written: {exc}", unit)
            )
        if failures and required:
            names = ", ".join(sorted(failures))
            note = f"the journal of {names} was not written"
            run.report.reason = f"{run.report.reason}; {note}" if run.report.reason else note
            run.report.outcome = "record_failed"

    def _migrate_lines(self, run: Run) -> dict[str, list[Entry]]:
        """A standalone migration's outcome on the units whose journal says it started."""
        ok = run.report.outcome == "migrated"
        lines = {}
        for unit in sorted(run.touched):
            previous = run.previous_of(unit)
            lines[unit] = [
                outcome(
                    self._stamp(),
                    unit,
                    "migrate",
                    run.release,
                    previous.version if previous else None,
                    MIGRATED if ok else FAILED,
                    run.report.reason,
                    self._database_of(run, unit),
                    True,
                )
            ]
        return lines

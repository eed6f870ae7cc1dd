"""The rollback: from any failure after the locks, evidence, then exactly what was changed undone.

Databases that moved are downgraded to the revision recorded before them, with the new release's
scripts; the touched units get their previous release back; the checks prove it; each part's result
goes into the report without stopping the others.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence

from pipeline.engine import fleet
from pipeline.engine.core import EngineCore, Run
from pipeline.engine.timeline import Timer
from pipeline.errors import Cancelled, DeadlineExceeded, PipelineError, StageError, failure_text
from pipeline.runreport import Evidence, StageResult


class RollingBack(EngineCore):
    """Failure handling and the rollback parts."""

    def _fail(self, run: Run, exc: Exception) -> None:
        """From any failure after the locks: evidence, rollback of what was touched, the truth recorded."""
        failed_at = time.monotonic()
        report = run.report
        cancelled = isinstance(exc, Cancelled)
        if isinstance(exc, StageError) and not isinstance(exc, DeadlineExceeded):
            report.reason = report.reason or f"{exc.stage} failed"
        elif isinstance(exc, PipelineError):
            report.reason = str(exc)
        else:
            self._internal(run, exc)
        changed = bool(run.touched) or any(db.started for db in run.databases.values())
        if not changed:
            report.outcome = "interrupted" if cancelled else "rolled_back"
            report.reason += "; nothing was changed"
            ok = True
        else:
            self.context.say(f"-> rollback ({report.reason})")
            self._capture_evidence(run)
            ok = self._roll_back(run, failed_at)
            report.outcome = ("cancelled" if cancelled else "rolled_back") if ok else "rollback_failed"
        entries = self._rollback_entries(run, ok, report.reason, "deploy")
        self._write_records(run, entries, required=changed)

    def _internal(self, run: Run, exc: BaseException) -> None:
        """Our own bug: its traceback goes to the debug log, one line to the report."""
        run.report.reason = failure_text(exc)
        self._log_traceback(run, exc)

    def _log_traceback(self, run: Run, exc: BaseException) -> None:
        """The traceback of an exception of our own code, into the debug log (never the console)."""
        path = self.context.debug_log
        if path:
            try:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
                run.report.debug_log = path
            except OSError:
                pass

    def _capture_evidence(self, run: Run) -> None:
        """Logs and states of the failing (else the touched) units, before the rollback replaces them."""
        failing = {r.host for r in run.report.health if not r.ok} | set(run.failed)
        units = [u for u in sorted(run.touched) if not failing or u in failing]

        def capture(unit: str) -> None:
            found = self.target.evidence(unit, run.release, self.call("evidence", unit, shielded=True))
            with run.guard:
                run.report.evidence += found

        for unit, exc in fleet.each(units, capture).items():
            run.report.evidence.append(
                Evidence(unit, "evidence", f"could not be captured: {failure_text(exc)}")
            )

    def _roll_back(self, run: Run, failed_at: float, only: Sequence[str] = ()) -> bool:
        """Downgrade the databases that moved, restore the touched units, prove the previous releases."""
        units = [u for u in (only or sorted(run.touched)) if u in run.touched]
        report = run.report
        commands_before = self.target.spent()
        databases = [
            db.unit
            for db in run.databases.values()
            if db.started and (not only or (self.policy.database == "per_host" and db.unit in only))
        ]
        ok = self._part(run, "downgrade", databases, lambda unit: self._downgrade(run, unit))
        ok = self._part(run, "restore", units, lambda unit: self._restore(run, unit)) and ok
        restored = [u for u in units if run.previous_of(u) is not None]
        if ok and restored:

            def prove(unit: str) -> None:
                previous = run.previous_of(unit)
                assert previous is not None
                self._check(run, unit, previous.version, record=False)

            ok = self._part(run, "health", restored, prove) and ok
        report.timings["rollback"] = round(time.monotonic() - failed_at, 3)
        report.timings["rollback_commands"] = round(self.target.spent() - commands_before, 3)
        return ok

    def _part(self, run: Run, name: str, units: list[str], body: Callable[[str], None]) -> bool:
        """One part of the rollback on units in parallel; how it ended, without stopping the others."""
        timer = Timer(run.started, name, self.context.activity)
        failures = fleet.each(units, timer.wrap(body))
        for unit in units:
            exc = failures.get(unit)
            detail = failure_text(exc) if exc else run.notes.pop(f"{name}:{unit}", "")
            span = timer.span(unit, exc)
            status = "failed" if exc else "ok"
            run.report.rollback.append(StageResult(name, status, span.seconds, detail, unit, span.start))
            if isinstance(exc, StageError) and exc.output:
                run.report.evidence.append(Evidence(unit, f"output of {name}", exc.output))
            if exc is not None and not isinstance(exc, PipelineError):
                self._log_traceback(run, exc)
        return not failures

    def _downgrade(self, run: Run, unit: str) -> None:
        """Back to the revision recorded before the migration, with the new release's scripts."""
        db = run.databases[unit]
        call = self.call("migrate", unit, shielded=True)
        if db.before is None:
            raise StageError("downgrade", f"no revision was recorded before the migration on {unit}", unit)
        if db.after is not None and db.after == db.before:
            db.end = db.before  # the migration was read back where it started: nothing moved
            run.notes[f"downgrade:{unit}"] = f"the migration left the database at {db.before}"
            self._sync_databases(run)
            return
        now = self.target.revision(unit, run.release, call)
        if now == db.before:
            db.end = now
            run.notes[f"downgrade:{unit}"] = f"the database is still at {now}"
            self._sync_databases(run)
            return
        db.after = db.after or now
        self.target.downgrade(unit, run.release, db.before, call)
        db.end = self.target.revision(unit, run.release, call)
        self._sync_databases(run)
        if db.end != db.before:
            raise StageError("downgrade", f"the database is at {db.end}, not back at {db.before}", unit)

    def _restore(self, run: Run, unit: str) -> None:
        """The unit's previous release back (or the new one removed after a failed first deploy)."""
        note = self.target.restore(
            unit, run.previous_of(unit), run.release, self.call("restore", unit, shielded=True)
        )
        if note:
            run.notes[f"restore:{unit}"] = note

"""The deploy engine: a plan run against a target, with the same meaning for every target.

The stage order is lock → record "in progress" → deploy → migrate → health → record → unlock. From the
first change on any unit, every way out — a failed stage, a deadline, a signal, or an exception in
our own code — goes through the rollback of exactly what was changed, and ends with journal records
that tell the truth and the documented exit code. A run killed outright (SIGKILL) leaves its lock and
its ``in_progress`` records, which the next ``rollback`` finishes (see ``pipeline.engine.recovery``).
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.engine import fleet
from pipeline.engine.cancel import Call, Cancellation, signals_to
from pipeline.engine.records import DatabaseRecord, Stamp, outcome, progress, rollback_lines
from pipeline.engine.values import LockInfo, Policy, Release, UnitState
from pipeline.errors import Cancelled, DeadlineExceeded, InputError, LockHeld, PipelineError, StageError
from pipeline.health import HealthResult
from pipeline.journal import FAILED, HEALTHY, MIGRATED, Entry
from pipeline.runreport import Evidence, RunReport, StageResult
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
    marked: set[str] = field(default_factory=set)  # units whose "changing" record is written
    notes: dict[str, str] = field(default_factory=dict)  # a rollback part's detail when it did nothing
    take_over: str = ""  # the interrupted run whose locks this run may take
    guard: threading.Lock = field(default_factory=threading.Lock)

    def previous_of(self, unit: str) -> Entry | None:
        """The release a unit goes back to: the one named for it, else what it served."""
        return self.previous[unit] if unit in self.previous else self.states[unit].serving


class Engine:
    """Runs deploys, rollbacks and migrations of one environment against its target."""

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
        self.stamp = Stamp(context.run_id, context.who, "", context.run_url)

    # -- reading ------------------------------------------------------------------------------

    def read(self, strict: bool = True) -> list[UnitState]:
        """Every unit's journal, lock and checkout, read-only (an unreachable unit: exit 2).

        ``strict``: a journal that cannot be read is an error (exit 2), not a first deploy.
        """
        states = self.target.read(self.target.units(), self.policy.deadlines.read)
        for state in states if strict else ():
            if state.damaged:
                raise InputError(
                    f"{state.name}: the journal cannot be read ({state.damaged}); nothing was changed"
                )
        return states

    def refuse_locks(self, states: Sequence[UnitState]) -> None:
        """Exit 5 when a unit is locked, saying by whom, how long ago, and how to finish a dead run."""
        for state in states:
            if state.lock is None:
                continue
            holder = state.lock.describe()
            if state.interrupted():
                raise LockHeld(
                    f"{state.name}: run {state.lock.run} ({holder}) was interrupted before it finished: "
                    f"`invoke rollback --env {self.name}` finishes its rollback"
                )
            raise LockHeld(
                f"{state.name}: a deploy holds the lock: {holder} "
                f"(`invoke status --env {self.name}` shows it; `invoke unlock` releases a stale one)"
            )

    def wait_for_locks(self, seconds: float, sleep: Callable[[float], None] = time.sleep) -> list[UnitState]:
        """Read the units until no lock is held or ``seconds`` have passed; then as ``refuse_locks``."""
        end = time.monotonic() + seconds
        said = False
        while True:
            states = self.read()
            locked = [s for s in states if s.lock is not None and not s.interrupted()]
            if locked and not said:
                holder = locked[0].lock.describe() if locked[0].lock else ""
                self.context.say(f"waiting up to {seconds:g} s for the lock of {locked[0].name}: {holder}")
                said = True
            if not locked or time.monotonic() >= end:
                self.refuse_locks(states)
                return states
            sleep(min(2.0, max(0.0, end - time.monotonic())))

    # -- entry points ---------------------------------------------------------------------------

    def new_run(self, release: Release, states: Sequence[UnitState], event: str = "deploy") -> Run:
        """The state of a run about to start."""
        report = RunReport(self.name, release.version, release.commit)
        report.run, report.who, report.debug_log = self.context.run_id, self.context.who, ""
        report.previous = {s.name: s.serving.version if s.serving else None for s in states}
        run = Run(release, {s.name: s for s in states}, report, event)
        run.databases = {unit: DatabaseRecord(unit) for unit in self.target.databases()}
        return run

    def deploy(self, release: Release, states: Sequence[UnitState]) -> RunReport:
        """Lock, deploy, migrate, check and record; on any failure roll back what was changed."""
        run = self.new_run(release, states)
        wall = time.monotonic()
        with signals_to(self.cancel):
            self.lock_all(run)
            if self.cancel.requested:
                return self._cancelled_before_change(run)
            try:
                if self._already_deployed(run):
                    run.report.outcome = "noop"
                else:
                    self._record_progress(run, "deploying")
                    self._forward(run)
                    self._finish(run)
            except Exception as exc:
                self._fail(run, exc)
            self.cancel.reset()
            self.unlock_all(run)
        run.report.timings.update(
            wall=round(time.monotonic() - wall, 3), commands=round(self.target.spent(), 3)
        )
        return run.report

    def rollback(self, run: Run, reason: str) -> RunReport:
        """Downgrade, restore and check the units of a run prepared by ``pipeline.engine.recovery``."""
        wall = time.monotonic()
        with signals_to(self.cancel):
            self.lock_all(run, take_over=run.take_over)
            try:
                self._record_progress(run, "rolling back", only=sorted(run.touched))
                run.report.reason = reason
                self.context.say(f"-> rollback ({reason})")
                ok = self._roll_back(run, time.monotonic())
                run.report.outcome = "restored" if ok else "rollback_failed"
                self._record_rollback(run, ok)
            except Exception as exc:
                self._internal(run, exc)
                run.report.outcome = "rollback_failed"
            self.cancel.reset()
            self.unlock_all(run)
        run.report.timings["wall"] = round(time.monotonic() - wall, 3)
        return run.report

    def migrate(self, release: Release, states: Sequence[UnitState]) -> RunReport:
        """The migrations of the deployed release on their own, under the lock (no rollback)."""
        run = self.new_run(release, states, event="migrate")
        with signals_to(self.cancel):
            self.lock_all(run)
            try:
                failures = fleet.each(list(run.databases), lambda unit: self._migrate_database(run, unit))
                if failures:
                    raise _primary(failures)
                run.report.outcome = "migrated"
            except Exception as exc:
                run.report.outcome, run.report.reason = "migrate_failed", self._why(exc)
                if not isinstance(exc, PipelineError):
                    self._internal(run, exc)
            self._write_records(run, self._migrate_lines(run))
            self.cancel.reset()
            self.unlock_all(run)
        return run.report

    def unlock_held(self, states: Sequence[UnitState]) -> list[UnitState]:
        """Release every lock found (``invoke unlock``); the states of the units that were locked."""
        held = [s for s in states if s.lock is not None]
        for state in held:
            self.target.unlock(state.name, self.call("lock", state.name, shielded=True))
        return held

    def check(self, version: str, states: Sequence[UnitState]) -> list[HealthResult]:
        """Every health check on every unit against ``version`` (``invoke health``); nothing changes."""
        results: list[HealthResult] = []
        for state in states:
            results += self.target.health(state.name, version, self.call("health", state.name, shielded=True))
        return results

    # -- locks --------------------------------------------------------------------------------

    def lock_info(self, release: Release, operation: str) -> LockInfo:
        """What this run writes in each lock."""
        return LockInfo(
            who=self.context.who or "unknown", at=self.context.now(), version=release.version,
            run=self.context.run_id, run_url=self.context.run_url, operation=operation,
            runner=self.context.runner,
        )  # fmt: skip

    def lock_all(self, run: Run, take_over: str = "") -> None:
        """Take every unit's lock (in parallel); if one is held or fails, give back those taken."""
        info = self.lock_info(run.release, run.event)
        held: dict[str, LockInfo] = {}

        def take(unit: str) -> None:
            call = self.call("lock", unit, shielded=True)
            holder = self.target.lock(unit, info, call, take_over=take_over)
            with run.guard:
                if holder is None:
                    run.locked.add(unit)
                else:
                    held[unit] = holder

        failures = fleet.each(list(run.states), take)
        if held or failures:
            self.unlock_all(run)
        if held:
            unit, holder = next(iter(held.items()))
            raise LockHeld(f"{unit}: a deploy holds the lock: {holder.describe()}")
        if failures:
            unit, exc = next(iter(failures.items()))
            raise InputError(f"cannot take the deploy lock on {unit}: {exc}; nothing was changed")

    def unlock_all(self, run: Run) -> None:
        """Release the locks this run holds (a unit that cannot be reached keeps its lock, reported)."""

        def give(unit: str) -> None:
            self.target.unlock(unit, self.call("lock", unit, shielded=True))
            with run.guard:
                run.locked.discard(unit)

        for unit, exc in fleet.each(sorted(run.locked), give).items():
            run.report.stages.append(StageResult("unlock", "failed", 0.0, f"the lock stays: {exc}", unit))

    # -- the forward path ------------------------------------------------------------------------

    def call(self, stage: str, unit: str, shielded: bool = False, run: Run | None = None) -> Call:
        """A Call for one stage on one unit, with the stage's deadline."""
        seconds = getattr(self.policy.deadlines, stage)
        changed = (lambda u: self._changing(run, u)) if run is not None else (lambda u: None)
        return Call(stage, unit, seconds, self.cancel, shielded=shielded, on_change=changed)

    def _changing(self, run: Run, unit: str) -> None:
        """Before the first change of a unit: mark it touched, and say so in its journal."""
        with run.guard:
            first = unit not in run.marked
            run.touched.add(unit)
            run.marked.add(unit)
        if first:
            entry = progress(self._stamp(), unit, run.event, run.release, run.previous_of(unit), "changing")
            self.target.record(unit, [entry], self.call("record", unit, shielded=True))

    def _already_deployed(self, run: Run) -> bool:
        """Re-running a deploy of what every unit already serves healthy is a no-op."""
        release = run.release
        for state in run.states.values():
            last = state.journal[-1] if state.journal else None
            serving = state.serving
            if serving is None or serving != last or serving.version != release.version:
                return False
            if release.commit and not (state.commit == release.commit == serving.commit):
                return False
        return True

    def _forward(self, run: Run) -> None:
        """Deploy, migrate and check, batch by batch; raises the failure that needs a rollback."""
        shared = self.policy.database == "shared" and run.databases
        migrated = False
        for number, batch in enumerate(fleet.batches(list(run.states), self.policy)):
            label = f" (batch {number + 1})" if self.policy.strategy == "rolling" else ""
            self._stage(run, f"deploy{label}", batch, lambda unit: self._deploy_unit(run, unit))
            if shared and not migrated:
                migrate = lambda u: self._migrate_database(run, u)  # noqa: E731
                self._stage(run, f"migrate{label}", list(run.databases), migrate, tolerate=False)
                migrated = True

            def check(unit: str) -> None:
                self._check(run, unit, run.release.version)

            self._stage(run, f"health{label}", batch, check)
        for unit in run.states:
            run.report.units.setdefault(unit, "deployed")

    def _stage(
        self, run: Run, name: str, units: list[str], body: Callable[[str], None], tolerate: bool = True
    ) -> None:
        """A stage over units in parallel; raises once more units failed than the policy tolerates."""
        units = [u for u in units if u not in run.failed] if tolerate else units
        self.context.say(f"-> {name}" + (f" [{', '.join(units)}]" if len(run.states) > 1 else ""))
        started = time.monotonic()

        def failed(unit: str, exc: BaseException) -> None:
            if isinstance(exc, Cancelled):
                return  # stopped because of another unit's failure or a signal: not a failure of its own
            with run.guard:
                run.failed[unit] = self._why(exc)
                over = len(run.failed) > self.policy.max_failed_units
            if over:
                self.cancel.request(f"{unit} failed", immediate=True)

        failures = fleet.each(units, body, failed)
        seconds = round(time.monotonic() - started, 3)
        if not failures:
            run.report.stages.append(StageResult(name, "ok", seconds))
            return
        primary = _primary(failures)
        detail = "; ".join(f"{u}: {self._why(e)}" for u, e in failures.items())
        run.report.stages.append(StageResult(name, "failed", seconds, detail))
        for exc in failures.values():
            if isinstance(exc, StageError) and exc.output:
                run.report.evidence.append(Evidence(exc.unit, f"output of {exc.stage}", exc.output))
        if not tolerate or len(run.failed) > self.policy.max_failed_units or isinstance(primary, Cancelled):
            raise primary
        if not isinstance(primary, PipelineError):
            raise primary  # our own bug is never tolerated
        self.context.say(f"   tolerated: {len(run.failed)} of {len(run.states)} units failed")

    def _deploy_unit(self, run: Run, unit: str) -> None:
        """The release in place on one unit, and its own database migrated when it has one."""
        self.target.deploy(unit, run.release, self.call("deploy", unit, run=run))
        if self.policy.database == "per_host" and unit in run.databases:
            self._migrate_database(run, unit)

    def _migrate_database(self, run: Run, unit: str) -> None:
        """Read the revision, say so in the journal, upgrade, and prove the release's head is reached."""
        db = run.databases[unit]
        call = self.call("migrate", unit, run=run)
        db.before = self.target.revision(unit, run.release, call)
        sharing = list(run.states) if self.policy.database == "shared" else [unit]
        for each in sharing:
            entry = progress(
                self._stamp(), each, run.event, run.release, run.previous_of(each), "migrating", db
            )
            self.target.record(each, [entry], self.call("record", each, shielded=True))
        db.started = True
        call.changing()
        self.target.migrate(unit, run.release, call)
        db.after = db.end = self.target.revision(unit, run.release, call)
        head = self.target.head(unit, run.release, call)
        self._sync_databases(run)
        if db.after != head:
            raise StageError(
                "migrate",
                f"after the migration the database is at {db.after}, the release's head is {head}",
                unit,
            )

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

    def _finish(self, run: Run) -> None:
        """Record the outcome: healthy where deployed; a tolerated failure is rolled back on its unit."""
        failed, ok = sorted(run.failed), True
        if failed:
            self.context.say(f"-> rollback of the failed units ({', '.join(failed)})")
            ok = self._roll_back(run, time.monotonic(), only=failed)
            for unit in failed:
                run.report.units[unit] = "restored" if ok else "rollback failed"
            if not ok:
                run.report.reason = f"the rollback of {', '.join(failed)} failed"
        entries: dict[str, list[Entry]] = {}
        for unit in run.states:
            db = self._database_of(run, unit)
            if unit in run.failed:
                entries[unit] = rollback_lines(
                    self._stamp(), unit, run.release, run.previous_of(unit), ok, run.failed[unit], db,
                    unit in run.touched,
                )  # fmt: skip
            else:
                previous = run.previous_of(unit)
                before = previous.version if previous else None
                entries[unit] = [
                    outcome(self._stamp(), unit, "deploy", run.release, before, HEALTHY, "", db, True)
                ]
        run.report.outcome = "deployed" if ok else "rollback_failed"
        self._write_records(run, entries)

    # -- failure and rollback ------------------------------------------------------------------------

    def _why(self, exc: BaseException) -> str:
        """How a failure is named in reports and journals."""
        if isinstance(exc, Cancelled):
            return str(exc)
        if isinstance(exc, PipelineError):
            return str(exc)
        return f"internal error: {type(exc).__name__}: {exc}"

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
            report.outcome = "cancelled" if cancelled else "rolled_back"
            report.reason += "; nothing was changed"
            ok = True
        else:
            self._capture_evidence(run)
            ok = self._roll_back(run, failed_at)
            report.outcome = ("cancelled" if cancelled else "rolled_back") if ok else "rollback_failed"
        entries = self._rollback_entries(run, ok, report.reason, "deploy")
        self._write_records(run, entries, required=changed)

    def _internal(self, run: Run, exc: BaseException) -> None:
        """Our own bug: its traceback goes to the debug log, one line to the report."""
        run.report.reason = self._why(exc)
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
            run.report.evidence.append(Evidence(unit, "evidence", f"could not be captured: {self._why(exc)}"))

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
        started = time.monotonic()
        failures = fleet.each(units, body)
        for unit in units:
            exc = failures.get(unit)
            detail = self._why(exc) if exc else run.notes.pop(f"{name}:{unit}", "")
            seconds = round(time.monotonic() - started, 3)
            run.report.rollback.append(StageResult(name, "failed" if exc else "ok", seconds, detail, unit))
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
        self.target.restore(
            unit, run.previous_of(unit), run.release, self.call("restore", unit, shielded=True)
        )

    # -- records -------------------------------------------------------------------------------

    def _stamp(self) -> Stamp:
        return Stamp(self.context.run_id, self.context.who, self.context.now(), self.context.run_url)

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
            raise InputError(f"cannot write the journal on {unit}: {self._why(exc)}; nothing was changed")

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
        for unit in sorted(run.marked):
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

    def _cancelled_before_change(self, run: Run) -> RunReport:
        self.cancel.reset()
        self.unlock_all(run)
        run.report.outcome, run.report.reason = (
            "cancelled",
            "cancelled before any change; nothing was changed",
        )
        return run.report


def _primary(failures: dict[str, BaseException]) -> BaseException:
    """The failure that explains the others: a unit's own failure before a sibling's cancel."""
    for exc in failures.values():
        if not isinstance(exc, Cancelled):
            return exc
    return next(iter(failures.values()))

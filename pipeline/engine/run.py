"""The deploy engine: a plan run against a target, with the same meaning for every target.

The stage order is lock → record "in progress" → deploy → migrate → health → record → unlock. From the
first change on any unit, every way out — a failed stage, a deadline, a signal, or an exception in
our own code — goes through the rollback of exactly what was changed, and ends with journal records
that tell the truth and the documented exit code. A run killed outright (SIGKILL) leaves its lock and
its ``in_progress`` records, which the next ``rollback`` finishes (see ``pipeline.engine.recovery``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pipeline.engine import fleet
from pipeline.engine.backup import BackingUp
from pipeline.engine.cancel import signals_to
from pipeline.engine.core import Context, Run
from pipeline.engine.records import DatabaseRecord, outcome, progress, rollback_lines
from pipeline.engine.rollback import RollingBack
from pipeline.engine.timeline import Timer
from pipeline.engine.values import LockInfo, Release, UnitState
from pipeline.errors import Cancelled, InputError, LockHeld, PipelineError, StageError, failure_text
from pipeline.health import HealthResult
from pipeline.journal import HEALTHY, Entry
from pipeline.runreport import Evidence, RunReport, StageResult

__all__ = ["Context", "Engine", "Run"]


class Engine(RollingBack, BackingUp):
    """Runs deploys, rollbacks and migrations of one environment against its target."""

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
                    f"{state.name}: run {state.lock.run} ({holder}) holds the lock and has not recorded its "
                    f"outcome: if it is still running, wait for it; if it was interrupted, "
                    f"`invoke rollback --env {self.name}` finishes its rollback"
                )
            if state.lock.live:
                raise LockHeld(
                    f"{state.name}: a deploy is running and holds the lock: {holder} "
                    f"(wait for it, or pass `--lock-wait SECONDS`)"
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
                run.report.outcome, run.report.reason = "migrate_failed", failure_text(exc)
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

    def _already_deployed(self, run: Run) -> bool:
        """Re-running a deploy of what every unit already serves healthy is a no-op."""
        release = run.release
        for state in run.states.values():
            last = next((e for e in reversed(state.journal) if not e.beside_release), None)
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
                run.failed[unit] = failure_text(exc)
                over = len(run.failed) > self.policy.max_failed_units
            if over:
                self.cancel.request(f"{unit} failed", immediate=True)

        timer = Timer(run.started, name, self.context.activity)
        failures = fleet.each(units, timer.wrap(body), failed)
        seconds = round(time.monotonic() - started, 3)
        spans = timer.spans(units, failures)
        if not failures:
            run.report.stages.append(StageResult(name, "ok", seconds, start=timer.start, spans=spans))
            return
        primary = _primary(failures)
        detail = "; ".join(_named(u, failure_text(e)) for u, e in failures.items())
        run.report.stages.append(StageResult(name, "failed", seconds, detail, start=timer.start, spans=spans))
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
        head = self._backup_first(run, unit, call)
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
        head = head or self.target.head(unit, run.release, call)
        self._sync_databases(run)
        if db.after != head:
            raise StageError(
                "migrate",
                f"after the migration the database is at {db.after}, the release's head is {head}",
                unit,
            )

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

    def _cancelled_before_change(self, run: Run) -> RunReport:
        run.report.outcome = "interrupted"
        run.report.reason = f"{self.cancel.reason or 'cancelled'} before any change; nothing was changed"
        self.cancel.reset()
        self.unlock_all(run)
        return run.report


def _primary(failures: dict[str, BaseException]) -> BaseException:
    """The failure that explains the others: a unit's own failure before a sibling's cancel."""
    for exc in failures.values():
        if not isinstance(exc, Cancelled):
            return exc
    return next(iter(failures.values()))


def _named(unit: str, why: str) -> str:
    """A unit's failure in a stage's detail, named once (a StageError's message may already start with it)."""
    return why if why.startswith(f"{unit}: ") else f"{unit}: {why}"

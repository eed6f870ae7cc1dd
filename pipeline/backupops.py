"""``invoke backup`` and ``invoke restore``: a database's backups on their own, under the deploy lock.

Each takes every lock of the environment (operation ``backup`` or ``restore``, so ``status`` shows
who holds it), works on the units that keep the backups, writes one journal line per unit (results
that never count as serving) and says what to do next. A backup stopped by a signal or a deadline
leaves no file that looks complete; a restore is shielded from signals (it is not cut halfway, its
deadline still holds), and one that fails says where the database is now and exits 4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.backups import (
    NO_REVISION,
    UNKNOWN,
    BackupFile,
    RestoreFailed,
    backup_name,
    check_name,
    human_size,
)
from pipeline.config import PipelineConfig
from pipeline.engine.values import Release, UnitState
from pipeline.errors import Cancelled, ExitCode, InputError, PipelineError, StageError, failure_text
from pipeline.executor import Executor
from pipeline.journal import BACKED_UP, DB_RESTORED, FAILED, IN_PROGRESS, Entry
from pipeline.operate import engine_of, redacting

if TYPE_CHECKING:
    from pipeline.engine.run import Engine, Run

Say = Callable[[str], None]


@dataclass
class Done:
    """What an operation did on one unit."""

    unit: str
    name: str
    before: str | None = None
    after: str | None = None
    error: BaseException | None = None
    size: int = 0


def _release_of(states: Sequence[UnitState], unit: str) -> Release:
    """The release whose files run commands on a unit: what it serves (``none`` before any deploy)."""
    serving = next((s.serving for s in states if s.name == unit), None)
    return Release(serving.version, serving.commit) if serving else Release("none", None)


def _units(engine: Engine, name: str) -> list[str]:
    units = engine.target.backup_units()
    if not units:
        raise InputError(f"pipeline.environments.{name}.backup is not configured: there are no backups")
    return units


def _revision(engine: Engine, unit: str, release: Release, say: Say) -> str:
    """The database revision, when the environment's migrations can read it; ``unknown`` when the
    release's code cannot (a newer revision than its scripts know, after a failed rollback)."""
    if unit not in engine.target.databases():
        return NO_REVISION
    try:
        return engine.target.revision(unit, release, engine.call("backup", unit, shielded=True))
    except PipelineError as exc:
        say(f"warning: the database revision on {unit} cannot be read with {release.version}'s code: {exc}")
        return UNKNOWN


def _line(engine: Engine, done: Done, release: Release, event: str, ok: str, reason: str) -> Entry:
    ctx = engine.context
    return Entry(
        event=event, version=release.version, commit=release.commit, previous_version=None,
        db_before=_known(done.before), db_after=_known(done.after),
        result=ok if done.error is None else FAILED, reason=reason, who=ctx.who, at=ctx.now(),
        run_url=ctx.run_url, host=done.unit, run=ctx.run_id,
        touched=event == "restore", backup=done.name,
    )  # fmt: skip


def _known(revision: str | None) -> str | None:
    """A revision for the journal: never a stand-in for one that was not read."""
    return None if revision in (UNKNOWN, NO_REVISION) else revision


def _locked(engine: Engine, states: Sequence[UnitState], event: str, body: Callable[[Run], None]) -> None:
    """``body`` with every lock taken for ``event``; signals cancel it, the locks are given back."""
    from pipeline.engine.cancel import signals_to

    engine.refuse_locks(states)
    run = engine.new_run(_release_of(states, states[0].name), states, event=event)
    with signals_to(engine.cancel):
        engine.lock_all(run)
        try:
            body(run)
        finally:
            engine.cancel.reset()
            engine.unlock_all(run)
    for stage in run.report.stages:
        engine.context.say(f"warning: {stage.detail} [{stage.host}]")


def _record(engine: Engine, unit: str, entry: Entry, say: Say) -> None:
    try:
        engine.target.record(unit, [entry], engine.call("record", unit, shielded=True))
    except PipelineError as exc:
        say(f"warning: the journal of {unit} was not written: {exc}")


def backup(
    config: PipelineConfig, name: str, executor: Executor, say: Say, list_only: bool = False
) -> ExitCode:
    """Back up every database of the environment now (or list the backups kept, newest last)."""
    with (
        redacting(config, name, say) as (say, redactor),
        engine_of(config, name, executor, None, say, redactor) as engine,
    ):
        units = _units(engine, name)
        states = engine.read()
        if list_only:
            for unit in units:
                _list(engine, unit, say)
            return ExitCode.OK
        results: list[Done] = []

        def each(run: Run) -> None:
            from pipeline.engine import fleet

            def one(unit: str) -> None:
                results.append(_backup_one(engine, states, unit, say))

            fleet.each(units, one)

        _locked(engine, states, "backup", each)
    failed = [r for r in results if r.error is not None]
    for done in results:
        if done.error is not None:
            say(f"FAILED backup on {done.unit}: {failure_text(done.error)}")
    for done in failed:
        if done.error is not None and not isinstance(done.error, PipelineError):
            raise done.error  # a bug of ours: its traceback goes to a file, exit 70 (nothing was changed)
    if any(isinstance(r.error, Cancelled) for r in failed):
        reason = str(next(r.error for r in failed if isinstance(r.error, Cancelled)))
        return ExitCode.TERMINATED if "SIGTERM" in reason else ExitCode.INTERRUPTED
    return ExitCode.ROLLED_BACK if failed or len(results) < len(units) else ExitCode.OK


def _kept(engine: Engine, unit: str) -> list[BackupFile]:
    """The backups a unit keeps; a host that cannot list them is an input error (nothing changed)."""
    try:
        return engine.target.backups(unit, engine.call("read", unit, shielded=True))
    except StageError as exc:
        raise InputError(f"cannot list the backups on {unit}: {exc}; nothing was changed") from None


def _list(engine: Engine, unit: str, say: Say) -> None:
    kept = _kept(engine, unit)
    say(f"{unit}: {len(kept)} backup(s) kept" + (":" if kept else ""))
    for file in reversed(kept):
        say(f"  {file.name}  {human_size(file.size)}  taken {file.at}, database at {file.revision}")


def _backup_one(engine: Engine, states: Sequence[UnitState], unit: str, say: Say) -> Done:
    release = _release_of(states, unit)
    done = Done(unit, "")
    try:
        done.before = _revision(engine, unit, release, say)
        done.name = backup_name(engine.context.now(), release.version, done.before)
        say(f"-> backup [{unit}] {done.name}")
        made: BackupFile = engine.target.backup(unit, done.name, release.version, engine.call("backup", unit))
        done.size = made.size
        say(f"ok  {unit}: {made.name} ({human_size(made.size)}), database at {done.before}")
    except Exception as exc:
        done.error = exc
    reason = "" if done.error is None else failure_text(done.error)
    if done.error is not None:
        done.name = ""  # nothing was kept under that name
    _record(engine, unit, _line(engine, done, release, "backup", BACKED_UP, reason), say)
    return done


def restore(
    config: PipelineConfig, name: str, executor: Executor, say: Say, source: str | None, dry_run: bool = False
) -> ExitCode:
    """Load a backup into the database(s) whose unit keeps it, under the lock; say what to do next."""
    wanted = check_name(source)
    with (
        redacting(config, name, say) as (say, redactor),
        engine_of(config, name, executor, None, say, redactor) as engine,
    ):
        units = _units(engine, name)
        states = engine.read()
        where = [u for u in units if wanted in {b.name for b in _kept(engine, u)}]
        if not where:
            raise InputError(
                f"--from: no backup {wanted} on {', '.join(units)} "
                f"(`invoke backup --env {name} --list` lists them)"
            )
        if dry_run:
            say(f"dry run: restore {wanted} on {', '.join(where)}; nothing is changed")
            for unit in where:
                say(f"  lock     [{unit}] the deploy lock, operation restore")
                for line in engine.target.describe_backup(
                    unit, "restore", wanted, _release_of(states, unit).version
                ):
                    say(line)
                say(f"  revision [{unit}] read the database revision after, and record it in the journal")
            return ExitCode.OK
        results: list[Done] = []

        def each(run: Run) -> None:
            from pipeline.engine import fleet

            fleet.each(where, lambda unit: results.append(_restore_one(engine, states, unit, wanted, say)))

        _locked(engine, states, "restore", each)
        failed = [r for r in results if r.error is not None]
        for done in failed:
            if isinstance(done.error, InputError):
                raise done.error
        if failed:
            raise RestoreFailed(
                "; ".join(
                    f"the restore of {wanted} on {d.unit} failed: {failure_text(d.error)}; "
                    "the database may be partly restored (a restore command in one transaction leaves "
                    f"it as it was): it is at {d.after} now. A human is needed now"
                    for d in failed
                    if d.error is not None
                )
            )
        for done in results:
            for line in _next_steps(name, states, done):
                say(line)
    return ExitCode.OK


def _restore_one(engine: Engine, states: Sequence[UnitState], unit: str, wanted: str, say: Say) -> Done:
    release = _release_of(states, unit)
    done = Done(unit, wanted)
    done.before = _revision(engine, unit, release, say)
    say(f"-> restore [{unit}] {wanted} (the database is at {done.before})")
    try:
        call = engine.call("backup", unit, shielded=True)
        engine.target.restore_backup(unit, wanted, release.version, call)
    except Exception as exc:
        done.error = exc
    done.after = _revision(engine, unit, release, say)
    if done.error is None:
        say(f"ok  {unit}: {wanted} restored, the database is at {done.after}")
    reason = f"restored {wanted}" if done.error is None else failure_text(done.error)
    _record(engine, unit, _line(engine, done, release, "restore", DB_RESTORED, reason), say)
    return done


def _next_steps(name: str, states: Sequence[UnitState], done: Done) -> list[str]:
    """What the person who restored should do now, from what the unit's journal says serves."""
    state = next(s for s in states if s.name == done.unit)
    runs = [e for e in state.journal if e.event in ("deploy", "rollback") and e.result != IN_PROGRESS]
    serving = state.serving
    if runs and runs[-1].result == FAILED:
        back = runs[-1].previous_version or "nothing"
        return [
            f"next: the rollback of {runs[-1].version} failed; `invoke rollback --env {name}` finishes "
            f"it now that the database is back (it brings {back} back, and checks it)"
        ]
    if serving is None:
        return [
            f"next: nothing is recorded as serving; deploy the release that matches revision {done.after}"
        ]
    ran_with = serving.db_final
    if ran_with is not None and done.after not in (None, NO_REVISION, UNKNOWN) and ran_with != done.after:
        return [
            f"next: {serving.version} serves and ran with revision {ran_with}, but the database is now at "
            f"{done.after}: the code may not match the schema; `invoke rollback --env {name} --to VERSION` "
            "(a release that ran with it) or a deploy brings them together"
        ]
    return [
        f"next: {serving.version} serves; `invoke health --env {name}` checks it against the restored "
        "database"
    ]

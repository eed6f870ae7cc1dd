"""Which rollback to run: finishing an interrupted run, or going back to a release by hand.

A run killed outright leaves its lock (with its run id) and ``in_progress`` records: which release it
was putting in place, what each unit served before, which units it began to change, and where the
database was before its migration. From those, the rollback is the same one the killed run would have
run. By hand, the release to go back to is the last one healthy on every unit (or the one named),
and its database revision must be recorded: a rollback never downgrades to a revision it did not
record.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.engine.run import Engine, Run
from pipeline.engine.values import Release, UnitState
from pipeline.errors import InputError, NotRecorded
from pipeline.journal import FAILED, IN_PROGRESS, Entry, healthy_everywhere

TOUCHING = ("changing", "migrating", "rolling back")


def prepare_rollback(engine: Engine, states: Sequence[UnitState], to: str | None) -> tuple[Run, str]:
    """The run and the reason of ``invoke rollback``: recovery when a run was interrupted."""
    interrupted = [s for s in states if s.interrupted()]
    if interrupted:
        return _recovery(engine, states, interrupted)
    engine.refuse_locks(states)
    failed = _failed_rollbacks(states)
    if failed and (to is None or to == next(iter(failed.values())).previous_version):
        return _finish_failed(engine, states, failed)
    return _by_hand(engine, states, to)


def _failed_rollbacks(states: Sequence[UnitState]) -> dict[str, Entry]:
    """By unit, the outcome of the last deploy or rollback when it says its rollback failed."""
    found = {}
    for state in states:
        runs = [e for e in state.journal if e.event in ("deploy", "rollback") and e.result != IN_PROGRESS]
        if runs and runs[-1].result == FAILED:
            found[state.name] = runs[-1]
    return found


def _finish_failed(engine: Engine, states: Sequence[UnitState], failed: dict[str, Entry]) -> tuple[Run, str]:
    """The rollback a run could not finish, again: its databases back to where they were before it
    (a no-op once a backup was restored), its units back to what they served, proven healthy."""
    first = next(iter(failed.values()))
    release = Release(first.version, first.commit)
    run = engine.new_run(release, states, event="rollback")
    for state in states:
        entry = failed.get(state.name)
        if entry is not None:
            run.previous[state.name] = _served(state.journal, entry.previous_version)
            if entry.touched:
                run.touched.add(state.name)
    shared = engine.policy.database == "shared"
    for unit, db in run.databases.items():
        entry = failed.get(unit) or (first if shared else None)
        if entry is None:
            continue
        db.before, db.after, db.backup = entry.db_before, entry.db_after, entry.backup
        db.started = entry.db_before is not None
        if entry.backup:
            run.report.backups[unit] = entry.backup
    engine.context.say(
        f"finishing the failed rollback of {release.version} on {engine.name}: "
        f"back to {first.previous_version or 'nothing'}"
    )
    return run, f"finishing the failed rollback of {release.version}"


def _recovery(engine: Engine, states: Sequence[UnitState], interrupted: list[UnitState]) -> tuple[Run, str]:
    first = interrupted[0]
    assert first.lock is not None
    dead = first.lock.run
    records = {s.name: [e for e in s.interrupted() if e.run == dead] for s in states}
    newest = records[first.name][-1]
    release = Release(newest.version, newest.commit)
    run = engine.new_run(release, states, event="recover")
    run.take_over = dead
    for state in states:
        mine = records[state.name]
        wanted = mine[-1].previous_version if mine else None
        run.previous[state.name] = _served(state.journal, wanted)
        if any(e.phase in TOUCHING for e in mine):
            run.touched.add(state.name)
    every = [e for entries in records.values() for e in entries]
    for unit, db in run.databases.items():
        sharing = every if engine.policy.database == "shared" else records.get(unit, [])
        known = [e.db_before for e in sharing if e.db_before is not None]
        if known:
            db.before, db.started = known[-1], True
        backups = [e.backup for e in sharing if e.backup]
        if backups:
            db.backup = run.report.backups[unit] = backups[-1]
    holder = first.lock.describe()
    engine.context.say(f"finishing the interrupted run {dead} ({holder}): rolling back {release.version}")
    return run, f"finishing interrupted run {dead} of {first.lock.who}"


def _served(journal: Sequence[Entry], version: str | None) -> Entry | None:
    """The newest record of ``version`` serving healthy on a unit (None: nothing to go back to)."""
    if version is None:
        return None
    return next((e for e in reversed(journal) if e.version == version and e.serving), None)


def _by_hand(engine: Engine, states: Sequence[UnitState], to: str | None) -> tuple[Run, str]:
    versions = {s.serving.version if s.serving else None for s in states}
    if len(versions) != 1 or None in versions:
        raise InputError(f"the units do not serve one known release: {sorted(map(str, versions))}")
    current = states[0].serving
    assert current is not None
    older = [[e for e in s.journal if e.version != current.version] for s in states]
    target = to or healthy_everywhere(older)
    if target is None:
        raise InputError(
            f"no release other than {current.version} was healthy on every unit: nothing to go back to"
        )
    if target == current.version:
        raise InputError(f"{target} is what serves now: nothing to roll back")
    run = engine.new_run(Release(current.version, current.commit), states, event="rollback")
    by_unit = {s.name: s for s in states}
    for state, entries in zip(states, older, strict=True):
        found = [e for e in entries if e.version == target and e.serving]
        if not found:
            raise InputError(f"{state.name} never served {target} healthy (see `invoke history`)")
        run.previous[state.name] = found[-1]
        run.touched.add(state.name)
    for unit, db in run.databases.items():
        target_entry = run.previous.get(unit)
        goal = target_entry.db_final if target_entry is not None else None
        if goal is None:
            raise NotRecorded(
                f"{unit}: the journal records no database revision for {target}: refusing to guess "
                "(a downgrade to `base` would drop the schema); nothing was changed"
            )
        db.before, db.started = goal, True
        current_entry = by_unit[unit].serving if unit in by_unit else None
        if current_entry is not None and current_entry.backup:
            db.backup = run.report.backups[unit] = current_entry.backup
    engine.context.say(f"rolling back {engine.name} from {current.version} to {target}")
    return run, f"rollback to {target} asked by {engine.context.who or 'on-call'}"

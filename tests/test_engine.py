"""The engine against the shipped FakeTarget: every way out of a deploy ends in a known state.

A failure is injected at each step of the forward path and of the rollback (a stage failure, a bug,
a deadline, a signal, a kill); each test checks what a user would: what serves, the database
revision, the journal, the lock and the exit code.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipeline.engine.cancel import Call
from pipeline.engine.recovery import prepare_rollback
from pipeline.engine.run import Context, Engine
from pipeline.engine.values import Deadlines, Policy, Release
from pipeline.errors import ExitCode, InputError, LockHeld, NotRecorded, StageError
from pipeline.journal import IN_PROGRESS, Entry
from pipeline.runreport import RunReport
from pipeline.targets.fake import FakeTarget, Killed

NOW = "2026-11-30T12:00:00Z"
V2 = Release("2.0.0", "commit-2.0.0")
UNITS = ("web1", "web2", "web3")


def make(target: FakeTarget, tmp_path: Path | None = None, run_id: str = "run-a", **policy: object) -> Engine:
    deadlines = policy.pop("deadlines", Deadlines(cancel_grace=0.05, migrate=5.0))
    settings = Policy(database=target.database, deadlines=deadlines, **policy)  # type: ignore[arg-type]
    log = str(tmp_path / "debug.log") if tmp_path else ""
    context = Context(who="tester", now=lambda: NOW, say=lambda line: None, debug_log=log, run_id=run_id)
    return Engine("prod", target, settings, context)


def deploy(target: FakeTarget, tmp_path: Path | None = None, **policy: object) -> RunReport:
    engine = make(target, tmp_path, **policy)
    return engine.deploy(V2, engine.read())


def recover(target: FakeTarget, who: str = "oncall") -> RunReport:
    engine = make(target, run_id="run-b")
    engine.context.who = who
    run, reason = prepare_rollback(engine, engine.read(), None)
    return engine.rollback(run, reason)


def serving(target: FakeTarget) -> dict[str, str | None]:
    return {name: unit.serving for name, unit in target.state.items()}


def results(target: FakeTarget, unit: str) -> list[tuple[str, str]]:
    return [(e.version, e.result) for e in target.state[unit].journal if e.result != IN_PROGRESS]


def assert_back_at_one(target: FakeTarget) -> None:
    """What a user checks after a rollback: the old release serves, the database is back, no lock."""
    assert set(serving(target).values()) == {"1.0.0"}
    assert target.db(next(iter(target.state))) == "0003"
    assert all(unit.lock is None for unit in target.state.values())
    for unit in target.state.values():
        assert unit.journal[-1].result != IN_PROGRESS, "a run ended without its outcome"


def test_a_healthy_release_is_deployed_migrated_checked_and_recorded_on_every_unit() -> None:
    target = FakeTarget(UNITS)
    report = deploy(target)
    assert (report.outcome, report.exit_code) == ("deployed", ExitCode.OK)
    assert set(serving(target).values()) == {"2.0.0"}
    assert (report.db_before, report.db_after, report.db_end) == ("0003", "0004", "0004")
    assert all(unit.lock is None for unit in target.state.values())
    for name in UNITS:
        journal = target.state[name].journal
        assert [e.phase for e in journal if e.result == IN_PROGRESS][:2] == ["deploying", "changing"]
        last = journal[-1]
        assert (last.version, last.result, last.run, last.who) == ("2.0.0", "healthy", "run-a", "tester")
        assert (last.db_before, last.db_after, last.db_end, last.previous_version) == (
            "0003",
            "0004",
            "0004",
            "1.0.0",
        )
    migrations = [c for c in target.calls if c[0] == "migrate"]
    assert migrations == [("migrate", "web1", "2.0.0")]  # a shared database is migrated once
    assert report.units == dict.fromkeys(UNITS, "deployed")


def test_units_are_deployed_in_parallel() -> None:
    target = FakeTarget(UNITS, database="none")
    for unit in UNITS:
        target.fail_at("deploy", unit, lambda call: time.sleep(0.3))
    started = time.monotonic()
    assert deploy(target).outcome == "deployed"
    assert time.monotonic() - started < 0.8


def test_a_failed_stage_names_each_failing_unit_once() -> None:
    def refuse(call: Call) -> None:  # as the compose target words it: the host first
        raise StageError("deploy", "web2: compose up failed (exit 1)", "web2")

    target = FakeTarget(UNITS)
    target.fail_at("deploy", "web2", refuse)
    report = deploy(target)
    failed = next(s for s in report.stages if s.status == "failed")
    assert failed.detail.startswith("web2: ") and "web2: web2:" not in failed.detail, failed.detail


def test_an_unhealthy_unit_restores_every_unit_and_downgrades_the_database() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("health", "web2")
    report = deploy(target)
    assert (report.outcome, report.exit_code, report.reason) == ("rolled_back", 1, "health failed")
    assert_back_at_one(target)
    assert results(target, "web3")[-2:] == [("2.0.0", "rolled_back"), ("1.0.0", "restored")]
    restored = target.state["web3"].journal[-1]
    assert (restored.event, restored.who, restored.previous_version) == ("rollback", "tester", "2.0.0")
    assert (restored.db_before, restored.db_after) == ("0004", "0003")  # its own, not the failed deploy's
    assert [p.name for p in report.rollback] == ["downgrade", *["restore"] * 3, *["health"] * 3]
    assert {e.host for e in report.evidence if e.kind == "logs"} == {"web2"}
    assert report.databases == {"web1": {"before": "0003", "after": "0004", "end": "0003"}}


HOWS = ["fail", "raise", "hang"]
STEPS = [("deploy", "web2"), ("revision", "web1"), ("migrate", "web1"), ("head", "web1"), ("health", "web3")]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize(("operation", "unit"), STEPS)
def test_any_failure_on_the_forward_path_rolls_back_and_exits_1(
    operation: str, unit: str, how: str, tmp_path: Path
) -> None:
    target = FakeTarget(UNITS)
    target.fail_at(operation, unit, how)
    deadlines = Deadlines(cancel_grace=0.05, deploy=0.3, migrate=0.3, health=0.3)
    report = deploy(target, tmp_path, deadlines=deadlines)
    assert (report.outcome, report.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK), report.reason
    assert_back_at_one(target)
    if how == "raise":
        assert report.reason.startswith("internal error: ValueError: a bug in")
        assert "Traceback" in (tmp_path / "debug.log").read_text()
        assert report.debug_log == str(tmp_path / "debug.log")
    if how == "hang":
        assert "passed its deadline of 0.3 s" in report.reason or "deadline" in str(report.stages)
    for name in UNITS:
        assert results(target, name)[-1][1] in ("restored", "rolled_back")


@pytest.mark.parametrize(("operation", "unit"), [*STEPS, ("lock", "web3"), ("record", "web2")])
def test_a_signal_at_any_step_rolls_back_what_was_touched_or_stops_before_any_change(
    operation: str, unit: str
) -> None:
    target = FakeTarget(UNITS)
    engine = make(target)
    target.before = lambda op, where: (
        engine.cancel.request("SIGTERM received") if (op, where) == (operation, unit) else None
    )
    report = engine.deploy(V2, engine.read())
    if operation in ("lock", "record"):  # before the first change: nothing to roll back
        assert (report.outcome, report.exit_code) == ("interrupted", ExitCode.TERMINATED)
    else:
        assert report.outcome == "cancelled" and report.exit_code == ExitCode.ROLLED_BACK
    assert_back_at_one(target)


@pytest.mark.parametrize(("signal_name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_cancel_before_any_change_restores_nothing_and_exits_130_or_143(
    signal_name: str, code: int
) -> None:
    target = FakeTarget(UNITS)
    engine = make(target)
    target.before = lambda op, where: (
        engine.cancel.request(f"{signal_name} received") if op == "lock" else None
    )
    report = engine.deploy(V2, engine.read())
    assert (report.outcome, report.exit_code) == ("interrupted", code)
    assert (
        report.summary()
        == f"deploy of 2.0.0 interrupted: {signal_name} received before any change; nothing was changed"
    )
    assert not [c for c in target.calls if c[0] in ("deploy", "restore")]
    assert all(unit.lock is None for unit in target.state.values())


def test_a_signal_stops_the_step_in_flight_after_the_grace_period() -> None:
    target = FakeTarget(UNITS)
    engine = make(target, deadlines=Deadlines(cancel_grace=0.1, migrate=60.0))
    target.fail_at("migrate", "web1", "hang")
    timer = threading.Timer(0.2, lambda: engine.cancel.request("SIGTERM received"))
    started = time.monotonic()
    timer.start()
    report = engine.deploy(V2, engine.read())
    assert time.monotonic() - started < 2
    assert (report.outcome, report.reason) == ("cancelled", "SIGTERM received")
    assert_back_at_one(target)


def test_a_second_signal_during_the_rollback_does_not_stop_it() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("health", "web1")
    engine = make(target)
    target.before = lambda op, where: engine.cancel.request("SIGTERM received") if op == "restore" else None
    report = engine.deploy(V2, engine.read())
    assert report.outcome == "rolled_back"
    assert_back_at_one(target)


@pytest.mark.parametrize("how", ["fail", "raise", "hang"])
@pytest.mark.parametrize(("operation", "unit"), [("restore", "web2"), ("downgrade", "web1")])
def test_a_failing_rollback_part_exits_4_and_the_other_parts_still_run(
    operation: str, unit: str, how: str, tmp_path: Path
) -> None:
    target = FakeTarget(UNITS)
    target.fail_at("health", "web3")
    target.fail_at(operation, unit, how)
    report = deploy(target, tmp_path, deadlines=Deadlines(cancel_grace=0.05, restore=0.3, migrate=0.3))
    assert (report.outcome, report.exit_code) == ("rollback_failed", ExitCode.ROLLBACK_FAILED)
    assert "ROLLBACK FAILED" in report.summary()
    failed = [(p.name, p.host) for p in report.rollback if p.status == "failed"]
    assert failed == [(operation, unit)]
    assert serving(target)["web3"] == "1.0.0"  # the other units were still restored
    assert all(u.lock is None for u in target.state.values())
    assert results(target, unit)[-1] == ("2.0.0", "failed")


def test_a_crash_at_start_is_a_rollback_with_nothing_lost() -> None:
    """The new release's container exits at start: its health fails, the old release serves, exit 1."""
    target = FakeTarget(UNITS)
    target.broken.add("2.0.0")
    report = deploy(target)
    assert (report.outcome, report.exit_code) == ("rolled_back", 1)
    assert_back_at_one(target)


def test_a_migration_that_does_not_reach_the_release_head_fails_the_stage() -> None:
    target = FakeTarget(UNITS)

    def moved_on(call: Call) -> None:
        target.heads["2.0.0"] = "0009"

    target.fail_at("head", "web1", moved_on)
    report = deploy(target)
    assert report.outcome == "rolled_back"
    assert "the release's head is 0009" in report.stages[-1].detail
    assert_back_at_one(target)


@pytest.mark.parametrize(
    ("operation", "unit"),
    [("deploy", "web2"), ("migrate", "web1"), ("health", "web3"), ("downgrade", "web1"), ("restore", "web2")],
)
def test_a_run_killed_at_any_step_is_refused_by_deploy_and_finished_by_rollback(
    operation: str, unit: str
) -> None:
    target = FakeTarget(UNITS)
    if operation in ("downgrade", "restore"):
        target.fail_at("health", "web3")  # so that the rollback runs, and is killed in its turn
    target.fail_at(operation, unit, "kill")
    with pytest.raises(Killed):
        deploy(target)
    assert all(u.lock is not None for u in target.state.values())

    again = make(target, run_id="run-c")
    with pytest.raises(LockHeld, match="if it was interrupted, `invoke rollback --env prod`"):
        again.refuse_locks(again.read())

    report = recover(target)
    assert (report.outcome, report.exit_code) == ("restored", ExitCode.OK), report.render_text()
    assert_back_at_one(target)
    last = target.state["web1"].journal[-1]
    assert last.who == "oncall" and last.run == "run-b"
    assert report.reason == "finishing interrupted run run-a of tester"


def test_a_run_killed_during_its_recovery_is_recovered_again() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("migrate", "web1", "kill")
    with pytest.raises(Killed):
        deploy(target)
    target.fail_at("restore", "web2", "kill")
    with pytest.raises(Killed):
        recover(target)
    report = recover(target, who="second")
    assert report.outcome == "restored"
    assert_back_at_one(target)


def test_a_run_killed_before_it_changed_anything_is_recovered_without_restoring() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("deploy", "web1", "kill")
    target.fail_at("deploy", "web2", "kill")
    target.fail_at("deploy", "web3", "kill")
    with pytest.raises(Killed):
        deploy(target)
    report = recover(target)
    assert report.outcome == "restored"
    assert not [c for c in target.calls if c[0] in ("restore", "downgrade")]
    assert all(u.lock is None for u in target.state.values())


def test_a_rolling_deploy_whose_second_batch_fails_restores_the_first_and_never_touches_the_third() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("health", "web2")
    report = deploy(target, strategy="rolling", batch_size=1)
    assert report.outcome == "rolled_back"
    assert_back_at_one(target)
    assert [s.name for s in report.stages] == [
        "deploy (batch 1)", "migrate (batch 1)", "health (batch 1)", "deploy (batch 2)", "health (batch 2)",
    ]  # fmt: skip
    assert not [c for c in target.calls if c[:2] == ("deploy", "web3")]
    assert report.units == {"web1": "restored", "web2": "restored", "web3": "untouched"}
    assert results(target, "web3")[-1] == ("2.0.0", "rolled_back")
    assert not target.state["web3"].journal[-1].touched


def test_a_tolerated_failure_restores_only_that_unit_and_the_run_succeeds() -> None:
    target = FakeTarget(UNITS, database="per_host")
    target.fail_at("health", "web2")
    report = deploy(target, max_failed_units=1)
    assert (report.outcome, report.exit_code) == ("deployed", ExitCode.OK)
    assert serving(target) == {"web1": "2.0.0", "web2": "1.0.0", "web3": "2.0.0"}
    assert [target.db(u) for u in UNITS] == ["0004", "0003", "0004"]
    assert report.units == {"web1": "deployed", "web2": "restored", "web3": "deployed"}
    assert results(target, "web2")[-2:] == [("2.0.0", "rolled_back"), ("1.0.0", "restored")]


def test_per_host_databases_are_migrated_and_downgraded_host_by_host() -> None:
    target = FakeTarget(UNITS, database="per_host")
    target.fail_at("health", "web3")
    report = deploy(target)
    assert report.outcome == "rolled_back"
    assert [c[1] for c in target.calls if c[0] == "migrate"] and len(
        [c for c in target.calls if c[0] == "migrate"]
    ) == 3
    assert sorted(c[1] for c in target.calls if c[0] == "downgrade") == list(UNITS)
    assert [target.db(u) for u in UNITS] == ["0003"] * 3
    assert set(report.databases) == set(UNITS)


def test_per_host_databases_all_reach_the_head() -> None:
    target = FakeTarget(UNITS, database="per_host")
    assert deploy(target).outcome == "deployed"
    assert [target.db(u) for u in UNITS] == ["0004"] * 3
    for unit in UNITS:
        assert target.state[unit].journal[-1].db_after == "0004"


def test_a_failed_first_deploy_removes_the_new_release_only_where_it_was_put() -> None:
    target = FakeTarget(UNITS, serving=None, revision="base")
    target.fail_at("deploy", "web2")
    report = deploy(target)
    assert report.outcome == "rolled_back"
    restored = {c[1] for c in target.calls if c[0] == "restore"}
    assert restored == {"web1", "web3"} or restored <= {"web1", "web3"}
    assert "web2" not in restored
    assert all(u.serving is None for u in target.state.values())


def test_a_journal_that_cannot_be_written_at_the_end_needs_a_human() -> None:
    target = FakeTarget(UNITS, database="none")
    calls = {"n": 0}

    def fail_on_outcome(call: Call) -> None:
        calls["n"] += 1

    target.fail_at("record", "web2", fail_on_outcome)
    engine = make(target)
    states = engine.read()
    original = target.record

    def record(unit: str, entries: list[Entry], call: Call) -> None:
        if unit == "web2" and any(e.result == "healthy" for e in entries):
            from pipeline.errors import StageError

            raise StageError("record", "tee: No space left on device", unit)
        original(unit, entries, call)

    target.record = record  # type: ignore[method-assign]
    report = engine.deploy(V2, states)
    assert (report.outcome, report.exit_code) == ("record_failed", ExitCode.ROLLBACK_FAILED)
    assert "the journal of web2 was not written" in report.reason


def test_a_rerun_of_what_every_unit_serves_is_a_noop() -> None:
    target = FakeTarget(UNITS, serving="2.0.0", revision="0004")
    report = deploy(target)
    assert report.outcome == "noop"
    assert not [c for c in target.calls if c[0] in ("deploy", "record")]


def test_a_held_lock_exits_5_and_gives_back_the_locks_taken() -> None:
    target = FakeTarget(UNITS)
    engine = make(target)
    states = engine.read()
    from pipeline.engine.values import LockInfo

    target.state["web2"].lock = LockInfo(who="alice", at="2026-11-30T11:00:00Z", version="1.9.0", run="other")
    with pytest.raises(
        LockHeld, match=r"web2: a deploy holds the lock: alice since 2026-11-30T11:00:00Z \(1\.9\.0\)"
    ):
        engine.deploy(V2, states)
    assert target.state["web1"].lock is None and target.state["web3"].lock is None
    assert target.state["web2"].lock is not None and target.state["web2"].lock.who == "alice"


def test_a_lock_that_cannot_be_taken_is_not_a_held_lock() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("lock", "web3")
    engine = make(target)
    with pytest.raises(InputError, match="cannot take the deploy lock on web3"):
        engine.deploy(V2, engine.read())
    assert all(u.lock is None for u in target.state.values())
    assert not [c for c in target.calls if c[0] == "deploy"]


def test_a_manual_rollback_goes_back_to_the_last_release_healthy_everywhere() -> None:
    target = FakeTarget(UNITS)
    assert deploy(target).outcome == "deployed"
    report = recover(target)
    assert (report.outcome, report.exit_code) == ("restored", ExitCode.OK)
    assert_back_at_one(target)
    assert results(target, "web1")[-2:] == [("2.0.0", "rolled_back"), ("1.0.0", "restored")]
    assert target.state["web1"].journal[-1].who == "oncall"


def test_a_manual_rollback_never_downgrades_to_a_revision_no_journal_recorded() -> None:
    target = FakeTarget(UNITS)
    for unit in target.state.values():  # a journal from before revisions were recorded
        unit.journal = [Entry(**{**e.__dict__, "db_after": None, "db_before": None}) for e in unit.journal]
    assert deploy(target).outcome == "deployed"
    engine = make(target, run_id="run-b")
    with pytest.raises(
        NotRecorded, match=r"records no database revision for 1\.0\.0: refusing to guess"
    ) as caught:
        prepare_rollback(engine, engine.read(), None)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert target.db("web1") == "0004" and set(serving(target).values()) == {"2.0.0"}
    assert not [c for c in target.calls if c[0] == "downgrade"]


def test_a_journal_that_cannot_be_written_before_any_change_stops_the_run_unchanged() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("record", "web2")
    report = deploy(target)
    assert (report.outcome, report.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK)
    assert report.reason.endswith("nothing was changed")
    assert not [c for c in target.calls if c[0] in ("deploy", "migrate", "restore")]
    assert all(u.lock is None for u in target.state.values())


def test_a_tolerated_unit_whose_restore_fails_needs_a_human() -> None:
    target = FakeTarget(UNITS, database="none")
    target.fail_at("health", "web2")
    target.fail_at("restore", "web2")
    report = deploy(target, max_failed_units=1)
    assert (report.outcome, report.exit_code) == ("rollback_failed", ExitCode.ROLLBACK_FAILED)
    assert report.units["web2"] == "rollback failed"


def test_a_standalone_migration_that_fails_says_so_and_releases_the_lock() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("migrate", "web1")
    engine = make(target)
    states = engine.read()
    report = engine.migrate(Release("1.0.0", "commit-1.0.0"), states)
    assert (report.outcome, report.exit_code) == ("migrate_failed", ExitCode.ROLLED_BACK)
    assert all(u.lock is None for u in target.state.values())
    assert target.state["web1"].journal[-1].result == "failed"


def test_a_manual_rollback_killed_halfway_is_finished_by_the_next_rollback() -> None:
    target = FakeTarget(UNITS)
    assert deploy(target).outcome == "deployed"
    target.fail_at("restore", "web3", "kill")
    with pytest.raises(Killed):
        recover(target)
    assert target.db("web1") == "0003"  # the downgrade had happened
    report = recover(target, who="second")
    assert report.outcome == "restored", report.render_text()
    assert_back_at_one(target)
    assert results(target, "web3")[-1] == ("1.0.0", "restored")


def test_a_migration_that_moved_nothing_is_not_read_again_in_the_rollback() -> None:
    target = FakeTarget(UNITS, heads={"2.0.0": "0003"})
    target.fail_at("health", "web1")
    report = deploy(target)
    assert report.outcome == "rolled_back"
    first_health = next(i for i, c in enumerate(target.calls) if c[0] == "health")
    assert not [c for c in target.calls[first_health:] if c[0] in ("revision", "downgrade")]
    assert [p.detail for p in report.rollback if p.name == "downgrade"] == [
        "the migration left the database at 0003"
    ]


@pytest.mark.parametrize("how", ["fail", "raise", "hang"])
def test_any_failure_while_locking_gives_back_every_lock_and_changes_nothing(how: str) -> None:
    target = FakeTarget(UNITS)
    journals = {name: list(unit.journal) for name, unit in target.state.items()}
    target.fail_at("lock", "web2", how)
    engine = make(target, deadlines=Deadlines(cancel_grace=0.05, lock=0.3))
    with pytest.raises(InputError, match="cannot take the deploy lock on web2"):
        engine.deploy(V2, engine.read())
    assert all(u.lock is None for u in target.state.values())
    assert {name: unit.journal for name, unit in target.state.items()} == journals


def test_a_run_killed_while_locking_leaves_a_held_lock_that_unlock_releases() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("lock", "web3", "kill")
    with pytest.raises(Killed):
        deploy(target)
    engine = make(target, run_id="run-b")
    states = engine.read()
    with pytest.raises(LockHeld, match="a deploy holds the lock: tester since"):
        engine.refuse_locks(states)  # nothing was changed: not an interrupted run to roll back
    with pytest.raises(LockHeld):
        prepare_rollback(engine, states, None)
    assert {s.name for s in engine.unlock_held(states)} <= set(UNITS)
    assert all(u.lock is None for u in target.state.values())
    assert set(serving(target).values()) == {"1.0.0"} and target.db("web1") == "0003"


def test_a_lock_that_cannot_be_released_at_the_end_stays_and_the_report_says_so() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("unlock", "web2")
    report = deploy(target)
    assert report.outcome == "deployed"
    assert [(s.name, s.status, s.host) for s in report.stages if s.name == "unlock"] == [
        ("unlock", "failed", "web2")
    ]
    assert target.state["web2"].lock is not None and target.state["web1"].lock is None


@pytest.mark.parametrize("how", ["fail", "raise"])
def test_evidence_that_cannot_be_captured_does_not_stop_the_rollback(how: str) -> None:
    target = FakeTarget(UNITS)
    target.fail_at("health", "web2")
    target.fail_at("evidence", "web2", how)
    report = deploy(target)
    assert (report.outcome, report.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK)
    assert [e.text.split(":")[0] for e in report.evidence if e.kind == "evidence"] == [
        "could not be captured"
    ]
    assert_back_at_one(target)


def test_a_previous_release_that_fails_its_checks_after_the_restore_needs_a_human() -> None:
    target = FakeTarget(UNITS)
    target.fail_at("health", "web2")
    target.before = lambda op, unit: (
        target.fail_at("health", "web1") if (op, unit) == ("restore", "web1") else None
    )
    report = deploy(target)
    assert (report.outcome, report.exit_code) == ("rollback_failed", ExitCode.ROLLBACK_FAILED)
    assert [(p.name, p.host) for p in report.rollback if p.status == "failed"] == [("health", "web1")]
    assert results(target, "web1")[-1] == ("2.0.0", "failed")
    assert all(u.lock is None for u in target.state.values())

"""Database backups: names, configuration, the engine's backup before migrating, a failed rollback's
restore hint and its finish, against the shipped FakeTarget."""

from __future__ import annotations

import pytest

from pipeline.backups import BackupFile, backup_name, check_name, parse_listing
from pipeline.config import load_config
from pipeline.engine.recovery import prepare_rollback
from pipeline.engine.run import Context, Engine
from pipeline.engine.values import Deadlines, Policy, Release
from pipeline.errors import ConfigError, ExitCode, InputError
from pipeline.journal import BACKED_UP, IN_PROGRESS, Entry, parse_journal
from pipeline.runreport import RunReport
from pipeline.targets.fake import FakeTarget, Killed

NOW = "2026-12-01T04:15:00Z"
NAME = "20261201T041500Z-2.0.0-0003.sql.gz"
V2 = Release("2.0.0", "commit-2.0.0")
UNITS = ("web1", "web2")


def make(target: FakeTarget, run_id: str = "run-a") -> Engine:
    policy = Policy(database=target.database, deadlines=Deadlines(cancel_grace=0.05, migrate=5.0))
    context = Context(who="tester", now=lambda: NOW, say=lambda line: None, run_id=run_id)
    return Engine("prod", target, policy, context)


def deploy(target: FakeTarget) -> RunReport:
    engine = make(target)
    return engine.deploy(V2, engine.read())


def rollback(target: FakeTarget) -> RunReport:
    engine = make(target, run_id="run-b")
    run, reason = prepare_rollback(engine, engine.read(), None)
    return engine.rollback(run, reason)


def operations(target: FakeTarget, unit: str = "web1") -> list[str]:
    return [op for op, where, _ in target.calls if where == unit and op not in ("record", "lock", "unlock")]


# -- names ------------------------------------------------------------------------------------------


def test_a_backup_name_says_when_which_release_and_which_revision() -> None:
    name = backup_name(NOW, "2.0.0-rc.1", "0003")
    assert name == "20261201T041500Z-2.0.0-rc.1-0003.sql.gz"
    found = BackupFile(name, 10)
    assert (found.at, found.revision) == (NOW, "0003")


@pytest.mark.parametrize(
    "given",
    [
        "../20261201T041500Z-2.0.0-0003.sql.gz",
        "/etc/passwd",
        "20261201T041500Z-2.0.0-0003.sql",
        "20261201T041500Z-2.0.0-0003.sql.gz/..",
        "20261201T041500Z-2.0.0-00 03.sql.gz",
        "20261201T041500Z--0003.sql.gz",
        "-rf",
        "",
        None,
    ],
)
def test_a_from_that_is_not_a_backup_name_is_refused_as_bad_input(given: str | None) -> None:
    with pytest.raises(InputError, match=r"--from: .* is not a backup name"):
        check_name(given)


def test_a_listing_keeps_backup_names_only_oldest_first() -> None:
    text = f"{NAME} 120\n.{NAME}.partial 7\nnotes.txt 3\n20261130T000000Z-1.0.0-0002.sql.gz 99\n"
    assert parse_listing(text) == [
        BackupFile("20261130T000000Z-1.0.0-0002.sql.gz", 99),
        BackupFile(NAME, 120),
    ]


def test_a_journal_line_with_a_backup_reads_back_and_a_forged_one_is_damaged() -> None:
    entry = Entry("backup", "1.0.0", None, None, "0003", None, BACKED_UP, "", "ci", NOW, backup=NAME)
    assert parse_journal(entry.line()) == [entry]
    forged = entry.line().replace(NAME, "../../etc/passwd")
    assert parse_journal(forged) == []
    plain = Entry("deploy", "1.0.0", None, None, None, None, "healthy", "", "ci", NOW)
    assert "backup" not in plain.line()  # lines without a backup look as they always did


# -- configuration ---------------------------------------------------------------------------------


def compose(**backup: object) -> dict[str, object]:
    return {
        "environments": {
            "prod": {
                "target": "compose",
                "hosts": ["deploy@web1"],
                "path": "/srv/app",
                "migrate": {"service": "api"},
                "backup": backup,
            }
        }
    }


def test_a_backup_key_gets_postgresql_defaults() -> None:
    env = load_config(compose()).environment("prod")
    assert env.backup is not None
    assert (env.backup.keep, env.backup.dir, env.backup.service) == (7, "", "")
    assert env.backup.command.startswith("pg_dump") and "$DATABASE_URL" in env.backup.command
    assert env.deadlines.backup == 1800.0


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        ({"keep": 0}, "pipeline.environments.prod.backup.keep: 0 must be between 1 and 1000"),
        ({"dir": "backups"}, "pipeline.environments.prod.backup.dir: 'backups' must be an absolute path"),
        ({"dir": "/srv/../etc"}, "pipeline.environments.prod.backup.dir: '/srv/../etc' must be an absolute"),
        ({"service": "db; rm"}, "pipeline.environments.prod.backup.service: 'db; rm' is not a service name"),
        (
            {"restore": "psql 'open"},
            'pipeline.environments.prod.backup.restore: "psql \'open" cannot be parsed',
        ),
        ({"comand": "x"}, "pipeline.environments.prod.backup.comand"),
    ],
)
def test_a_bad_backup_key_names_its_path(backup: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(compose(**backup))
    assert message in str(caught.value)


def test_a_helm_environment_refuses_backup_as_an_unknown_key() -> None:
    raw = {
        "environments": {
            "k": {"target": "helm", "release": "app", "chart": "chart", "namespace": "app", "backup": {}}
        }
    }
    with pytest.raises(ConfigError, match=r"pipeline\.environments\.k\.backup"):
        load_config(raw)


# -- the backup before a migration ---------------------------------------------------------------------


def test_a_migration_that_changes_the_schema_is_preceded_by_a_backup_named_in_journal_and_report() -> None:
    target = FakeTarget(UNITS, keep=7)
    report = deploy(target)
    assert report.exit_code == ExitCode.OK
    assert operations(target)[:5] == ["read", "deploy", "revision", "head", "backup"]
    assert operations(target).index("backup") < operations(target).index("migrate")
    assert operations(target, "web2").count("backup") == 0  # a shared database: one backup
    assert target.kept["web1"] == {NAME: "0003"}
    assert report.backups == {"web1": NAME}
    assert f"backup [web1]: {NAME}" in report.render_text()
    for unit in UNITS:
        journal = target.state[unit].journal
        migrating = [e for e in journal if e.result == IN_PROGRESS and e.phase == "migrating"]
        assert [e.backup for e in migrating] == [NAME]
        assert journal[-1].backup == NAME


def test_a_run_killed_after_its_backup_is_finished_by_rollback_naming_that_backup() -> None:
    target = FakeTarget(UNITS, keep=7)
    target.fail_at("migrate", "web1", "kill")  # SIGKILL: no rollback, the lock and in_progress lines stay
    with pytest.raises(Killed):
        deploy(target)
    assert target.kept["web1"] == {NAME: "0003"}
    assert all(unit.lock is not None for unit in target.state.values())
    report = rollback(target)
    assert report.outcome == "restored" and report.backups == {"web1": NAME}
    assert {unit.serving for unit in target.state.values()} == {"1.0.0"}
    assert target.db("web1") == "0003"
    assert all(unit.lock is None for unit in target.state.values())
    assert all(unit.journal[-1].result != IN_PROGRESS for unit in target.state.values())


def test_no_backup_when_the_database_is_already_at_the_release_head() -> None:
    target = FakeTarget(UNITS, keep=7, heads={"2.0.0": "0003"})
    assert deploy(target).exit_code == ExitCode.OK
    assert "backup" not in operations(target)
    assert target.kept == {}


def test_no_backup_when_none_is_configured() -> None:
    target = FakeTarget(UNITS)
    report = deploy(target)
    assert report.exit_code == ExitCode.OK and report.backups == {}
    assert "backup" not in operations(target)


def test_per_host_databases_are_each_backed_up_on_their_own_host() -> None:
    target = FakeTarget(UNITS, database="per_host", keep=7)
    assert deploy(target).exit_code == ExitCode.OK
    assert target.kept == {"web1": {NAME: "0003"}, "web2": {NAME: "0003"}}


@pytest.mark.parametrize("how", ["fail", "hang"])
def test_a_backup_that_fails_stops_the_deploy_before_any_migration_and_rolls_back(how: str) -> None:
    target = FakeTarget(UNITS, keep=7)
    engine = make(target)
    engine.policy = Policy(database="shared", deadlines=Deadlines(cancel_grace=0.05, migrate=0.3))
    target.fail_at("backup", "web1", how)
    report = engine.deploy(V2, engine.read())
    assert (report.outcome, report.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK)
    assert "migrate" not in operations(target) and "downgrade" not in operations(target)
    assert target.db("web1") == "0003"
    assert set(u.serving for u in target.state.values()) == {"1.0.0"}
    failed = [s for s in report.stages if s.status == "failed"]
    assert failed[0].name == "migrate" and "the backup before the migration failed" in failed[0].detail
    assert report.backups == {}


def test_retention_keeps_only_the_newest_backups() -> None:
    target = FakeTarget(UNITS, keep=2)
    for stamp, version in (("01", "2.0.0"), ("02", "3.0.0"), ("03", "4.0.0")):
        engine = make(target, run_id=f"run-{stamp}")
        engine.context.now = lambda stamp=stamp: f"2026-12-{stamp}T00:00:00Z"
        target.heads[version] = f"00{int(stamp) + 3:02d}"
        assert engine.deploy(Release(version, f"c{version}"), engine.read()).exit_code == ExitCode.OK
    assert sorted(target.kept["web1"]) == [
        "20261202T000000Z-3.0.0-0004.sql.gz",
        "20261203T000000Z-4.0.0-0005.sql.gz",
    ]


# -- a failed downgrade: the report names the restore, and rollback finishes after it ----------------


def test_a_failed_downgrade_names_the_backup_and_the_exact_restore_command() -> None:
    target = FakeTarget(UNITS, keep=7)
    target.broken.add("2.0.0")
    target.fail_at("downgrade", "web1")
    report = deploy(target)
    assert report.exit_code == ExitCode.ROLLBACK_FAILED
    command = f"invoke restore --env prod --from {NAME}"
    assert report.restore_commands() == [command]
    assert command in report.summary() and "a human is needed now" in report.summary()
    assert report.to_data()["backups"] == {"web1": NAME}


def test_a_failed_restore_of_the_code_alone_names_no_restore_of_the_database() -> None:
    target = FakeTarget(UNITS, keep=7)
    target.broken.add("2.0.0")
    target.fail_at("restore", "web2")
    report = deploy(target)
    assert report.exit_code == ExitCode.ROLLBACK_FAILED
    assert report.restore_commands() == [] and "invoke restore" not in report.summary()


def test_after_the_backup_is_restored_rollback_finishes_the_failed_rollback() -> None:
    target = FakeTarget(UNITS, keep=7)
    target.broken.add("2.0.0")
    target.fail_at("downgrade", "web1")
    assert deploy(target).exit_code == ExitCode.ROLLBACK_FAILED
    assert target.db("web1") == "0004"
    engine = make(target, run_id="run-r")
    engine.target.restore_backup("web1", NAME, "1.0.0", engine.call("backup", "web1"))
    assert target.db("web1") == "0003"

    report = rollback(target)
    assert (report.outcome, report.exit_code) == ("restored", ExitCode.OK), report.render_text()
    assert "downgrade" not in [op for op, _, _ in target.calls[-12:]]  # the database is already back
    for unit in UNITS:
        assert [(e.version, e.result) for e in target.state[unit].journal[-2:]] == [
            ("2.0.0", "rolled_back"),
            ("1.0.0", "restored"),
        ]
        assert target.state[unit].lock is None
    again = make(target, run_id="run-c")
    with pytest.raises(InputError, match="nothing to go back to"):
        prepare_rollback(again, again.read(), None)  # finished: back to by-hand rollbacks


def test_a_rollback_after_a_failed_one_without_a_restore_tries_the_downgrade_again_and_names_the_backup() -> (
    None
):
    target = FakeTarget(UNITS, keep=7)
    target.broken.add("2.0.0")
    target.fail_at("downgrade", "web1")
    assert deploy(target).exit_code == ExitCode.ROLLBACK_FAILED
    target.fail_at("downgrade", "web1")
    report = rollback(target)
    assert report.exit_code == ExitCode.ROLLBACK_FAILED
    assert f"invoke restore --env prod --from {NAME}" in report.summary()


def test_a_migration_on_its_own_is_preceded_by_a_backup_too() -> None:
    target = FakeTarget(UNITS, keep=7, heads={"1.0.0": "0004"})
    engine = make(target)
    report = engine.migrate(Release("1.0.0", "commit-1.0.0"), engine.read())
    assert report.exit_code == ExitCode.OK
    assert target.kept["web1"] == {"20261201T041500Z-1.0.0-0003.sql.gz": "0003"}
    assert target.state["web1"].journal[-1].backup == "20261201T041500Z-1.0.0-0003.sql.gz"


def test_a_backup_on_its_own_does_not_make_a_rerun_of_what_serves_a_deploy_again() -> None:
    target = FakeTarget(UNITS)
    for unit in UNITS:
        target.state[unit].journal.append(
            Entry("backup", "1.0.0", None, None, "0003", None, BACKED_UP, "", "ci", NOW, backup=NAME)
        )
    engine = make(target)
    report = engine.deploy(Release("1.0.0", "commit-1.0.0"), engine.read())
    assert report.outcome == "noop"
    assert "deploy" not in operations(target)

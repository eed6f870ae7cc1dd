"""The compose target's backups through the executor seam: which commands run where, under which
deadline, and in which order with the migration (the fake hosts of ``test_compose_target``)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from test_compose_target import CONFIG, NEW, STATE, Hosts, alembic, compose, connected, deploy

from pipeline import backupops
from pipeline.backups import DEFAULT_COMMAND, DEFAULT_RESTORE, NAME_ERE, RestoreFailed
from pipeline.config import load_config
from pipeline.engine.plan import render_plan
from pipeline.engine.values import Release
from pipeline.errors import ExitCode, InputError, LockHeld
from pipeline.targets.compose import ComposeTarget

NAME = "20261130T000000Z-2.0.0-0003.sql.gz"
BACKUP = {"service": "db", "keep": 3}


def backups_run(hosts: Hosts, host: str) -> list[tuple[str, ...]]:
    return [r for r in hosts.on(host) if r[:2] == ("sh", "-c") and r[3] == "pl-backup"]


def test_the_database_host_dumps_in_its_service_before_the_upgrade_under_the_migrate_deadline() -> None:
    hosts = Hosts()
    report = deploy(hosts, backup=BACKUP)
    assert report.exit_code == ExitCode.OK, report.render_text()
    [argv] = backups_run(hosts, "web1")
    dump = compose("2.0.0", "exec", "-T", "db", "sh", "-c", DEFAULT_COMMAND)
    assert argv[4:] == (f"{STATE}/backups", NAME, "3", NAME_ERE, *dump)
    on_web1 = hosts.on("web1")
    assert on_web1.index(argv) < on_web1.index(alembic("upgrade", "head"))
    seconds = [s for h, r, _, s in hosts.seen if r == argv]
    assert seconds and seconds[0] is not None and seconds[0] <= 600
    assert backups_run(hosts, "web2") == []  # one database, one backup
    assert report.backups == {"web1": NAME}
    assert all(hosts.entries(h)[-1].backup == NAME for h in ("web1", "web2", "web3"))


def test_a_backup_on_the_host_runs_the_command_in_the_ssh_session_in_a_folder_of_choice() -> None:
    hosts = Hosts()
    assert deploy(hosts, backup={"dir": "/var/backups/app", "command": "mysqldump app"}).exit_code == 0
    [argv] = backups_run(hosts, "web1")
    assert argv[4:] == ("/var/backups/app", NAME, "7", NAME_ERE, "sh", "-c", "mysqldump app")


def test_a_failed_dump_stops_the_deploy_before_the_upgrade_and_says_why() -> None:
    hosts = Hosts()
    hosts.fail.append((lambda host, argv: "pl-backup" in argv, (1, "", "pg_dump: error: connection refused")))
    report = deploy(hosts, backup=BACKUP)
    assert (report.outcome, report.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK)
    assert alembic("upgrade", "head") not in hosts.on("web1")
    assert hosts.revision == "0003" and set(hosts.serving.values()) == {"1.0.0"}
    text = report.render_text()
    assert "the backup before the migration failed; nothing was migrated" in text
    assert "pg_dump: error: connection refused" in text


def test_the_dry_run_plan_shows_the_backup_between_reading_the_revision_and_migrating() -> None:
    hosts = Hosts()
    with connected(hosts, backup=BACKUP) as (engine, target):
        states = engine.read()
        plan = render_plan("prod", target, engine.policy, Release("2.0.0", NEW), states, {"web1": "0003"})
    dump = shlex.join(compose("2.0.0", "exec", "-T", "db", "sh", "-c", DEFAULT_COMMAND))
    line = next(i for i, text in enumerate(plan) if text.startswith("  backup   [web1]"))
    assert plan[line] == (
        f"  backup   [web1] {dump} | gzip > {STATE}/backups/<time>-2.0.0-<revision>.sql.gz "
        "(written whole, then renamed; keep 3)"
    )
    assert plan[line - 1] == f"  migrate  [web1] {shlex.join(alembic('current'))}"
    assert plan[line + 1] == f"  migrate  [web1] {shlex.join(alembic('upgrade', 'head'))}"
    assert not backups_run(hosts, "web1")


# -- invoke backup and invoke restore on their own ------------------------------------------------------

KEPT = "20261129T120000Z-1.0.0-0003.sql.gz"


def config(**backup: object) -> Any:
    return load_config({"environments": {"prod": {**CONFIG, "backup": {"keep": 3, **backup}}}})


def listing(hosts: Hosts) -> None:
    hosts.fail.append((lambda host, argv: "pl-backups" in argv, (0, f"{KEPT} 1234\n", "")))


def test_a_backup_on_its_own_takes_the_lock_as_backup_records_it_and_gives_the_lock_back() -> None:
    hosts, said = Hosts(), []
    assert backupops.backup(config(), "prod", hosts.executor, said.append) == ExitCode.OK
    [argv] = backups_run(hosts, "web1")
    assert re.fullmatch(r"[0-9]{8}T[0-9]{6}Z-1\.0\.0-0003\.sql\.gz", argv[5])
    locks = [stdin for h, r, stdin, _ in hosts.seen if h == "web2" and r[3:4] == ("pl-lock",)]
    assert locks and json.loads(str(locks[0]))["operation"] == "backup"
    assert all(lock is None for lock in hosts.locks.values())
    line = hosts.entries("web1")[-1]
    assert (line.event, line.result, line.backup, line.db_before) == ("backup", "backed_up", argv[5], "0003")
    assert hosts.entries("web2")[-1].event == "deploy"  # only the database's host keeps backups


def test_a_failed_backup_on_its_own_exits_1_and_records_the_failure() -> None:
    hosts, said = Hosts(), []
    hosts.fail.append((lambda host, argv: "pl-backup" in argv, (1, "", "pg_dump: error: no space")))
    assert backupops.backup(config(), "prod", hosts.executor, said.append) == ExitCode.ROLLED_BACK
    assert any("FAILED backup on web1" in line and "no space" in line for line in said)
    line = hosts.entries("web1")[-1]
    assert (line.event, line.result, line.backup) == ("backup", "failed", "")
    assert all(lock is None for lock in hosts.locks.values())


def test_a_bug_during_a_backup_escapes_after_the_lock_is_given_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(ComposeTarget, "backup", broken)
    hosts = Hosts()
    with pytest.raises(ValueError, match="a bug"):
        backupops.backup(config(), "prod", hosts.executor, lambda line: None)
    assert all(lock is None for lock in hosts.locks.values())


def test_a_restore_loads_the_backup_on_its_host_and_says_what_to_do_next() -> None:
    hosts, said = Hosts(), []
    listing(hosts)
    assert backupops.restore(config(), "prod", hosts.executor, said.append, KEPT) == ExitCode.OK
    [argv] = [r for r in hosts.on("web1") if r[3:4] == ("pl-restore",)]
    assert argv[4:] == (f"{STATE}/backups", KEPT, "sh", "-c", DEFAULT_RESTORE)
    line = hosts.entries("web1")[-1]
    assert (line.event, line.result, line.backup) == ("restore", "db_restored", KEPT)
    assert line.serving is False
    assert (
        said[-1] == "next: 1.0.0 serves; `invoke health --env prod` checks it against the restored database"
    )


def test_a_restore_dry_run_prints_the_commands_and_changes_nothing() -> None:
    hosts, said = Hosts(), []
    listing(hosts)
    assert backupops.restore(config(), "prod", hosts.executor, said.append, KEPT, dry_run=True) == 0
    assert f"  restore  [web1] gzip -t {STATE}/backups/{KEPT} && gzip -dc {STATE}/backups/{KEPT} | sh -c" in (
        "\n".join(said)
    )
    assert not [r for h, r, _, _ in hosts.seen if r[3:4] in (("pl-restore",), ("pl-lock",))]


def test_a_failing_restore_exits_4_saying_where_the_database_is() -> None:
    hosts = Hosts()
    listing(hosts)
    hosts.fail.append((lambda host, argv: "pl-restore" in argv, (3, "", "ERROR: out of memory")))
    with pytest.raises(RestoreFailed, match=r"it is at 0003 now\. A human is needed now") as caught:
        backupops.restore(config(), "prod", hosts.executor, lambda line: None, KEPT)
    assert caught.value.exit_code == ExitCode.ROLLBACK_FAILED and "out of memory" in str(caught.value)
    assert hosts.entries("web1")[-1].result == "failed"
    assert all(lock is None for lock in hosts.locks.values())


def test_a_backup_that_is_not_kept_or_a_held_lock_changes_nothing() -> None:
    hosts = Hosts()
    with pytest.raises(InputError, match=f"--from: no backup {KEPT} on web1"):
        backupops.restore(config(), "prod", hosts.executor, lambda line: None, KEPT)
    hosts = Hosts()
    listing(hosts)
    hosts.locks["web3"] = json.dumps({"who": "alice", "run": "x"})
    with pytest.raises(LockHeld, match="alice"):
        backupops.restore(config(), "prod", hosts.executor, lambda line: None, KEPT)
    assert not [r for h, r, _, _ in hosts.seen if r[3:4] == ("pl-restore",)]


def test_backups_are_listed_newest_first_with_size_and_revision() -> None:
    hosts, said = Hosts(), []
    listing(hosts)
    assert backupops.backup(config(), "prod", hosts.executor, said.append, list_only=True) == 0
    assert said == [
        "web1: 1 backup(s) kept:",
        f"  {KEPT}  1.2 KiB  taken 2026-11-29T12:00:00Z, database at 0003",
    ]

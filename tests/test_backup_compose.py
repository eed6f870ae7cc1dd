"""The compose target's backups through the executor seam: which commands run where, under which
deadline, and in which order with the migration (the fake hosts of ``test_compose_target``)."""

from __future__ import annotations

import shlex

from test_compose_target import NEW, STATE, Hosts, alembic, compose, connected, deploy

from pipeline.backups import DEFAULT_COMMAND, NAME_ERE
from pipeline.engine.plan import render_plan
from pipeline.engine.values import Release
from pipeline.errors import ExitCode

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

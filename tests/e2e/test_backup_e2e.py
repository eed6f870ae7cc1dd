"""Database backups on the real sandbox: pg_dump on the database's host before a migration, a restore
that brings back what a downgrade cannot, and the ways a backup or a restore can go wrong."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
from sandboxlib import Project, psql, state_dir
from test_deploy_compose import retag, wait_for_line

pytestmark = pytest.mark.e2e

OLD = ["1.0.0"] * 3
NAMED = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9A-Za-z._+-]+-[0-9A-Za-z_]+\.sql\.gz")


def backups_on(project: Project) -> list[str]:
    """Every file in the backup folder of the database's host (hidden ones too)."""
    folder = state_dir(project.hosts[0]) / "backups"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def with_backups(project: Project, **backup: object) -> None:
    project.configure(backup={"keep": 3, **backup})
    retag(project, "1.0.0")


def descriptions(project: Project) -> list[str]:
    return psql(project.sandbox, "SELECT name || '=' || description FROM items ORDER BY name")


def test_a_dropped_column_is_brought_back_by_the_restore_the_failed_rollback_names(
    project: Project, tmp_path: Path
) -> None:
    with_backups(project)
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    psql(project.sandbox, "INSERT INTO items (name, description) VALUES ('a', 'kept'), ('b', 'also kept')")
    project.release("2.0.0", "health", "fail", "migration", "drop")
    report = tmp_path / "report.json"

    failed = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(report))

    assert failed.code == 4, failed.text
    assert "description" not in project.columns("items") and project.revision() == "0004"
    data = json.loads(report.read_text())
    name = data["backups"][project.hosts[0]["ip"]]
    assert re.fullmatch(r"[0-9]{8}T[0-9]{6}Z-2\.0\.0-0003\.sql\.gz", name)
    command = f"invoke restore --env sandbox --from {name}"
    assert command in data["summary"] and command in failed.out
    assert name in backups_on(project)
    assert project.journal(project.hosts[1])[-1]["backup"] == name

    restored = project.invoke(*command.split()[1:])

    assert restored.code == 0, restored.text
    assert project.revision() == "0003"
    assert descriptions(project) == ["a=kept", "b=also kept"]
    assert "the database is at 0003" in restored.out
    assert "`invoke rollback --env sandbox` finishes it" in restored.out
    line = project.journal(project.hosts[0])[-1]
    assert (line["event"], line["result"], line["backup"]) == ("restore", "db_restored", name)
    assert (line["db_before"], line["db_after"]) == (None, "0003")  # 1.0.0's scripts do not know 0004
    assert "cannot be read with 1.0.0's code" in restored.out

    back = project.invoke("rollback", "--env", "sandbox")

    assert back.code == 0, back.text
    assert project.versions() == OLD
    assert project.revision() == "0003" and descriptions(project) == ["a=kept", "b=also kept"]
    for host in project.hosts:
        assert [(e["version"], e["result"]) for e in project.journal(host)[-2:]] == [
            ("2.0.0", "rolled_back"),
            ("1.0.0", "restored"),
        ]
        assert not (state_dir(host) / "lock").exists()
    listed = project.invoke("backup", "--env", "sandbox", "--list")
    assert listed.code == 0 and name in listed.out and "database at 0003" in listed.out


def test_a_backup_that_fails_stops_the_deploy_before_the_migration(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.configure(
        backup={"command": 'pg_dump --no-owner "$DATABASE_URL" >/dev/null; echo "disk full" >&2; exit 3'}
    )
    project.release("2.0.0", "migration", "good")
    columns = project.columns("items")

    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")

    assert run.code == 1, run.text
    assert "the backup before the migration failed; nothing was migrated" in run.out
    assert "disk full" in run.out
    assert project.versions() == OLD
    assert project.columns("items") == columns
    assert [n for n in backups_on(project) if n.endswith((".sql.gz", ".partial"))] == []


def test_backups_on_their_own_keep_the_newest_refuse_bad_names_and_wait_for_no_lock(project: Project) -> None:
    with_backups(project, keep=2)
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    taken = []
    for _ in range(3):
        time.sleep(1.1)  # a name has the second it was taken
        run = project.invoke("backup", "--env", "sandbox")
        assert run.code == 0, run.text
        taken += NAMED.findall(run.out)[:1]
    first_deploy = [n for n in backups_on(project) if n.endswith("-1.0.0-base.sql.gz")]
    assert backups_on(project) == sorted(taken[-2:]) and not first_deploy
    line = project.journal(project.hosts[0])[-1]
    assert (line["event"], line["result"], line["backup"], line["db_before"]) == (
        "backup", "backed_up", taken[-1], "0003",
    )  # fmt: skip

    bad = project.invoke("restore", "--env", "sandbox", "--from", "../../etc/passwd")
    assert bad.code == 2 and "is not a backup name" in bad.err
    unknown = project.invoke("restore", "--env", "sandbox", "--from", "20200101T000000Z-1.0.0-0003.sql.gz")
    assert unknown.code == 2 and "no backup 20200101T000000Z-1.0.0-0003.sql.gz" in unknown.err

    plan = project.invoke("restore", "--env", "sandbox", "--from", taken[-1], "--dry-run")
    assert plan.code == 0, plan.text
    assert f"gzip -dc {state_dir(project.hosts[0])}/backups/{taken[-1]} | sh -c" in plan.out
    assert project.journal(project.hosts[0])[-1] == line  # a dry run writes nothing

    folder = state_dir(project.hosts[0]) / "backups"
    data = (folder / taken[-2]).read_bytes()
    (folder / taken[-2]).write_bytes(data[: len(data) // 2])
    damaged = project.invoke("restore", "--env", "sandbox", "--from", taken[-2])
    assert damaged.code == 2 and "is damaged (gzip -t failed); nothing was loaded" in damaged.err
    project.configure(
        backup={"keep": 2, "restore": "cat >/dev/null; echo 'ERROR: out of memory' >&2; exit 3"}
    )
    broken = project.invoke("restore", "--env", "sandbox", "--from", taken[-1])
    assert broken.code == 4, broken.text
    assert "ERROR: out of memory" in broken.err and "it is at 0003 now. A human is needed now" in broken.err
    line = project.journal(project.hosts[0])[-1]
    assert (line["event"], line["result"], line["backup"]) == ("restore", "failed", taken[-1])
    assert not (state_dir(project.hosts[0]) / "lock").exists()

    lock = state_dir(project.hosts[2]) / "lock"
    lock.write_text(
        json.dumps({"who": "alice", "at": "2026-11-21T10:00:00Z", "version": "1.0.0", "run": "x"})
    )
    psql(project.sandbox, "INSERT INTO items (name) VALUES ('after')")
    held = project.invoke("restore", "--env", "sandbox", "--from", taken[-1])
    assert held.code == 5, held.text
    assert "alice" in held.err
    assert psql(project.sandbox, "SELECT name FROM items") == ["after"]  # untouched
    assert project.invoke("backup", "--env", "sandbox").code == 5
    lock.unlink()


def test_a_signal_during_the_dump_leaves_no_backup_and_releases_the_lock(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.configure(backup={"command": 'pg_dump --no-owner "$DATABASE_URL"; sleep 60'})
    process = project.start("backup", "--env", "sandbox")
    wait_for_line(process, "-> backup")
    deadline = time.monotonic() + 20
    while not any(n.endswith(".partial") for n in backups_on(project)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(n.endswith(".partial") for n in backups_on(project))
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 143, out + err
    deadline = time.monotonic() + 15  # the host's guard stops the dump once the ssh client is gone
    while backups_on(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backups_on(project) == []
    assert not any((state_dir(h) / "lock").exists() for h in project.hosts)
    line = project.journal(project.hosts[0])[-1]
    assert (line["event"], line["result"]) == ("backup", "failed") and "SIGTERM" in line["reason"]

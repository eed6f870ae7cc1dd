"""Deploys to three real servers, broken on purpose, checked as a user would check them.

Which version serves (each host's /health), which database revision is current (PostgreSQL itself),
what the journal on each host says, what the report and the notification say, and the exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from apprepo import WEBHOOK_TOKEN
from sandboxlib import PERHOST_COMPOSE, Project, descendants, processes_naming, state_dir

pytestmark = pytest.mark.e2e

OLD = ["1.0.0"] * 3


def retag(project: Project, version: str) -> None:
    """Move the release tag to HEAD after a configuration change (the checklist wants HEAD released)."""
    project.git("tag", "-f", "-a", f"v{version}", "-m", f"Release v{version}")
    project.git("push", "-q", "-f", "origin", f"v{version}")


def wait_for_line(process: subprocess.Popen[str], prefix: str) -> list[str]:
    """Read the process's output until a line starts with ``prefix``."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting with {prefix!r}:\n{''.join(lines)}")


def test_a_good_release_deploys_migrates_passes_health_and_is_journaled(
    project: Project, tmp_path: Path
) -> None:
    first = project.invoke("deploy", "--env", "sandbox")
    assert first.code == 0, first.text
    assert project.versions() == OLD
    assert project.revision() == "0003"

    commit = project.release("2.0.0", "migration", "good")
    report = tmp_path / "report.json"
    second = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(report))
    assert second.code == 0, second.text
    assert "deploy sandbox: OK: 2.0.0 deployed to sandbox" in second.out
    assert project.versions() == ["2.0.0"] * 3
    assert project.revision() == "0004"
    for host in project.hosts:
        last = project.journal(host)[-1]
        assert (last["event"], last["version"], last["result"]) == ("deploy", "2.0.0", "healthy")
        assert (last["commit"], last["previous_version"]) == (commit, "1.0.0")
        assert (last["db_before"], last["db_after"], last["db_end"]) == ("0003", "0004", "0004")
        assert not (Path(host["app_path"]) / ".pipeline").exists()  # not in the build context
        assert not (state_dir(host) / "lock").exists()
    data = json.loads(report.read_text())
    assert (data["outcome"], data["exit_code"]) == ("deployed", 0)
    assert set(data["units"].values()) == {"deployed"}
    assert project.webhook.received[-1]["json"]["outcome"] == "deployed"


def test_one_unhealthy_host_of_three_restores_every_host(project: Project, tmp_path: Path) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    bad = project.hosts[2]["name"]
    project.release("2.0.0", "health", f"fail-on-{bad}", "migration", "good")
    report = tmp_path / "report.json"
    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(report))

    assert run.code == 1, run.text
    assert project.versions() == OLD
    assert project.revision() == "0003"  # 0004 was applied, then downgraded with 2.0.0's scripts
    assert "price_0004" not in project.columns("items")
    for host in project.hosts:
        entries = project.journal(host)
        assert [(e["version"], e["result"]) for e in entries[-2:]] == [
            ("2.0.0", "rolled_back"),
            ("1.0.0", "restored"),
        ]
        assert entries[-2]["reason"] == "health failed"
        assert (entries[-1]["db_before"], entries[-1]["db_end"]) == ("0004", "0003")
    data = json.loads(report.read_text())
    assert (data["outcome"], data["exit_code"]) == ("rolled_back", 1)
    failed = [h for h in data["health"] if not h["ok"]]
    assert [h["host"] for h in failed] == [project.hosts[2]["ip"]]
    assert failed[0]["status"] == 500 and '"status": "fail"' in failed[0]["body"]
    logs = [e for e in data["evidence"] if e["kind"] == "logs"]
    assert [e["host"] for e in logs] == [project.hosts[2]["ip"]]
    assert '"GET /health HTTP/1.1" 500' in logs[0]["text"]
    assert sorted(p["name"] for p in data["rollback"] if p["status"] == "ok") == sorted(
        ["downgrade"] + ["restore"] * 3 + ["health"] * 3
    )
    note = project.webhook.received[-1]["json"]
    assert note["outcome"] == "rolled_back" and "rolled back to 1.0.0" in note["summary"]
    assert WEBHOOK_TOKEN not in run.text + report.read_text()


def test_a_failing_migration_rolls_back_and_leaves_the_database_unchanged(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    columns = project.columns("items")
    project.release("3.0.0", "migration", "fail")
    run = project.invoke("deploy", "--env", "sandbox", "--version", "3.0.0")

    assert run.code == 1, run.text
    assert "3.0.0 failed (migrate failed); rolled back to 1.0.0" in run.out
    assert project.versions() == OLD
    assert project.revision() == "0003"
    assert project.columns("items") == columns
    assert project.columns("half_done_0004") == []
    assert "fails on purpose" in run.out  # the migration's own error, in the evidence
    for host in project.hosts:
        assert project.journal(host)[-2]["result"] == "rolled_back"


def test_a_migration_that_hangs_past_its_deadline_is_stopped_and_rolled_back(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.configure(deadlines={"migrate": 10})
    project.release("2.0.0", "migration", "hang")
    started = time.monotonic()
    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")

    assert run.code == 1, run.text
    assert time.monotonic() - started < 120
    assert "passed its deadline of 10 s" in run.out
    assert project.versions() == OLD
    assert project.revision() == "0003"
    assert "slow_0004" not in project.columns("items")
    assert not any((state_dir(h) / "lock").exists() for h in project.hosts)


def test_sigterm_in_the_middle_of_migrate_ends_rolled_back(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "migration", "slow")
    process = project.start("deploy", "--env", "sandbox", "--version", "2.0.0")
    lines = wait_for_line(process, "-> migrate")
    time.sleep(2)  # the slow migration holds its transaction for 6 s
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    text = "".join(lines) + out + err

    assert process.returncode == 1, text
    assert "cancelled (SIGTERM received); rolled back to 1.0.0" in text
    assert project.versions() == OLD
    assert project.revision() == "0003"
    assert "slow_0004" not in project.columns("items")
    assert project.journal(project.hosts[0])[-2]["result"] == "rolled_back"
    assert not (state_dir(project.hosts[0]) / "lock").exists()


def test_a_run_killed_mid_migration_is_refused_by_deploy_and_finished_by_rollback(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "migration", "hang")
    process = project.start("deploy", "--env", "sandbox", "--version", "2.0.0")
    wait_for_line(process, "-> migrate")
    time.sleep(2)
    # What a CI runner's SIGKILL does: the run and everything it started die at once.
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert project.control_dir is not None
    for pid, _ in processes_naming(project.control_dir):  # the ssh masters it forked, by its own dir
        os.kill(pid, signal.SIGKILL)
    for leftover in project.control_dir.iterdir():  # the dead run's sockets: a runner is gone with them
        shutil.rmtree(leftover)
    assert project.versions() == ["2.0.0"] * 3

    refused = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")
    assert refused.code == 5, refused.text
    assert "if it was interrupted, `invoke rollback --env sandbox` finishes its rollback" in refused.err
    status = project.invoke("status", "--env", "sandbox")
    assert "INTERRUPTED" in status.out and "ago" in status.out

    run = project.invoke("rollback", "--env", "sandbox")
    assert run.code == 0, run.text
    assert "finishing the interrupted run" in run.out
    assert project.versions() == OLD
    assert project.revision() == "0003"
    assert "slow_0004" not in project.columns("items")
    for host in project.hosts:
        assert [(e["version"], e["result"]) for e in project.journal(host)[-2:]] == [
            ("2.0.0", "rolled_back"),
            ("1.0.0", "restored"),
        ]
        assert not (state_dir(host) / "lock").exists()
    assert project.invoke("deploy", "--env", "sandbox", "--version", "1.0.0").code == 0  # not locked any more


def test_a_container_that_crashes_at_start_is_rolled_back_with_exit_1(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "health", "crash", "migration", "good")
    # A report that cannot be written at the end (a full disk) changes neither outcome nor exit code.
    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--report", "/dev/full")
    assert run.code == 1, run.text
    assert "warning: --report was not written to '/dev/full' (No space left on device)" in run.out
    assert project.versions() == OLD
    assert project.revision() == "0003"


def test_per_host_databases_are_migrated_and_rolled_back_host_by_host(project: Project) -> None:
    project.configure(
        compose_file=PERHOST_COMPOSE,
        migrate={**project.environment["migrate"], "database": "per_host"},
    )
    retag(project, "1.0.0")
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    assert project.revisions() == ["0003"] * 3
    project.release("2.0.0", "migration", "good")
    deployed = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")
    assert deployed.code == 0, deployed.text
    assert project.revisions() == ["0004"] * 3
    assert project.revision() is None  # the shared database was never touched

    bad = project.hosts[1]["name"]
    project.release("3.0.0", "health", f"fail-on-{bad}", "migration", "good")
    failed = project.invoke("deploy", "--env", "sandbox", "--version", "3.0.0")
    assert failed.code == 1, failed.text
    assert project.versions() == ["2.0.0"] * 3
    assert project.revisions() == ["0004"] * 3

    back = project.invoke("rollback", "--env", "sandbox")
    assert back.code == 0, back.text
    assert project.versions() == OLD
    assert project.revisions() == ["0003"] * 3


def test_a_rolling_deploy_whose_second_batch_fails_restores_it_and_never_touches_the_third(
    project: Project, tmp_path: Path
) -> None:
    project.configure(strategy="rolling", batch_size=1)
    retag(project, "1.0.0")
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    third = project.hosts[2]
    before = project.containers(third)
    project.release("2.0.0", "health", f"fail-on-{project.hosts[1]['name']}")
    report = tmp_path / "report.json"
    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(report))

    assert run.code == 1, run.text
    assert project.versions() == OLD
    assert project.containers(third) == before  # never restarted
    data = json.loads(report.read_text())
    assert list(data["units"].values()) == ["restored", "restored", "untouched"]
    assert [s["name"] for s in data["stages"]][:4] == [
        "deploy (batch 1)",
        "migrate (batch 1)",
        "health (batch 1)",
        "deploy (batch 2)",
    ]
    assert project.journal(third)[-1]["touched"] is False


def test_dry_run_prints_the_plan_and_touches_nothing(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "migration", "good")
    before = [(project.journal(h), project.containers(h)) for h in project.hosts], project.revision()
    sent = len(project.webhook.received)

    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--dry-run")

    assert run.code == 0, run.text
    host = project.hosts[0]
    assert f"host {host['ip']}: serving 1.0.0" in run.out
    assert f"[{host['ip']}] git -C {host['app_path']} checkout --quiet --force --detach" in run.out
    assert "rollback plan" in run.out and "python3 -m alembic downgrade 0003" in run.out
    after = [(project.journal(h), project.containers(h)) for h in project.hosts], project.revision()
    assert after == before
    assert len(project.webhook.received) == sent
    assert not (state_dir(host) / "lock").exists()


def test_a_rerun_of_what_is_deployed_is_a_no_op(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    entries = [len(project.journal(h)) for h in project.hosts]
    run = project.invoke("deploy", "--env", "sandbox")
    assert run.code == 0
    assert "1.0.0 is already deployed to sandbox: nothing to do" in run.out
    assert [len(project.journal(h)) for h in project.hosts] == entries


def test_another_deploy_holding_the_lock_exits_5_and_unlock_releases_it(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    lock = state_dir(project.hosts[1]) / "lock"
    lock.write_text(
        json.dumps({"who": "alice", "at": "2026-11-21T10:00:00Z", "version": "9.9.9", "run": "x"})
    )
    project.release("2.0.0")

    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")
    assert run.code == 5, run.text
    assert "a deploy holds the lock: alice since 2026-11-21T10:00:00Z (9.9.9)" in run.err
    assert " ago" in run.err  # a stale lock says how old it is
    assert project.versions() == OLD

    waited = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--lock-wait", "1")
    assert waited.code == 5 and "waiting up to 1 s for the lock of" in waited.out

    released = project.invoke("unlock", "--env", "sandbox")
    assert released.code == 0 and "released the lock held by alice" in released.out
    assert project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0").code == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hostz": []}, "pipeline.environments.sandbox.hostz: unknown key (did you mean `hosts`?)"),
        (
            {"migrate": {"service": "apii"}},
            "pipeline.environments.sandbox.migrate.service: 'apii' is not a service of compose.yaml",
        ),
        (
            {"migrate": {"service": "api; rm -rf /"}},
            "pipeline.environments.sandbox.migrate.service: 'api; rm -rf /' is not a service name",
        ),
        (
            {
                "hosts": [{"address": "root@10.200.0.250", "path": "/tmp/sbx/nowhere"}],
                "ssh": {"connect_timeout": 2},
            },
            "host 10.200.0.250 is unreachable over ssh",
        ),
    ],
)
def test_bad_configuration_fails_with_exit_2_before_anything_changes(
    project: Project, change: dict[str, object], message: str
) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    before = [(project.journal(h), project.containers(h)) for h in project.hosts]
    ssh = {**project.environment["ssh"], **change.get("ssh", {})}  # type: ignore[dict-item]
    project.configure(**{**change, "ssh": ssh})
    project.release("2.0.0")

    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")

    assert run.code == 2, run.text
    assert message in run.err and "Traceback" not in run.err
    assert [(project.journal(h), project.containers(h)) for h in project.hosts] == before


def test_status_and_history_read_the_hosts_journals(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "health", "fail")
    assert project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0").code == 1
    status = project.invoke("status", "--env", "sandbox")
    assert status.code == 0
    for host in project.hosts:
        assert f"{host['ip']}: serving 1.0.0" in status.out
    history = project.invoke("history", "--env", "sandbox")
    rows = [line.split() for line in history.out.splitlines()]
    assert any(row[1:4] == ["deploy", "2.0.0", "rolled_back"] for row in rows if len(row) > 3)
    assert any(row[1:4] == ["rollback", "1.0.0", "restored"] for row in rows if len(row) > 3)


def test_the_image_source_deploys_a_tag_and_rolls_back_to_the_previous_one(project: Project) -> None:
    project.configure(
        source="image",
        compose_file="compose.image.yaml",
        health=[
            {"http": "http://{host}:8000/health", "expect_version": True, "interval": 0.5, "attempts": 16},
            {"service": "api", "command": "python3 -m app.healthcheck", "interval": 0.5, "attempts": 6},
            {"compose": True, "interval": 1, "attempts": 20},
        ],
    )
    retag(project, "1.0.0")
    project.build_and_push("1.0.0")
    first = project.invoke("deploy", "--env", "sandbox")
    assert first.code == 0, first.text
    assert project.versions() == OLD
    assert "app/api:1.0.0" in project.containers(project.hosts[0])

    project.release("2.0.0", "health", "fail", "migration", "good")
    project.build_and_push("2.0.0")
    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")

    assert run.code == 1, run.text
    assert project.versions() == OLD
    assert "app/api:1.0.0" in project.containers(project.hosts[0])
    assert project.revision() == "0003"
    release_file = state_dir(project.hosts[0]) / "releases" / "2.0.0" / "compose.image.yaml"
    assert release_file.read_text() == (project.work / "compose.image.yaml").read_text()


def test_on_call_rolls_back_by_hand_to_the_last_release_healthy_everywhere(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "migration", "good")
    assert project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0").code == 0
    assert project.revision() == "0004"

    run = project.invoke("rollback", "--env", "sandbox")

    assert run.code == 0, run.text
    assert "rolling back sandbox from 2.0.0 to 1.0.0" in run.out
    assert project.versions() == OLD
    assert project.revision() == "0003"  # downgraded with 2.0.0's scripts, to what 1.0.0 ran with
    entries = project.journal(project.hosts[1])
    assert [(e["version"], e["result"]) for e in entries[-2:]] == [
        ("2.0.0", "rolled_back"),
        ("1.0.0", "restored"),
    ]
    assert entries[-1]["who"] and entries[-1]["event"] == "rollback"
    told = project.invoke("notify", "--env", "sandbox", "--message", "rolled back by hand")
    assert told.code == 0, told.text
    assert project.webhook.received[-1]["json"]["summary"] == "rolled back by hand"


def test_a_password_in_the_repository_url_never_appears_in_the_plan(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.configure(repository="https://bot:s3cret-pass@127.0.0.1:9/app.git")
    project.release("2.0.0")

    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--dry-run")

    assert run.code == 0, run.text
    assert "config remote.origin.url https://127.0.0.1:9/app.git" in run.out  # never in .git/config
    assert "pl-git-auth git -C" in run.out and "origin  < (stdin)" in run.out  # but on stdin
    assert "s3cret-pass" not in run.text

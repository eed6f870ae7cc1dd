"""Deploys to real servers, broken on purpose, checked as a user would check them.

Which version serves (each host's /health), which database revision is current (PostgreSQL itself),
what the journal on each host says, what the report and the notification say, and the exit code.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from sandboxlib import WEBHOOK_TOKEN, Project

pytestmark = pytest.mark.e2e


def test_a_good_release_deploys_migrates_passes_health_and_is_journaled(
    project: Project, tmp_path: Path
) -> None:
    first = project.invoke("deploy", "--env", "sandbox")
    assert first.code == 0, first.text
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]
    assert project.revision() == "0003"

    commit = project.release("2.0.0", "migration", "good")
    report = tmp_path / "report.json"
    second = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(report))
    assert second.code == 0, second.text
    assert "deploy sandbox: OK: 2.0.0 deployed to sandbox" in second.out
    assert [project.serving(h)["version"] for h in project.hosts] == ["2.0.0", "2.0.0"]
    assert project.revision() == "0004"
    for host in project.hosts:
        last = project.journal(host)[-1]
        assert (last["event"], last["version"], last["result"]) == ("deploy", "2.0.0", "healthy")
        assert (last["commit"], last["previous_version"]) == (commit, "1.0.0")
        assert (last["db_before"], last["db_after"]) == ("0003", "0004")
    data = json.loads(report.read_text())
    assert (data["outcome"], data["exit_code"]) == ("deployed", 0)
    assert project.webhook.received[-1]["json"]["outcome"] == "deployed"


def test_a_failing_health_check_rolls_back_to_the_previous_release(project: Project, tmp_path: Path) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "health", "fail", "migration", "good")
    report = tmp_path / "report.json"
    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(report))

    assert run.code == 1, run.text
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]
    assert project.revision() == "0003"  # 0004 was applied, then downgraded with 2.0.0's scripts
    assert "price_0004" not in project.columns("items")
    first_host = project.journal(project.hosts[0])
    assert [(e["version"], e["result"]) for e in first_host[-2:]] == [
        ("2.0.0", "rolled_back"),
        ("1.0.0", "restored"),
    ]
    assert first_host[-2]["reason"] == "health failed"
    data = json.loads(report.read_text())
    assert (data["outcome"], data["exit_code"]) == ("rolled_back", 1)
    failed = [h for h in data["health"] if not h["ok"]]
    assert failed and failed[0]["status"] == 500 and '"status": "fail"' in failed[0]["body"]
    logs = [e["text"] for e in data["evidence"] if e["kind"] == "logs"]
    assert logs and '"GET /health HTTP/1.1" 500' in logs[0]
    assert [p["status"] for p in data["rollback"]] == [
        "ok",
        "ok",
        "ok",
        "ok",
    ]  # downgrade, 2 restores, health
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
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]
    assert project.revision() == "0003"
    assert project.columns("items") == columns
    assert project.columns("half_done_0004") == []
    assert "fails on purpose" in run.out  # the migration's own error, in the evidence
    for host in project.hosts:
        assert project.journal(host)[-2]["result"] == "rolled_back"


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
    assert not (Path(host["app_path"]) / ".pipeline" / "lock").exists()


def test_a_rerun_of_what_is_deployed_is_a_no_op(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    entries = [len(project.journal(h)) for h in project.hosts]
    run = project.invoke("deploy", "--env", "sandbox")
    assert run.code == 0
    assert "1.0.0 is already deployed to sandbox: nothing to do" in run.out
    assert [len(project.journal(h)) for h in project.hosts] == entries


def test_sigterm_in_the_middle_of_migrate_ends_rolled_back(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "migration", "slow")
    process = project.start("deploy", "--env", "sandbox", "--version", "2.0.0")
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("-> migrate"):
            time.sleep(2)  # the slow migration holds its transaction for 6 s
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=300)
    text = "".join(lines) + out + err

    assert process.returncode == 1, text
    assert "cancelled (SIGTERM received); rolled back to 1.0.0" in text
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]
    assert project.revision() == "0003"
    assert "slow_0004" not in project.columns("items")
    assert project.journal(project.hosts[0])[-2]["result"] == "rolled_back"
    assert not (Path(project.hosts[0]["app_path"]) / ".pipeline" / "lock").exists()


def test_another_deploy_holding_the_lock_exits_5_and_unlock_releases_it(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    lock = Path(project.hosts[1]["app_path"]) / ".pipeline" / "lock"
    lock.mkdir()
    (lock / "info.json").write_text(
        json.dumps({"who": "alice", "at": "2026-11-21T10:00:00Z", "version": "9.9.9"})
    )
    project.release("2.0.0")

    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")
    assert run.code == 5, run.text
    assert "a deploy holds the lock: alice since 2026-11-21T10:00:00Z (9.9.9)" in run.err
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]

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
    assert f"{project.hosts[0]['ip']}: serving 1.0.0" in status.out
    history = project.invoke("history", "--env", "sandbox")
    assert (
        "2.0.0        rolled_back health failed" in " ".join(history.out.split("  "))
        or "rolled_back" in history.out
    )


IMAGE_COMPOSE = """services:
  api:
    image: 10.200.0.1:15000/app/api:${APP_VERSION}
    init: true
    environment:
      DATABASE_URL: ${DATABASE_URL:-postgresql://postgres@10.200.0.1:15432/app}
    ports: ["8000:8000"]
    healthcheck:
      test: ["CMD", "python3", "-m", "app.healthcheck"]
      interval: 1s
      timeout: 3s
      retries: 3
"""


def build_and_push(project: Project, version: str) -> None:
    """CI's job before an image deploy: build the release's image and push it to the registry."""
    import subprocess

    engine = ["docker", "-H", project.sandbox["build_docker_host"]]
    tag = f"{project.sandbox['registry']}/app/api:{version}"
    subprocess.run([*engine, "build", "-q", "-t", tag, str(project.work)], check=True, capture_output=True)
    subprocess.run([*engine, "push", "-q", tag], check=True, capture_output=True)


def test_the_image_source_deploys_a_tag_and_rolls_back_to_the_previous_one(project: Project) -> None:
    (project.work / "compose.image.yaml").write_text(IMAGE_COMPOSE)
    project.configure(
        source="image",
        compose_file="compose.image.yaml",
        health=[
            {"http": "http://{host}:8000/health", "expect_version": True, "interval": 0.5, "attempts": 16},
            {"service": "api", "command": "python3 -m app.healthcheck", "interval": 0.5, "attempts": 6},
            {"compose": True, "interval": 1, "attempts": 20},
        ],
    )
    project.git("tag", "-f", "-a", "v1.0.0", "-m", "Release v1.0.0")
    project.git("push", "-q", "-f", "origin", "v1.0.0")
    build_and_push(project, "1.0.0")
    first = project.invoke("deploy", "--env", "sandbox")
    assert first.code == 0, first.text
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]
    assert "app/api:1.0.0" in project.containers(project.hosts[0])

    project.release("2.0.0", "health", "fail", "migration", "good")
    build_and_push(project, "2.0.0")
    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0")

    assert run.code == 1, run.text
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]
    assert "app/api:1.0.0" in project.containers(project.hosts[0])
    assert project.revision() == "0003"
    release_file = (
        Path(project.hosts[0]["app_path"]) / ".pipeline" / "releases" / "2.0.0" / "compose.image.yaml"
    )
    assert release_file.read_text() == IMAGE_COMPOSE


def test_on_call_rolls_back_by_hand_to_the_last_release_healthy_everywhere(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "migration", "good")
    assert project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0").code == 0
    assert project.revision() == "0004"

    run = project.invoke("rollback", "--env", "sandbox")

    assert run.code == 0, run.text
    assert "rolling back sandbox from 2.0.0 to 1.0.0" in run.out
    assert [project.serving(h)["version"] for h in project.hosts] == ["1.0.0", "1.0.0"]
    assert project.revision() == "0003"  # downgraded with 2.0.0's scripts, to what 1.0.0 ran with
    assert [(e["version"], e["result"]) for e in project.journal(project.hosts[1])[-2:]] == [
        ("2.0.0", "rolled_back"),
        ("1.0.0", "restored"),
    ]
    told = project.invoke("notify", "--env", "sandbox", "--message", "rolled back by hand")
    assert told.code == 0, told.text
    assert project.webhook.received[-1]["json"]["summary"] == "rolled back by hand"


def test_a_password_in_the_repository_url_never_appears_in_the_plan(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.configure(repository="https://bot:s3cret-pass@127.0.0.1:9/app.git")
    project.release("2.0.0")

    run = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--dry-run")

    assert run.code == 0, run.text
    assert "config remote.origin.url https://bot:***@127.0.0.1:9/app.git" in run.out
    assert "s3cret-pass" not in run.text

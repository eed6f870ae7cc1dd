"""``invoke setenv`` on three real servers: the variables file changed, only the services that read
what changed recreated, health checked, and the old file put back when health fails or a signal
arrives. What a user checks: the file on each host, the containers' environment, the journal, the
output, and the exit code; a value never appears in any of them but the file and the container.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sandboxlib import Project, ssh, state_dir

pytestmark = pytest.mark.e2e

SECRET = "greeting-s3cr3t-value"
# compose.yaml with one more variable the api reads from the variables file (what a team's app does)
EXTRA = "      SANDBOX_HOST: ${SANDBOX_HOST:-}\n"
WITH_GREETING = EXTRA + "      GREETING: ${GREETING:-}\n"


def prepared(project: Project) -> Project:
    """The app's compose file passing GREETING to the api, deployed (1.0.0) to every host."""
    compose = project.work / "compose.yaml"
    compose.write_text(compose.read_text().replace(EXTRA, WITH_GREETING, 1))
    project.git("commit", "-q", "-am", "feat: the api reads GREETING")
    project.git("tag", "-f", "-a", "v1.0.0", "-m", "Release v1.0.0")
    project.git("push", "-q", "-f", "origin", "HEAD:main", "v1.0.0")
    deployed = project.invoke("deploy", "--env", "sandbox")
    assert deployed.code == 0, deployed.text
    return project


def env_file(host: dict[str, Any]) -> Path:
    return Path(host["app_path"]) / ".env"


def container(project: Project, host: dict[str, Any], service: str) -> str:
    """The id of the service's running container on the host."""
    label = f"com.docker.compose.service={service}"
    return ssh(project.sandbox, host, f"docker ps -q --filter label={label}").strip()


def variable(project: Project, host: dict[str, Any], name: str) -> str:
    """A variable as the api's running process sees it."""
    cid = container(project, host, "api")
    return ssh(project.sandbox, host, f"docker exec {cid} printenv {name} || true").strip()


def setenv_lines(project: Project, host: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in project.journal(host) if e["event"] == "setenv"]


def test_a_set_key_reaches_the_api_only_and_its_value_is_never_shown(project: Project) -> None:
    prepared(project)
    workers = [container(project, h, "worker") for h in project.hosts]
    env_file(project.hosts[0]).write_text("# kept as it is\nLOG_FORMAT=plain\n")

    run = project.invoke("setenv", "--env", "sandbox", "--set", f"GREETING={SECRET}")

    assert run.code == 0, run.text
    assert "setenv sandbox: OK: GREETING changed on" in run.out
    assert [variable(project, h, "GREETING") for h in project.hosts] == [SECRET] * 3
    assert [container(project, h, "worker") for h in project.hosts] == workers  # not recreated
    assert env_file(project.hosts[0]).read_text() == f"# kept as it is\nLOG_FORMAT=plain\nGREETING={SECRET}\n"
    assert oct(env_file(project.hosts[1]).stat().st_mode & 0o777) == "0o600"
    backups = list((state_dir(project.hosts[0]) / "env-backups").iterdir())
    assert [b.read_text() for b in backups] == ["# kept as it is\nLOG_FORMAT=plain\n"]
    assert oct(backups[0].stat().st_mode & 0o777) == "0o600"
    for host in project.hosts:
        line = setenv_lines(project, host)[-1]
        assert (line["result"], line["keys_set"], line["keys_unset"]) == ("applied", "GREETING", "")
        assert line["version"] == "1.0.0"
        journal = (state_dir(host) / "journal.jsonl").read_text()
        assert SECRET not in journal
    assert project.versions() == ["1.0.0"] * 3  # a setenv line never counts as a release
    history = project.invoke("history", "--env", "sandbox")
    assert "setenv   1.0.0        applied" in history.out and "[set GREETING]" in history.out
    note = project.webhook.received[-1]["json"]
    assert note["outcome"] == "env_applied" and "GREETING" in note["summary"]
    assert SECRET not in run.text + json.dumps(project.webhook.received)

    again = project.invoke("setenv", "--env", "sandbox", "--set", f"GREETING={SECRET}", "--unset", "NOPE")
    assert again.code == 0, again.text
    assert "already holds these values: nothing to do" in again.out
    assert len(setenv_lines(project, project.hosts[0])) == 1

    removed = project.invoke("setenv", "--env", "sandbox", "--unset", "GREETING", "--dry-run")
    assert removed.code == 0, removed.text
    host = project.hosts[0]
    assert f"host {host['ip']}: serving 1.0.0; {env_file(host)}: removed GREETING" in removed.out
    assert "services to recreate: api" in removed.out and "up -d --no-build api" in removed.out
    assert variable(project, host, "GREETING") == SECRET  # a dry run touches nothing
    assert SECRET not in removed.text


def test_a_change_that_breaks_health_is_put_back_with_exit_1(project: Project, tmp_path: Path) -> None:
    prepared(project)
    before = {h["ip"]: (env_file(h).exists(), variable(project, h, "HEALTH_MODE")) for h in project.hosts}
    values = tmp_path / "values.env"
    values.write_text("# what on-call pasted\nexport HEALTH_MODE='fail'\n")

    run = project.invoke(
        "setenv", "--env", "sandbox", "--from-file", str(values), "--set", f"GREETING={SECRET}"
    )

    assert run.code == 1, run.text
    assert "the old file is back and healthy" in run.out
    assert {
        h["ip"]: (env_file(h).exists(), variable(project, h, "HEALTH_MODE")) for h in project.hosts
    } == before
    assert [project.serving(h)["status"] for h in project.hosts] == ["ok"] * 3
    for host in project.hosts:
        line = setenv_lines(project, host)[-1]
        assert line["result"] == "reverted" and line["keys_set"] == "HEALTH_MODE,GREETING"
        assert "health" in line["reason"]
    assert project.webhook.received[-1]["json"]["outcome"] == "env_reverted"
    assert SECRET not in run.text + json.dumps(project.webhook.received)


def test_sigterm_during_the_change_puts_the_old_file_back(project: Project) -> None:
    prepared(project)
    health = dict(project.environment["health"][0], attempts=120)
    project.configure(health=[health])
    env_file(project.hosts[0]).write_text("LOG_FORMAT=plain\n")
    process = project.start("setenv", "--env", "sandbox", "--set", "HEALTH_MODE=fail")
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("-> setenv"):
            break
    time.sleep(4)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)

    assert process.returncode == 1, out + err
    assert time.monotonic() - started < 50  # not the health checks' minute of retries
    assert "SIGTERM received" in out
    assert env_file(project.hosts[0]).read_text() == "LOG_FORMAT=plain\n"
    assert not env_file(project.hosts[1]).exists()
    assert [variable(project, h, "HEALTH_MODE") for h in project.hosts] == [""] * 3
    assert not any((state_dir(h) / "lock").exists() for h in project.hosts)


def test_a_held_lock_exits_5_and_bad_input_exits_2_touching_nothing(project: Project, tmp_path: Path) -> None:
    prepared(project)
    lock = state_dir(project.hosts[1]) / "lock"
    lock.write_text(
        json.dumps({"who": "alice", "at": "2026-11-21T10:00:00Z", "version": "1.0.0", "run": "x"})
    )
    held = project.invoke("setenv", "--env", "sandbox", "--set", f"GREETING={SECRET}")
    assert held.code == 5, held.text
    assert "holds the lock: alice" in held.err
    lock.unlink()

    bad_file = tmp_path / "values.env"
    bad_file.write_text(f"# values\nGREETING={SECRET}\nnot a pair\n")
    for args, message in [
        (["--set", "1BAD=x"], "--set: '1BAD' is not a variable name"),
        (["--set", "A=x", "--unset", "A"], "--unset: A is also set"),
        ([], "give at least one --set KEY=VALUE"),
        (["--from-file", str(bad_file)], f"{bad_file}, line 3: not KEY=VALUE"),
    ]:
        run = project.invoke("setenv", "--env", "sandbox", *args)
        assert run.code == 2, run.text
        assert message in run.err and "Traceback" not in run.err
        assert SECRET not in run.text
    for host in project.hosts:
        assert not env_file(host).exists()
        assert setenv_lines(project, host) == []
        assert not (state_dir(host) / "env-backups").exists()

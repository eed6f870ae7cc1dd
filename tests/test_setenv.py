"""``invoke setenv`` against fake hosts behind the shipped FakeExecutor: the commands each host is sent,
the journal line (names, never values), the redaction of what is said, and every way out: applied,
health failing and put back, putting back failing (exit 4), a held lock, Helm, and the dry run."""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.config import load_config
from pipeline.errors import ExitCode, InputError, LockHeld
from pipeline.executor import Command, FakeExecutor, Result
from pipeline.http import FakeHttpClient, HttpRequest, HttpResponse
from pipeline.journal import Entry, last_serving, parse_journal
from pipeline.remote import unguard
from pipeline.setenv import SetenvRequest, setenv
from pipeline.targets import composesetenv as envcmd
from pipeline.targets import hostfiles

HOSTS = ("web1", "web2")
SECRET = "tok-5ecret-value"
OLD_SECRET = "old-db-passw0rd"
CONFIG: dict[str, Any] = {
    "target": "compose", "hosts": list(HOSTS), "path": "/srv/app",
    "health": [{"http": "http://{host}:8000/health", "attempts": 1}],
}  # fmt: skip


class Hosts:
    """Fake hosts: a journal, a lock, a variables file; api's hash follows the file, worker's never."""

    def __init__(self) -> None:
        serving = Entry("deploy", "1.0.0", "a" * 40, None, None, None, "healthy", "", "ci", "2026-11-01")
        self.journals = dict.fromkeys(HOSTS, serving.line())
        self.locks: dict[str, str | None] = dict.fromkeys(HOSTS)
        self.files: dict[str, str | None] = dict.fromkeys(HOSTS, f"# db\nDB_PASSWORD={OLD_SECRET}\n")
        self.running = dict.fromkeys(HOSTS, "")  # the file the api's container was created with
        self.backups: dict[str, list[str]] = {h: [] for h in HOSTS}
        self.seen: list[tuple[str, tuple[str, ...]]] = []
        self.broken_by = "HEALTH_MODE=fail"
        self.fail_put_back = False
        self.executor = FakeExecutor(handler=self.answer)
        self.http = FakeHttpClient(handler=self.health)

    def answer(self, command: Command) -> Result:
        if "-O" in command.argv:
            return Result(command, 0)
        host = command.argv[-2]
        _, remote = unguard(shlex.split(command.argv[-1]))
        self.seen.append((host, remote))
        return Result(command, *self.run(host, remote, command.stdin))

    def run(self, host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        script = remote[3] if remote[:2] == ("sh", "-c") else ""
        if script == "pl-read":
            held = f"held\n{self.locks[host]}" if self.locks[host] is not None else "free"
            sections = ["--pipeline-section-journal", self.journals[host], "--pipeline-section-lock", held]
            return 0, "\n".join([*sections, "--pipeline-section-commit"]) + "\n", ""
        if script == "pl-lock":
            if self.locks[host] is not None:
                return hostfiles.HELD, str(self.locks[host]), ""
            self.locks[host] = str(stdin).strip()
            return 0, "", ""
        if script == "pl-append":
            self.journals[host] += str(stdin)
            return 0, "", ""
        if remote[:3] == ("rm", "-rf", "--"):
            self.locks[host] = None
            return 0, "", ""
        if script == "pl-env-read":
            text = self.files[host]
            return 0, envcmd.ABSENT + "\n" if text is None else f"{envcmd.PRESENT}\n{text}", ""
        if script == "pl-env-write":
            if self.fail_put_back and not remote[6]:
                return 1, "", f"mv: cannot move: read-only file system ({OLD_SECRET})"
            if remote[6] and self.files[host] is not None:
                self.backups[host].append(f"{remote[5]}/.env.{remote[6]}")
            self.files[host] = stdin
            return 0, (self.backups[host][-1] if remote[6] else "") + "\n", ""
        if remote[:3] == ("rm", "-f", "--"):
            self.files[host] = None
            return 0, "", ""
        if "--hash" in remote:
            text = stdin if "/dev/stdin" in remote else self.files[host]
            return 0, f"api {_digest(text or '')}\nworker {_digest('')}\n", ""
        if "up" in remote:
            self.running[host] = self.files[host] or ""
            return 0, "", ""
        if "--no-env-resolution" in remote:
            return 0, json.dumps({"services": {"api": {}, "worker": {}}}), ""
        raise AssertionError(f"unexpected command on {host}: {remote}")

    def health(self, request: HttpRequest) -> HttpResponse:
        host = str(urlsplit(request.url).hostname)
        if self.broken_by in self.running[host]:
            return HttpResponse(500, f'{{"status": "fail", "seen": "{SECRET}"}}')
        return HttpResponse(200, "ok")

    def entries(self, host: str) -> list[Entry]:
        return parse_journal(self.journals[host])

    def changes(self, host: str) -> list[tuple[str, ...]]:
        """What the host was asked that is setenv's own (no journal, lock, reads)."""
        mine = ("pl-env-write",)
        return [
            r for h, r in self.seen if h == host and (r[3:4] == mine or "up" in r or r[:2] == ("rm", "-f"))
        ]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(
    hosts: Hosts, *sets: str, unsets: tuple[str, ...] = (), dry_run: bool = False, **changes: Any
) -> tuple[ExitCode, str]:
    config = load_config({"environments": {"prod": {**CONFIG, **changes}}})
    said: list[str] = []
    request = SetenvRequest("prod", sets, unsets, None, dry_run)
    code = setenv(config, request, hosts.executor, hosts.http, said.append)
    return code, "\n".join(said)


def test_a_change_is_backed_up_written_and_only_the_changed_service_recreated() -> None:
    hosts = Hosts()
    code, out = run(hosts, f"API_TOKEN={SECRET}")

    assert code == ExitCode.OK, out
    for host in HOSTS:
        assert hosts.files[host] == f"# db\nDB_PASSWORD={OLD_SECRET}\nAPI_TOKEN={SECRET}\n"
        writes = [r for r in hosts.changes(host) if r[3:4] == ("pl-env-write",)]
        assert writes[0][4:6] == ("/srv/app/.env", "/srv/app.pipeline/env-backups")
        assert [r[-1] for r in hosts.changes(host) if "up" in r] == ["api"]
        assert "--build" not in str(hosts.changes(host)) and "--no-build" in str(hosts.changes(host))
        line = hosts.entries(host)[-1]
        assert (line.event, line.result, line.keys_set, line.keys_unset) == (
            "setenv",
            "applied",
            "API_TOKEN",
            "",
        )
        assert line.version == "1.0.0" and last_serving(hosts.entries(host)) == hosts.entries(host)[0]
        assert SECRET not in hosts.journals[host] and OLD_SECRET not in hosts.journals[host]
        assert hosts.locks[host] is None
    assert "setenv prod: OK: API_TOKEN changed on web1, web2" in out
    assert "backup /srv/app.pipeline/env-backups/.env." in out
    assert SECRET not in out


def test_failing_health_puts_the_old_file_back_recreates_and_exits_1_saying_no_value() -> None:
    hosts = Hosts()
    code, out = run(hosts, "HEALTH_MODE=fail", f"API_TOKEN={SECRET}")

    assert code == ExitCode.ROLLED_BACK, out
    for host in HOSTS:
        assert hosts.files[host] == f"# db\nDB_PASSWORD={OLD_SECRET}\n"
        assert [r[-1] for r in hosts.changes(host) if "up" in r] == ["api", "api"]
        line = hosts.entries(host)[-1]
        assert (line.result, line.keys_set) == ("reverted", "HEALTH_MODE,API_TOKEN")
        assert "health" in line.reason and SECRET not in hosts.journals[host]
    assert "the old file is back and healthy" in out
    assert SECRET not in out and "***" in out  # the health body named it: redacted


def test_a_put_back_that_fails_exits_4_naming_the_host_and_the_backup() -> None:
    hosts = Hosts()
    hosts.fail_put_back = True
    code, out = run(hosts, "HEALTH_MODE=fail")

    assert code == ExitCode.ROLLBACK_FAILED, out
    assert "PUTTING THE OLD FILE BACK FAILED on web1 (backup /srv/app.pipeline/env-backups/.env." in out
    assert "a human is needed now" in out
    assert hosts.entries("web1")[-1].result == "failed"
    assert OLD_SECRET not in out + hosts.journals["web1"]  # the old file's values are secrets too


def test_a_held_lock_exits_5_and_changes_nothing() -> None:
    hosts = Hosts()
    hosts.locks["web2"] = json.dumps({"who": "alice", "version": "1.0.0", "run": "x"})
    with pytest.raises(LockHeld, match="web2: a deploy holds the lock: alice"):
        run(hosts, f"API_TOKEN={SECRET}")
    assert hosts.files["web1"] == f"# db\nDB_PASSWORD={OLD_SECRET}\n"
    assert not hosts.changes("web1")


def test_a_helm_environment_is_refused_with_where_its_values_live() -> None:
    raw = {"target": "helm", "release": "app", "chart": "chart", "values": ["values-prod.yaml"]}
    config = load_config({"environments": {"prod": raw}})
    with pytest.raises(InputError, match=r"values live in the chart's values files \(values-prod\.yaml\)"):
        setenv(config, SetenvRequest("prod", ("A=1",)), FakeExecutor(), FakeHttpClient(), print)


def test_the_dry_run_names_keys_and_services_and_changes_nothing() -> None:
    hosts = Hosts()
    code, out = run(hosts, f"API_TOKEN={SECRET}", unsets=("DB_PASSWORD",), dry_run=True)

    assert code == ExitCode.OK
    assert "host web1: serving 1.0.0; /srv/app/.env: added API_TOKEN; removed DB_PASSWORD" in out
    assert "services to recreate: api" in out and "up -d --no-build api" in out
    assert all(not hosts.changes(h) for h in HOSTS) and all(
        h.locks[x] is None for h in [hosts] for x in HOSTS
    )
    assert SECRET not in out and OLD_SECRET not in out


def test_a_configured_env_file_is_passed_to_every_compose_command() -> None:
    hosts = Hosts()
    code, _ = run(hosts, "A_KEY=1", env_file="infrastructure/.env")
    assert code == ExitCode.OK
    compose = [r for h, r in hosts.seen if "docker" in r]
    assert compose and all(r[6:8] == ("--env-file", "/srv/app/infrastructure/.env") for r in compose)


def test_the_write_script_keeps_the_newest_backups(tmp_path: Any) -> None:
    import subprocess

    target, backups = tmp_path / "app" / ".env", tmp_path / "state" / "env-backups"
    target.parent.mkdir()
    for second in range(12):
        target.write_text(f"N={second}\n")
        argv = envcmd.write_file(str(target), str(backups), f"20261201T0415{second:02d}Z", keep=10)
        done = subprocess.run(argv, input=f"N={second + 1}\n", capture_output=True, text=True, check=True)
        assert done.stdout.strip() == f"{backups}/.env.20261201T0415{second:02d}Z"
    kept = sorted(p.name for p in backups.iterdir())
    assert kept == [f".env.20261201T0415{s:02d}Z" for s in range(2, 12)]
    assert target.read_text() == "N=12\n" and oct(target.stat().st_mode & 0o777) == "0o600"
    assert {oct(p.stat().st_mode & 0o777) for p in backups.iterdir()} == {"0o600"}
    assert [p.name for p in target.parent.iterdir()] == [".env"]  # no temporary file left


def test_a_deadline_passed_while_recreating_puts_the_old_file_back() -> None:
    from pipeline.executor import TIMED_OUT

    hosts = Hosts()
    answer = hosts.run

    def late(host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        if "up" in remote and host == "web2" and "API_TOKEN" in str(hosts.files[host]):
            hosts.running[host] = str(hosts.files[host])
            return TIMED_OUT, "", ""
        return answer(host, remote, stdin)

    hosts.run = late  # type: ignore[method-assign]
    code, out = run(hosts, f"API_TOKEN={SECRET}")

    assert code == ExitCode.ROLLED_BACK, out
    assert "deploy on web2 passed its deadline" in out
    assert all(hosts.files[h] == f"# db\nDB_PASSWORD={OLD_SECRET}\n" for h in HOSTS)
    assert all(hosts.running[h] == hosts.files[h] for h in HOSTS)  # recreated with the old file again


def test_sigterm_during_the_health_check_puts_the_old_file_back() -> None:
    import os
    import signal

    hosts = Hosts()
    answer = hosts.health
    sent: list[str] = []

    def slow(request: HttpRequest) -> HttpResponse:
        if not sent and "API_TOKEN" in hosts.running[str(urlsplit(request.url).hostname)]:
            sent.append("sent")
            os.kill(os.getpid(), signal.SIGTERM)
        return answer(request)

    hosts.http = FakeHttpClient(handler=slow)
    code, out = run(
        hosts, f"API_TOKEN={SECRET}", strategy="rolling", health=[CONFIG["health"][0] | {"attempts": 3}]
    )

    assert code == ExitCode.ROLLED_BACK, out
    assert "SIGTERM received" in out and "the old file is back" in out
    assert hosts.files["web1"] == f"# db\nDB_PASSWORD={OLD_SECRET}\n"
    assert not hosts.changes("web2")  # the second batch never started
    assert hosts.entries("web2")[-1].event == "deploy"


def test_our_own_bug_while_changing_still_puts_the_old_file_back() -> None:
    hosts = Hosts()
    answer = hosts.run

    def broken(host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        if "--hash" in remote and "API_TOKEN" in str(hosts.files[host]):
            raise RuntimeError("a bug")
        return answer(host, remote, stdin)

    hosts.run = broken  # type: ignore[method-assign]
    code, out = run(hosts, f"API_TOKEN={SECRET}")

    assert code == ExitCode.ROLLED_BACK, out
    assert "internal error: RuntimeError: a bug" in out
    assert all(hosts.files[h] == f"# db\nDB_PASSWORD={OLD_SECRET}\n" for h in HOSTS)


def test_a_host_whose_file_cannot_be_read_stops_the_run_before_any_change() -> None:
    hosts = Hosts()
    answer = hosts.run

    def unreadable(host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        if remote[3:4] == ("pl-env-read",) and host == "web2":
            return envcmd.UNREADABLE, "", "/srv/app/.env is larger than 262144 bytes"
        return answer(host, remote, stdin)

    hosts.run = unreadable  # type: ignore[method-assign]
    with pytest.raises(InputError, match=r"cannot read the variables file on web2: .* larger than"):
        run(hosts, f"API_TOKEN={SECRET}")
    assert all(not hosts.changes(h) for h in HOSTS)
    assert all(hosts.locks[h] is None for h in HOSTS)


def test_a_host_that_serves_nothing_yet_is_refused() -> None:
    hosts = Hosts()
    hosts.journals["web2"] = ""
    with pytest.raises(InputError, match="web2: no release is recorded as serving: deploy one first"):
        run(hosts, f"API_TOKEN={SECRET}")


def test_a_file_git_tracks_in_the_checkout_is_refused_before_any_change() -> None:
    hosts = Hosts()
    answer = hosts.run

    def tracked(host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        if remote[3:4] == ("pl-env-read",):
            assert remote[5] == "/srv/app"  # a git source: asked whether the checkout tracks it
            return 0, envcmd.TRACKED + "\n", ""
        return answer(host, remote, stdin)

    hosts.run = tracked  # type: ignore[method-assign]
    with pytest.raises(InputError, match=r"^web\d: /srv/app/.env is tracked by git in the checkout"):
        run(hosts, f"API_TOKEN={SECRET}")
    assert all(not hosts.changes(h) for h in HOSTS)


def test_history_names_the_keys_of_a_setenv_line() -> None:
    from pipeline.engine.values import UnitState
    from pipeline.operate import render_history

    hosts = Hosts()
    assert run(hosts, f"API_TOKEN={SECRET}", unsets=("DB_PASSWORD",))[0] == ExitCode.OK
    lines = render_history([UnitState("web1", hosts.entries("web1"))], 5)
    assert "setenv   1.0.0        applied" in lines[-1]
    assert lines[-1].endswith("[set API_TOKEN unset DB_PASSWORD]")


def test_sigterm_while_taking_the_locks_ends_143_with_nothing_changed() -> None:
    import os
    import signal

    hosts = Hosts()
    answer = hosts.run

    def interrupted(host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        if remote[3:4] == ("pl-lock",) and host == "web1":
            os.kill(os.getpid(), signal.SIGTERM)
        return answer(host, remote, stdin)

    hosts.run = interrupted  # type: ignore[method-assign]
    code, out = run(hosts, f"API_TOKEN={SECRET}")

    assert code == ExitCode.TERMINATED, out
    assert "setenv interrupted before any change: SIGTERM received; nothing was changed" in out
    assert all(not hosts.changes(h) and hosts.locks[h] is None for h in HOSTS)
    assert all(hosts.entries(h)[-1].event == "deploy" for h in HOSTS)

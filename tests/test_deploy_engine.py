"""The deploy engine driven through the shipped fakes: two hosts that answer by reading the remote argv."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.compose import Project
from pipeline.config import load_config
from pipeline.deploy import Context, Engine
from pipeline.errors import ExitCode, LockHeld, PipelineError
from pipeline.executor import Command, FakeExecutor, Result
from pipeline.hosts import HostRun, Release, read_hosts
from pipeline.http import FakeHttpClient, HttpRequest, HttpResponse
from pipeline.journal import Entry, parse_journal
from pipeline.remote import Remote, SshOptions, parse_host
from pipeline.runreport import RunReport

OLD, NEW, NOW = "a" * 40, "b" * 40, "2026-11-21T00:00:00Z"
PATH, REPO = "/srv/app", "git@example.com:acme/app.git"
STATE, LOCK, JOURNAL = f"{PATH}/.pipeline", f"{PATH}/.pipeline/lock", f"{PATH}/.pipeline/journal.jsonl"
DROP = ("rm", "-rf", "--", LOCK)
CONFIG = {
    "target": "compose", "hosts": ["web1", "deploy@web2:2222"], "path": PATH, "repository": REPO,
    "migrate": {"service": "web"}, "health": [{"http": "http://{host}:8000/health", "attempts": 2}],
}  # fmt: skip


def compose(version: str, *args: str) -> tuple[str, ...]:
    head = ("docker", "compose", "--project-directory", PATH, "-f", f"{PATH}/compose.yaml", "-p", "app")
    return ("env", f"APP_VERSION={version}", *head, *args)


def alembic(*args: str) -> tuple[str, ...]:
    return compose("2.0.0", "exec", "-T", "web", "alembic", *args)


def git(*args: str) -> tuple[str, ...]:
    return ("git", "-C", PATH, *args)


def served(version: str, commit: str, host: str) -> Entry:
    return Entry("deploy", version, commit, None, "0002", "0003", "healthy", "", "ci", "2026-11-01", "", host)


class Servers:
    """Fake hosts behind one FakeExecutor: a database revision, what each host serves, its journal."""

    def __init__(self, version: str = "1.0.0", commit: str = OLD, broken: tuple[str, ...] = ()) -> None:
        self.revision = "0003"
        self.serving = {"web1": version, "web2": version}
        self.journals = {h: served(version, commit, h).line() for h in self.serving}
        self.commit, self.broken, self.locks = commit, broken, {"web1": "", "web2": ""}
        self.fail: dict[tuple[str, tuple[str, ...]], tuple[int, str, str]] = {}
        self.hook: Callable[[str, tuple[str, ...]], None] = lambda host, remote: None
        self.seen: list[tuple[str, tuple[str, ...], str | None]] = []
        self.executor = FakeExecutor(handler=self.answer)
        self.http = FakeHttpClient(handler=self.health)

    def answer(self, command: Command) -> Result:
        host, remote = command.argv[-2], tuple(shlex.split(command.argv[-1]))
        self.seen.append((host, remote, command.stdin))
        self.hook(host, remote)
        if (host, remote) in self.fail:
            return Result(command, *self.fail[host, remote])
        out = ""
        if remote[0] == "find":
            out = self.journals[host] if remote[1] == JOURNAL else self.locks[host]
        elif remote == git("rev-parse", "--verify", "--quiet", "HEAD^{commit}"):
            out = self.commit + "\n"
        elif remote == alembic("current"):
            out = f"INFO  [alembic.runtime.migration] Context impl.\n{self.revision} (head)\n"
        elif remote[-2:] == ("upgrade", "head"):
            self.revision = "0004"
        elif remote[-2] == "downgrade":
            self.revision = remote[-1]
        elif "up" in remote:
            self.serving[host] = remote[1].partition("=")[2]
        elif "logs" in remote:
            out = 'web-1  | "GET /health HTTP/1.1" 500\n'
        return Result(command, 0, out, "")

    def health(self, request: HttpRequest) -> HttpResponse:
        version = self.serving[str(urlsplit(request.url).hostname)]
        if version in self.broken:
            return HttpResponse(500, '{"status": "fail", "error": "db down"}')
        return HttpResponse(200, json.dumps({"version": version}))

    def on(self, host: str) -> list[tuple[str, ...]]:
        return [remote for h, remote, _ in self.seen if h == host]

    def stdin(self, host: str, remote: tuple[str, ...]) -> str:
        return next(str(fed) for h, r, fed in self.seen if (h, r) == (host, remote))


def engine(servers: Servers, read: bool = True, cancel_on: Callable[..., bool] | None = None) -> Engine:
    env = load_config({"environments": {"prod": CONFIG}}).environments["prod"]
    options = SshOptions(control_dir="/tmp/x")
    remotes = [Remote(parse_host(h), options, servers.executor) for h in env.host_list()]
    hosts = [HostRun(r, Project.of(env, r.host.path)) for r in remotes]
    if read:
        read_hosts(hosts, env.source)
    context = Context(servers.http, sleep=lambda s: None, who="tester", now=lambda: NOW, say=lambda s: None)
    run = Engine("prod", env, Release("2.0.0", NEW), hosts, context)
    if cancel_on:  # what the SIGTERM handler does, while the command it saw is in flight
        servers.hook = lambda host, remote: (
            setattr(run, "cancel", "SIGTERM") if cancel_on(host, remote) else None
        )
    return run


LOCKS = [("mkdir", "-p", STATE), ("mkdir", LOCK), ("tee", f"{LOCK}/info.json")]
DEPLOY = [
    git("init", "--quiet"),
    git("config", "remote.origin.url", REPO),
    git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
    git("fetch", "--quiet", "--force", "--tags", "origin"),
    git("checkout", "--quiet", "--force", "--detach", NEW),
    compose("2.0.0", "up", "-d", "--remove-orphans", "--build"),
]
RESTORE = [
    git("checkout", "--quiet", "--force", "--detach", OLD),
    compose("1.0.0", "up", "-d", "--remove-orphans"),
]
RECORD = [("tee", "-a", JOURNAL), DROP]
BOTH_OLD = {"web1": "1.0.0", "web2": "1.0.0"}


def deployed(host: str, result: str, **fields: Any) -> Entry:
    entry = Entry("deploy", "2.0.0", NEW, "1.0.0", "0003", "0004", result, "", "tester", NOW, "", host)
    return Entry(**{**entry.__dict__, **fields})


def stages(report: RunReport) -> list[str]:
    return [f"{s.name}:{s.status}" for s in report.stages]


def rollback(report: RunReport) -> list[str]:
    return [f"{p.name}:{p.status}@{p.host}" for p in report.rollback]


def test_a_healthy_release_locks_deploys_migrates_checks_records_and_unlocks() -> None:
    servers = Servers()
    report = engine(servers).execute()
    assert (report.outcome, report.exit_code, report.reason) == ("deployed", ExitCode.OK, "")
    migrate = [alembic("upgrade", "head"), alembic("current")]
    assert servers.on("web1")[3:] == [*LOCKS, alembic("current"), *DEPLOY, *migrate, *RECORD]
    assert servers.on("web2")[3:] == [*LOCKS, *DEPLOY, *RECORD]
    order = [(host, remote) for host, remote, _ in servers.seen]
    assert order.index(("web2", LOCKS[-1])) < order.index(("web1", DEPLOY[0]))  # every lock before any change
    assert order.index(("web2", DEPLOY[-1])) < order.index(("web1", migrate[0]))  # migrate once all are up
    info = json.loads(servers.stdin("web2", LOCKS[-1]))
    assert info == {"who": "tester", "at": NOW, "version": "2.0.0", "run_url": ""}
    for host in ("web1", "web2"):
        assert parse_journal(servers.stdin(host, RECORD[0])) == [deployed(host, "healthy")]
    assert stages(report) == ["deploy:ok", "migrate:ok", "health:ok"]
    assert [(h.host, h.status) for h in report.health] == [("web1", 200), ("web2", 200)]
    assert (report.db_before, report.db_after, report.previous) == ("0003", "0004", BOTH_OLD)


def test_a_failing_health_check_downgrades_restores_without_building_and_proves_the_old_release() -> None:
    servers = Servers(broken=("2.0.0",))
    report = engine(servers).execute()
    assert (report.outcome, report.exit_code, report.reason) == ("rolled_back", 1, "health failed")
    evidence = [compose("2.0.0", "logs", "--no-color", "--timestamps", "--tail", "200")]
    evidence.append(compose("2.0.0", "ps", "--all", "--format", "json"))
    downgrade = [alembic("current"), alembic("downgrade", "0003")]
    assert servers.on("web1")[-8:] == [*evidence, *downgrade, *RESTORE, *RECORD]
    assert servers.on("web2")[-4:] == [*RESTORE, *RECORD]
    assert (servers.serving, servers.revision) == (BOTH_OLD, "0003")
    assert [(h.host, h.ok, h.status, h.attempts) for h in report.health] == [("web1", False, 500, 2)]
    assert '"error": "db down"' in report.health[0].body
    assert [urlsplit(r.url).hostname for r in servers.http.requests[-2:]] == ["web1", "web2"]  # re-checked
    assert rollback(report) == ["downgrade:ok@web1", "restore:ok@web1", "restore:ok@web2", "health:ok@"]
    restored = {**served("1.0.0", OLD, "web2").__dict__, "event": "rollback", "result": "restored"}
    assert parse_journal(servers.stdin("web2", RECORD[0])) == [
        deployed("web2", "rolled_back", reason="health failed"),
        Entry(**{**restored, "reason": "2.0.0 health failed", "who": "tester", "at": NOW}),
    ]
    assert "500" in next(e.text for e in report.evidence if e.kind == "logs")


def test_a_failed_upgrade_that_left_the_revision_alone_is_not_downgraded() -> None:
    servers = Servers()
    error = "sqlalchemy.exc.ProgrammingError: column exists"
    servers.fail["web1", alembic("upgrade", "head")] = (1, "", error)
    report = engine(servers).execute()
    assert (report.outcome, report.reason) == ("rolled_back", "migrate failed")
    assert not [remote for _, remote, _ in servers.seen if "downgrade" in remote]
    assert stages(report) == ["deploy:ok", "migrate:failed"]
    evidence = [(e.host, e.kind, e.text) for e in report.evidence]
    assert ("web1", "output of migrate", error) in evidence
    assert rollback(report) == ["downgrade:ok@web1", "restore:ok@web1", "restore:ok@web2", "health:ok@"]
    assert servers.serving == BOTH_OLD


def test_a_failing_restore_is_a_failed_rollback_that_needs_a_human() -> None:
    servers = Servers(broken=("2.0.0",))
    servers.fail["web2", RESTORE[1]] = (1, "", "Error: no such image")
    report = engine(servers).execute()
    assert (report.outcome, int(report.exit_code)) == ("rollback_failed", 4)
    assert "ROLLBACK FAILED" in report.summary()
    assert rollback(report) == ["downgrade:ok@web1", "restore:ok@web1", "restore:failed@web2"]
    assert "no such image" in report.rollback[-1].detail
    assert [e.result for e in parse_journal(servers.stdin("web2", RECORD[0]))] == ["failed"]
    assert servers.on("web1")[-1] == servers.on("web2")[-1] == DROP


def test_a_lock_held_on_the_second_host_stops_the_run_and_gives_back_the_first_lock() -> None:
    servers = Servers()
    servers.fail["web2", LOCKS[1]] = (1, "", f"mkdir: cannot create directory '{LOCK}': File exists")
    servers.locks["web2"] = json.dumps({"who": "alice", "at": "2026-11-20T23:59:00Z", "version": "1.9.0"})
    held = r"web2: a deploy holds the lock: alice since 2026-11-20T23:59:00Z \(1\.9\.0\)"
    with pytest.raises(LockHeld, match=held) as caught:
        engine(servers, read=False).execute()
    assert caught.value.exit_code == ExitCode.LOCKED
    read_info = ("find", f"{LOCK}/info.json", "-maxdepth", "0", "-type", "f", "-exec", "cat", "{}", "+")
    assert servers.on("web1") == [*LOCKS, DROP]
    assert servers.on("web2") == [*LOCKS[:2], read_info]  # never someone else's lock


def test_the_plan_lists_every_command_and_the_rollback_without_running_anything() -> None:
    servers = Servers()
    run = engine(servers)
    reads = list(servers.seen)
    plan = run.plan()
    assert servers.seen == reads and {remote[0] for _, remote, _ in reads} == {"find", "git"}
    assert plan[:3] == [f"deploy 2.0.0 ({NEW}) to prod:", *[f"  host {h}: serving 1.0.0" for h in BOTH_OLD]]
    for host in ("web1", "web2"):
        steps = [ln.split(f"[{host}] ")[1].removesuffix("  < (stdin)") for ln in plan if f" [{host}] " in ln]
        assert steps[:9] == [shlex.join(argv) for argv in [*LOCKS, *DEPLOY]]
    checks = [f"  health   [{host}] http http://{host}:8000/health" for host in BOTH_OLD]
    assert {f"  migrate  [web1] {' '.join(alembic('upgrade', 'head'))}", *checks} <= set(plan)
    after = plan[plan.index("rollback plan (on a failed migration or health check, or a cancel):") + 1 :]
    assert after == [
        f"  migrate  [web1] {' '.join(alembic('downgrade', '<read before migrating>'))}",
        *[f"  restore  [{host}] {shlex.join(argv)}" for host in ("web1", "web2") for argv in RESTORE],
        "  health   the same checks, expecting the previous version",
    ]


def test_a_rerun_of_what_every_host_already_serves_healthy_changes_nothing() -> None:
    servers = Servers(version="2.0.0", commit=NEW)
    report = engine(servers).execute()
    assert (report.outcome, report.exit_code) == ("noop", ExitCode.OK)
    assert report.summary() == "2.0.0 is already deployed to prod: nothing to do"
    assert servers.on("web1")[3:] == servers.on("web2")[3:] == [*LOCKS, DROP]
    assert servers.http.requests == []


def test_a_cancel_during_the_upgrade_lets_it_finish_then_rolls_back() -> None:
    servers = Servers()
    run = engine(servers, cancel_on=lambda host, remote: remote == alembic("upgrade", "head"))
    report = run.execute()
    assert (report.outcome, report.exit_code, report.reason) == ("cancelled", 1, "SIGTERM received")
    assert (stages(report), report.stages[-1].detail) == (["deploy:ok", "migrate:failed"], "cancelled")
    assert alembic("downgrade", "0003") in servers.on("web1")
    assert (servers.serving, servers.revision, run.cancel) == (BOTH_OLD, "0003", None)
    assert rollback(report) == ["downgrade:ok@web1", "restore:ok@web1", "restore:ok@web2", "health:ok@"]


def test_a_real_sigterm_cancels_the_run_and_the_previous_handler_is_put_back() -> None:
    servers, caught = Servers(), []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        servers.hook = lambda _, remote: signal.raise_signal(signal.SIGTERM) if "upgrade" in remote else None
        report = engine(servers).execute()
        assert (report.outcome, report.reason, caught) == ("cancelled", "SIGTERM received", [])
        signal.raise_signal(signal.SIGTERM)
        assert caught == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_cancel_while_taking_the_locks_gives_them_back() -> None:
    servers = Servers()
    run = engine(servers, cancel_on=lambda host, remote: (host, remote) == ("web2", LOCKS[1]))
    with contextlib.suppress(PipelineError):
        run.execute()
    assert servers.on("web1")[-1] == servers.on("web2")[-1] == DROP


def test_a_signal_during_the_rollback_does_not_stop_the_rollback() -> None:
    servers = Servers(broken=("2.0.0",))
    run = engine(servers, cancel_on=lambda host, remote: "logs" in remote)
    report = run.execute()
    assert (servers.serving, servers.revision) == (BOTH_OLD, "0003")
    assert report.outcome == "rolled_back"

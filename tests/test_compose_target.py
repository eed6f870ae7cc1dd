"""The compose target under the engine, driven through the shipped FakeExecutor.

Three hosts answer by reading the remote argv (after ssh and the deadline guard): the commands each
operation sends, their order, and what a failing command turns into.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.config import load_config
from pipeline.engine.plan import render_plan
from pipeline.engine.run import Context, Engine
from pipeline.engine.values import Release
from pipeline.errors import ExitCode, InputError, LockHeld
from pipeline.executor import INTERRUPTED, TIMED_OUT, Command, FakeExecutor, Result
from pipeline.http import FakeHttpClient, HttpRequest, HttpResponse
from pipeline.journal import Entry, parse_journal
from pipeline.remote import unguard
from pipeline.runreport import RunReport
from pipeline.targets import hostfiles
from pipeline.targets.compose import ComposeTarget, policy_of

OLD, NEW, NOW = "a" * 40, "b" * 40, "2026-11-30T00:00:00Z"
PATH, REPO = "/srv/app", "git@example.com:acme/app.git"
STATE = "/srv/app.pipeline"
HOSTS = ("web1", "web2", "web3")
CONFIG: dict[str, Any] = {
    "target": "compose", "hosts": list(HOSTS), "path": PATH, "repository": REPO,
    "migrate": {"service": "web"}, "health": [{"http": "http://{host}:8000/health", "attempts": 2}],
}  # fmt: skip


def compose(version: str, *args: str, path: str = f"{PATH}/compose.yaml") -> tuple[str, ...]:
    head = ("docker", "compose", "--project-directory", PATH, "-f", path, "-p", "app")
    return ("env", f"APP_VERSION={version}", *head, *args)


def alembic(*args: str, version: str = "2.0.0") -> tuple[str, ...]:
    return compose(version, "exec", "-T", "web", "alembic", *args)


def git(*args: str) -> tuple[str, ...]:
    return ("git", "-C", PATH, *args)


class Hosts:
    """Fake hosts behind one FakeExecutor: a shared database, what each host serves, its journal."""

    def __init__(self, broken: tuple[str, ...] = ()) -> None:
        self.revision = "0003"
        self.serving = dict.fromkeys(HOSTS, "1.0.0")
        first = Entry(
            "deploy", "1.0.0", OLD, None, "0002", "0003", "healthy", "", "ci", "2026-11-01", host="x"
        )
        self.journals = dict.fromkeys(HOSTS, first.line())
        self.locks: dict[str, str | None] = dict.fromkeys(HOSTS)
        self.broken = broken
        self.running = True
        self.fail: list[tuple[Callable[[str, tuple[str, ...]], bool], tuple[Any, ...]]] = []
        self.seen: list[tuple[str, tuple[str, ...], str | None, float | None]] = []
        self.executor = FakeExecutor(handler=self.answer)
        self.http = FakeHttpClient(handler=self.health)

    def answer(self, command: Command) -> Result:
        if "-O" in command.argv:
            return Result(command, 0)
        host = command.argv[-2]
        seconds, remote = unguard(shlex.split(command.argv[-1]))
        self.seen.append((host, remote, command.stdin, seconds))
        for match, result in self.fail:
            if match(host, remote):
                self.fail.remove((match, result))
                return Result(command, *result)
        return Result(command, *self.run(host, remote, command.stdin))

    def run(self, host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        if remote[:2] == ("sh", "-c") and remote[3] == "pl-read":
            lock = self.locks[host]
            held = f"held\n{lock}" if lock is not None else "free"
            sections = ["--pipeline-section-journal", self.journals[host], "--pipeline-section-lock", held]
            return 0, "\n".join([*sections, "--pipeline-section-commit", OLD]) + "\n", ""
        if remote[:2] == ("sh", "-c") and remote[3] == "pl-lock":
            if self.locks[host] is not None and not (remote[8] and remote[8] in str(self.locks[host])):
                return hostfiles.HELD, str(self.locks[host]), ""
            self.locks[host] = str(stdin).strip()
            return 0, "", ""
        if remote[:2] == ("sh", "-c") and remote[3] == "pl-append":
            self.journals[host] += str(stdin)
            return 0, "", ""
        if remote[:3] == ("rm", "-rf", "--"):
            self.locks[host] = None
            return 0, "", ""
        if "exec" in remote and not self.running:
            return 1, "", 'service "web" is not running'
        if remote[-2:] == ("alembic", "current"):
            return 0, f"INFO  [alembic.runtime.migration] Context impl.\n{self.revision} (head)\n", ""
        if remote[-2:] == ("alembic", "heads"):
            return 0, "0004 (head)\n", ""
        if remote[-2:] == ("upgrade", "head"):
            self.revision = "0004"
        elif "downgrade" in remote:
            self.revision = remote[-1]
        elif "up" in remote:
            self.serving[host] = remote[1].partition("=")[2]
        elif "logs" in remote:
            return 0, 'web-1  | "GET /health HTTP/1.1" 500\n', ""
        return 0, "", ""

    def health(self, request: HttpRequest) -> HttpResponse:
        version = self.serving[str(urlsplit(request.url).hostname)]
        if version in self.broken:
            return HttpResponse(500, '{"status": "fail", "error": "db down"}')
        return HttpResponse(200, json.dumps({"version": version}))

    def on(self, host: str) -> list[tuple[str, ...]]:
        return [remote for h, remote, _, _ in self.seen if h == host]

    def entries(self, host: str) -> list[Entry]:
        return parse_journal(self.journals[host])


@contextmanager
def connected(hosts: Hosts, **changes: Any) -> Iterator[tuple[Engine, ComposeTarget]]:
    env = load_config({"environments": {"prod": {**CONFIG, **changes}}}).environments["prod"]
    with ComposeTarget.connect(env, hosts.executor, hosts.http, sleep=lambda s: None) as target:
        context = Context(who="tester", now=lambda: NOW, say=lambda s: None, run_id="run1")
        yield Engine("prod", target, policy_of(env), context), target


def deploy(hosts: Hosts, release: Release | None = None, **changes: Any) -> RunReport:
    with connected(hosts, **changes) as (engine, _):
        return engine.deploy(release or Release("2.0.0", NEW), engine.read())


def changes(hosts: Hosts, host: str) -> list[tuple[str, ...]]:
    """What a host was asked to do, without the journal and lock bookkeeping."""
    return [r for r in hosts.on(host) if r[:2] != ("sh", "-c") and r[:3] != ("rm", "-rf", "--")]


DEPLOY = [
    ("mkdir", "-p", PATH),
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


def test_a_healthy_release_runs_each_hosts_commands_under_a_deadline_and_records_it() -> None:
    hosts = Hosts()
    report = deploy(hosts)
    assert (report.outcome, report.exit_code) == ("deployed", ExitCode.OK)
    migrate = [alembic("current"), alembic("upgrade", "head"), alembic("current"), alembic("heads")]
    assert changes(hosts, "web1") == [*DEPLOY, *migrate]
    assert changes(hosts, "web2") == changes(hosts, "web3") == DEPLOY
    assert all(seconds is not None for _, _, _, seconds in hosts.seen)  # every remote command has one
    for host in HOSTS:
        last = hosts.entries(host)[-1]
        assert (last.version, last.result, last.db_before, last.db_after) == (
            "2.0.0",
            "healthy",
            "0003",
            "0004",
        )
        assert hosts.locks[host] is None
    info = json.loads(
        next(fed for h, r, fed, _ in hosts.seen if h == "web2" and r[3:4] == ("pl-lock",)) or ""
    )
    assert (info["who"], info["version"], info["run"]) == ("tester", "2.0.0", "run1")


def test_a_failing_health_check_captures_evidence_downgrades_and_restores_without_building() -> None:
    hosts = Hosts(broken=("2.0.0",))
    report = deploy(hosts)
    assert (report.outcome, report.reason) == ("rolled_back", "health failed")
    evidence = [compose("2.0.0", "logs", "--no-color", "--timestamps", "--tail", "200")]
    evidence.append(compose("2.0.0", "ps", "--all", "--format", "json"))
    downgrade = [alembic("current"), alembic("downgrade", "0003"), alembic("current")]
    assert changes(hosts, "web1")[-7:] == [*evidence, *downgrade, *RESTORE]
    assert changes(hosts, "web3")[-2:] == RESTORE
    assert (set(hosts.serving.values()), hosts.revision) == ({"1.0.0"}, "0003")
    assert '"GET /health HTTP/1.1" 500' in next(e.text for e in report.evidence if e.kind == "logs")
    assert [(e.version, e.result) for e in hosts.entries("web2")[-2:]] == [
        ("2.0.0", "rolled_back"),
        ("1.0.0", "restored"),
    ]


def test_a_migration_past_its_deadline_stops_its_container_then_rolls_back() -> None:
    hosts = Hosts()
    hosts.fail.append((lambda h, r: r[-2:] == ("upgrade", "head"), (TIMED_OUT, "", "timed out")))

    def killed(host: str, remote: tuple[str, ...]) -> bool:
        if "kill" in remote:
            hosts.running = False
        return False

    hosts.fail.insert(0, (killed, (0, "", "")))
    report = deploy(hosts, deadlines={"migrate": 5})
    assert report.outcome == "rolled_back"
    assert "migrate on web1 passed its deadline of 5 s" in report.reason
    assert compose("2.0.0", "kill", "--signal", "KILL", "web") in hosts.on("web1")
    one_off = compose("2.0.0", "run", "--rm", "--no-deps", "-T", "--name", "app-pipeline-current", "web")
    assert (*one_off, "alembic", "current") in hosts.on("web1")  # read without the killed container
    assert set(hosts.serving.values()) == {"1.0.0"}


def test_a_migration_interrupted_by_a_signal_stops_its_container_then_rolls_back() -> None:
    hosts = Hosts()
    with connected(hosts) as (engine, _):

        def signalled(host: str, remote: tuple[str, ...]) -> bool:
            if remote[-2:] != ("upgrade", "head"):
                return False
            engine.cancel.request("SIGTERM received")  # the upgrade is in flight when the signal comes
            return True

        hosts.fail.append((signalled, (INTERRUPTED, "", "interrupted", True)))
        report = engine.deploy(Release("2.0.0", NEW), engine.read())
    assert (report.outcome, report.reason) == ("cancelled", "SIGTERM received")
    assert compose("2.0.0", "kill", "--signal", "KILL", "web") in hosts.on("web1")
    assert (set(hosts.serving.values()), hosts.revision) == ({"1.0.0"}, "0003")
    assert all(lock is None for lock in hosts.locks.values())


def test_a_new_container_that_crashes_at_start_is_rolled_back_with_nothing_lost() -> None:
    """With its service down, the revision is read and downgraded through a one-off container."""
    hosts = Hosts(broken=("2.0.0",))

    def crash(host: str, remote: tuple[str, ...]) -> bool:
        if "up" in remote:
            hosts.running = remote[1] != "APP_VERSION=2.0.0"
        return False

    original = hosts.run

    def run(host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        crash(host, remote)
        return original(host, remote, stdin)

    hosts.run = run  # type: ignore[method-assign]
    report = deploy(hosts)
    assert (report.outcome, report.exit_code) == ("rolled_back", 1), report.render_text()
    one_off = compose("2.0.0", "run", "--rm", "--no-deps", "-T", "--name", "app-pipeline-downgrade", "web")
    assert (*one_off, "alembic", "downgrade", "0003") in hosts.on("web1")
    assert [p.status for p in report.rollback] == ["ok"] * 7
    assert (hosts.revision, set(hosts.serving.values())) == ("0003", {"1.0.0"})


def test_the_image_source_reads_the_revision_only_through_an_uploaded_compose_file() -> None:
    hosts = Hosts()
    release = Release("2.0.0", None, "services: {web: {image: 'x:${APP_VERSION}'}}\n")
    report = deploy(hosts, release, source="image")
    assert report.outcome == "deployed"
    path = f"{STATE}/releases/2.0.0/compose.yaml"
    web1 = hosts.on("web1")
    upload = web1.index(("tee", path))
    first_read = next(i for i, r in enumerate(web1) if r[-2:] == ("alembic", "current"))
    assert upload < first_read
    assert web1[first_read] == compose("2.0.0", "exec", "-T", "web", "alembic", "current", path=path)


def test_a_held_lock_exits_5_naming_its_holder_and_its_age() -> None:
    hosts = Hosts()
    hosts.locks["web3"] = json.dumps({"who": "alice", "at": "2026-11-30T10:00:00Z", "version": "1.9.0"})
    with (
        connected(hosts) as (engine, _),
        pytest.raises(LockHeld, match=r"web3: a deploy holds the lock: alice since"),
    ):
        engine.refuse_locks(engine.read())


def test_a_journal_that_cannot_be_read_stops_the_deploy_before_any_change() -> None:
    hosts = Hosts()
    hosts.fail.append(
        (lambda h, r: h == "web2" and r[3:4] == ("pl-read",), (71, "", "cat: journal: Is a directory"))
    )
    with connected(hosts) as (engine, _), pytest.raises(InputError, match="web2: the journal cannot be read"):
        engine.read()


def test_an_unreachable_host_is_an_input_error_before_any_change() -> None:
    hosts = Hosts()
    hosts.fail.append(
        (lambda h, r: h == "web3", (255, "", "ssh: connect to host web3 port 22: No route to host"))
    )
    with (
        connected(hosts) as (engine, _),
        pytest.raises(InputError, match="host web3 is unreachable over ssh"),
    ):
        engine.read()


def test_the_dry_run_plan_lists_every_command_and_the_rollback_without_running_one() -> None:
    hosts = Hosts()
    with connected(hosts) as (engine, target):
        states = engine.read()
        reads = list(hosts.seen)
        plan = render_plan("prod", target, engine.policy, Release("2.0.0", NEW), states, {"web1": "0003"})
    assert hosts.seen == reads
    assert plan[0] == f"deploy 2.0.0 ({NEW}) to prod: all units at once, all or nothing"
    assert "  host web2: serving 1.0.0" in plan
    for argv in DEPLOY:
        assert f"  deploy   [web3] {shlex.join(argv)}" in plan
    rollback = plan[
        plan.index("rollback plan (on a failed stage, a deadline, an error in the pipeline, or a cancel):") :
    ]
    assert f"  downgrade [web1] {shlex.join(alembic('downgrade', '0003'))}" in rollback
    assert f"  restore  [web2] {shlex.join(RESTORE[1])}" in rollback
    assert plan[-1].startswith("deadlines: lock 30 s, deploy 900 s, migrate 600 s")

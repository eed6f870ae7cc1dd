"""Canary secrets in every form, through a failing deploy, a dry run, a rollback and a notification:
none may show in what is printed, written, sent, journaled on a host or put on a command line.

The hosts are the fake of ``test_compose_target`` (a real git repository on the runner); the same run
against real servers is the end-to-end ``canary`` test.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepos import Repo, invoke
from test_compose_target import NEW, Hosts, connected

from pipeline import operate
from pipeline.config import load_config
from pipeline.engine.cancel import Call, Cancellation
from pipeline.errors import ExitCode
from pipeline.executor import Command, FakeExecutor, LocalExecutor, Result
from pipeline.health import HealthResult
from pipeline.http import FakeHttpClient, HttpRequest, HttpResponse
from pipeline.journal import Entry
from pipeline.notify import Notification, slack_payload, telegram_payload, webhook_payload
from pipeline.orchestrate import DeployRequest, deploy
from pipeline.runreport import Evidence, RunReport, StageResult
from pipeline.secrets import Redactor, forms, redactor_for

TOKEN = "ghp_CanaryT0ken42"  # the user part of the repository URL, GitHub style
PASSWORD = "M0nitor-Canary-pw"  # the password of a health check URL
HOOK = "http://hooks.test/hook/CanaryW3bhookT0ken"  # a webhook URL with its token in the path
QUIRKY = "qu'o\"te wörd|\\ß&<canary>"  # quotes, non-ASCII, a backslash, markup: a Telegram token
CHAT = "canary-chat-4242"
SECRETS = (TOKEN, PASSWORD, HOOK, QUIRKY, CHAT)
ENVIRON = {"DEPLOY_HOOK": HOOK, "TG_TOKEN": QUIRKY, "TG_CHAT": CHAT}
# What the app prints when it fails: every secret, raw and as JSON, shell and URL encoders leave it.
SPILL = "\n".join(f"leak {json.dumps(s)} {shlex.quote(s)} {s}" for s in SECRETS)
ENVIRONMENT: dict[str, Any] = {
    "target": "compose",
    "hosts": ["web1", "web2"],
    "path": "/srv/app",
    "repository": f"https://{TOKEN}@github.com/acme/app.git",
    "migrate": {"service": "web"},
    "health": [{"http": f"http://monitor:{PASSWORD}@{{host}}:8000/health", "attempts": 1}],
    "notify": [
        {"webhook": {"url_env": "DEPLOY_HOOK"}},
        {"telegram": {"token_env": "TG_TOKEN", "chat_env": "TG_CHAT", "api_url": "http://tg.test"}},
    ],
}


def _received(request: HttpRequest) -> str:
    """What a channel received, but for what it must receive: its URL, and Telegram's chat id."""
    data = json.loads(request.body or b"{}")
    data.pop("chat_id", None)
    return json.dumps(data, ensure_ascii=False) + json.dumps(data)


def leaks(text: str) -> list[str]:
    """Every form of every canary found in the text."""
    return sorted({f for s in SECRETS for f in forms(s) if f in text})


class SpillingHosts(Hosts):
    """Hosts whose broken release answers its health check, and logs, with every secret."""

    def run(self, host: str, remote: tuple[str, ...], stdin: str | None) -> tuple[int, str, str]:
        if "logs" in remote:
            return 0, f"web-1  | {SPILL}\n", ""
        return super().run(host, remote, stdin)


class World:
    """The runner's repository, the fake hosts, and everything that left the pipeline."""

    def __init__(self, repo: Repo, hosts: SpillingHosts) -> None:
        self.repo, self.hosts = repo, hosts
        self.printed: list[str] = []
        self.sent: list[HttpRequest] = []
        self.executor = FakeExecutor(handler=self.command)
        self.http = FakeHttpClient(handler=self.answer)
        self.config = load_config(
            {"checklist": {"changelog_unreleased_ok": True}, "environments": {"prod": ENVIRONMENT}}
        )

    def command(self, command: Command) -> Result:
        if command.argv[0] == "ssh":
            return self.hosts.answer(command)
        return LocalExecutor().run(command)

    def answer(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            self.sent.append(request)
            return HttpResponse(200, '{"ok": true}')
        response = self.hosts.health(request)
        return HttpResponse(500, SPILL) if response.status == 500 else response

    def everything(self, *files: Path) -> str:
        """Every output: printed lines, files written, requests sent, journals, argv and stdin."""
        texts = [*self.printed, *(f.read_text() for f in files if f.exists())]
        texts += [_received(r) for r in self.sent]
        texts += list(self.hosts.journals.values())
        texts += [shlex.join(c.argv) for c in self.executor.calls]
        texts += [c.stdin or "" for c in self.executor.calls if "pl-git-auth" not in c.argv[-1]]
        return "\n".join(texts)


@pytest.fixture
def world(repo: Repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    repo.write("compose.yaml", "services:\n  web:\n    build: .\n")
    repo.commit("feat: compose file", "compose.yaml", "services:\n  web:\n    build: .\n")
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    return World(repo, SpillingHosts(broken=("1.1.0",)))


def test_no_canary_leaves_a_failing_deploy_a_dry_run_a_rollback_or_a_notification(
    world: World, tmp_path: Path
) -> None:
    report, summary = tmp_path / "report.json", tmp_path / "summary.md"
    say = world.printed.append
    request = DeployRequest("prod", report_file=str(report))
    code, _ = deploy(world.executor, world.http, world.repo.path, world.config, request, say, lambda s: None)
    assert code == ExitCode.ROLLED_BACK
    assert "leak" in report.read_text() and "leak" in summary.read_text()  # the evidence is there, redacted
    dry = DeployRequest("prod", dry_run=True)
    assert deploy(world.executor, world.http, world.repo.path, world.config, dry, say)[0] == ExitCode.OK
    assert any("pl-git-auth" in line for line in world.printed)

    world.hosts.broken = ()
    assert deploy(world.executor, world.http, world.repo.path, world.config, request, say)[0] == ExitCode.OK
    world.hosts.broken = ("1.0.0",)  # the rollback's re-check fails too, and says why
    rolled = operate.rollback(world.config, "prod", world.executor, world.http, say, None)
    assert rolled == ExitCode.ROLLBACK_FAILED
    message = f"deployed with {TOKEN} and {QUIRKY}"
    assert operate.notify(world.config, "prod", world.executor, world.http, say, message) == ExitCode.OK

    assert len(world.sent) == 2 * 3  # two channels: the failed deploy, the good one, the message
    assert "leak" in "\n".join(world.printed)
    assert leaks(world.everything(report, summary)) == []
    fetches = [c.stdin for c in world.executor.calls if "pl-git-auth" in c.argv[-1]]
    assert fetches and set(fetches) == {"Authorization: Basic Z2hwX0NhbmFyeVQwa2VuNDI6\n"}


def test_no_canary_leaves_the_output_of_a_failing_lint_command(repo: Repo) -> None:
    script = "import json, os, sys; t = os.environ['TG_TOKEN']; print(t, json.dumps(t)); sys.exit(1)"
    lint = shlex.join([sys.executable, "-c", script])
    config = {
        "checklist": {"changelog_unreleased_ok": True},
        "lint": [lint],
        "environments": {"prod": ENVIRONMENT},
    }
    repo.write("invoke.yaml", json.dumps({"pipeline": config}))
    repo.write("compose.yaml", "services:\n  web:\n    build: .\n")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "chore: lint that leaks")
    run = invoke(repo.path, "deploy", "--env", "prod", env=ENVIRON)
    assert run.code == 3, run.stderr
    assert "FAIL lint" in run.stderr and "***" in run.stderr
    assert leaks(run.stdout + run.stderr) == []


def _report() -> RunReport:
    report = RunReport("prod", "1.1.0", "b" * 40, {"web1": "1.0.0"}, "rolled_back", f"failed: {QUIRKY}")
    report.stages = [StageResult("health", "failed", 1.0, f"web1 answered {QUIRKY}", "web1")]
    report.health = [HealthResult("http", "web1", False, f"500 {TOKEN}", status=500, body=SPILL)]
    report.evidence = [Evidence("web1", "logs", "x" * 7000 + SPILL)]
    return report


@pytest.mark.parametrize(
    "render",
    [
        RunReport.render_text,
        RunReport.render_markdown,  # escapes `|` in tables: the raw value is gone before redaction
        RunReport.to_json,  # escapes non-ASCII: ditto
        lambda r: json.dumps(slack_payload(_note(r)), ensure_ascii=False),
        lambda r: json.dumps(telegram_payload(_note(r), "chat")),
        lambda r: json.dumps(webhook_payload(_note(r))),
    ],
    ids=["text", "markdown", "json", "slack", "telegram", "webhook"],
)
def test_a_report_redacted_before_rendering_shows_no_canary_in_any_rendering(render: Any) -> None:
    redactor = Redactor(SECRETS)
    assert leaks(render(redactor.redact_data(_report()))) == []


def _note(report: RunReport) -> Notification:
    return Notification(
        "prod",
        report.version,
        report.outcome,
        report.summary(),
        tuple(report.details()),
        "",
        report.to_data(),
    )


def test_what_the_target_writes_to_a_hosts_journal_is_redacted() -> None:
    hosts = Hosts()
    entry = Entry(
        "deploy", "2.0.0", NEW, "1.0.0", None, None, "failed", f"migrate said {QUIRKY}", "ci", "now"
    )
    with connected(hosts, notify=ENVIRONMENT["notify"]) as (_, target):
        target.redactor = redactor_for(target.env, ENVIRON)
        target.record("web1", [entry], Call("record", "web1", 30.0, Cancellation()))
    assert "migrate said ***" in hosts.journals["web1"]
    assert leaks(hosts.journals["web1"]) == []


def test_no_canary_leaves_a_failing_lint_in_preflight_with_tests(repo: Repo) -> None:
    script = "import os, sys; print(os.environ['DEPLOY_HOOK']); sys.exit(1)"
    config = {
        "checklist": {"changelog_unreleased_ok": True},
        "lint": [shlex.join([sys.executable, "-c", script])],
        "environments": {"prod": ENVIRONMENT},
    }
    repo.write("invoke.yaml", json.dumps({"pipeline": config}))
    repo.git("add", "-A")
    repo.git("commit", "-qm", "chore: lint that leaks")
    run = invoke(repo.path, "preflight", "--with-tests", "--json", env=ENVIRON)
    assert run.code == 3, run.stderr
    assert "***" in run.stdout
    assert leaks(run.stdout + run.stderr) == []

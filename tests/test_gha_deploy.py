"""A failing deploy in GitHub Actions, through ``deploy`` and the shipped FakeTarget: the secrets are
masked first and never printed in clear, each stage is a log group, the failure and the rollback are
annotations, and the job summary holds the run with its timeline."""

from __future__ import annotations

import re
import shlex
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gitrepos import Repo
from test_gha_output import gantt_tasks, mermaid_block, unescape
from test_progress import FakeTTY, screen

from pipeline import operate, progress
from pipeline.config import load_config
from pipeline.engine.cancel import Call
from pipeline.engine.values import Deadlines, LockInfo, Policy, Release
from pipeline.errors import ChecklistFailed, ExitCode, LockHeld
from pipeline.executor import LocalExecutor
from pipeline.http import FakeHttpClient, HttpRequest, HttpResponse
from pipeline.orchestrate import DeployRequest, deploy
from pipeline.runreport import Evidence
from pipeline.secrets import forms
from pipeline.targets import connect
from pipeline.targets.fake import FakeTarget

TOKEN = "ghp_GhaCanaryT0ken42"  # in the repository URL
HOOK = "http://hooks.test/hook/GhaW3bhookCanaryT0ken"  # a webhook URL, its token in the path
KEY = "first-line-of-a-key\nsecond-line-of-a-key"  # a multi-line secret (a Telegram token here)
SECRETS = (TOKEN, HOOK, *KEY.splitlines())


class SpillingTarget(FakeTarget):
    """Units whose broken release logs every secret."""

    def evidence(self, unit: str, release: Release, call: Call) -> list[Evidence]:
        found = super().evidence(unit, release, call)
        return [*found, Evidence(unit, "logs", f"boom {TOKEN} {HOOK}\n{KEY}\n")]


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> SpillingTarget:
    fake = SpillingTarget(["web1", "web2"], heads={"1.0.0": "0003", "1.1.0": "0004"})
    fake.broken = {"1.1.0"}

    @contextmanager
    def connected(*args: Any, **kwargs: Any) -> Iterator[tuple[FakeTarget, Policy]]:
        yield fake, Policy(database="shared", deadlines=Deadlines(cancel_grace=0.05))

    monkeypatch.setattr(connect, "connected", connected)
    return fake


def leaks(text: str) -> list[str]:
    return sorted({f for s in SECRETS for f in forms(s) if f in text})


def test_a_failed_deploy_in_github_actions_masks_groups_annotates_and_summarises(
    repo: Repo,
    target: SpillingTarget,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    repo.commit("feat: compose file", "compose.yaml", "services:\n  web:\n    build: .\n")
    summary = tmp_path / "summary.md"
    summary.write_text("### preflight: earlier step\n")
    for name, value in {
        "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "DEPLOY_HOOK": HOOK, "TG_TOKEN": KEY,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    environment = {
        "target": "compose", "hosts": ["web1", "web2"], "path": "/srv/app",
        "repository": f"https://{TOKEN}@github.com/acme/app.git",
        "notify": [
            {"webhook": {"url_env": "DEPLOY_HOOK"}},
            {"telegram": {"token_env": "TG_TOKEN", "chat_env": "DEPLOY_HOOK", "api_url": "http://tg.test"}},
        ],
    }  # fmt: skip
    config = load_config(
        {"checklist": {"changelog_unreleased_ok": True}, "environments": {"prod": environment}}
    )

    def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, '{"ok": true}')

    code, _ = deploy(LocalExecutor(), FakeHttpClient(answer), repo.path, config, DeployRequest("prod"))
    assert code == ExitCode.ROLLED_BACK
    assert target.state["web1"].serving == "1.0.0"
    lines = capsys.readouterr().out.splitlines()

    masks = [line for line in lines if line.startswith("::add-mask::")]
    assert lines[: len(masks)] == masks  # the masks come first
    masked = {unescape(m.removeprefix("::add-mask::")) for m in masks}
    assert set(SECRETS) <= masked and KEY not in masked  # each line of the key on its own
    assert leaks("\n".join(lines[len(masks) :])) == []  # no secret anywhere else, in any form

    rest = lines[len(masks) :]
    opened = [i for i, line in enumerate(rest) if line.startswith("::group::")]
    closed = [i for i, line in enumerate(rest) if line == "::endgroup::"]
    assert len(opened) == len(closed) and all(o < c for o, c in zip(opened, closed, strict=True))
    assert all(c < o for c, o in zip(closed, opened[1:], strict=False))  # never nested
    titles = [rest[i].removeprefix("::group::") for i in opened]
    assert titles[:3] == ["deploy [web1, web2]", "migrate [web1]", "health [web1, web2]"]
    assert titles[3].startswith("rollback (health failed)")
    health = rest[opened[2] + 1 : closed[2]]
    fates = sorted(line.split(" (")[0] for line in health)  # a sibling's failure may stop one first
    assert fates in (
        ["   web1: health failed", "   web2: health failed"],
        ["   web1: health failed", "   web2: health stopped"],
        ["   web1: health stopped", "   web2: health failed"],
    )

    after = rest[closed[-1] + 1 :]
    assert after[0] == "deploy prod: EXIT 1: 1.1.0 failed (health failed); rolled back to 1.0.0"
    errors = [line for line in after if line.startswith("::error ")]
    assert len(errors) == 1 and errors[0].startswith("::error title=deploy prod%3A health failed::")
    assert "serving 1.1.0, expected a healthy 1.1.0" in errors[0]
    assert [line for line in after if line.startswith("::warning ")] == [
        "::warning title=deploy prod%3A rolled back::1.1.0 failed (health failed); rolled back to 1.0.0"
        "%0Adowngrade web1: ok; restore web1: ok; restore web2: ok; health web1: ok; health web2: ok"
    ]

    markdown = summary.read_text()
    assert markdown.startswith("### preflight: earlier step\n### deploy prod: EXIT 1: 1.1.0 failed")
    assert leaks(markdown) == [] and "boom *** ***" in markdown
    tasks = gantt_tasks(mermaid_block(markdown))
    assert ("health", ["crit"]) in [t[1:3] for t in tasks if not t[0].startswith("rollback")]
    assert {t[0] for t in tasks} == {"web1", "web2", "rollback web1", "rollback web2"}
    forward_end = max(t[4] for t in tasks if t[0] == "web1")
    assert forward_end <= min(t[3] for t in tasks if t[0] == "rollback web1") + 1  # a bar is 1 ms at least


def test_outside_github_actions_the_same_deploy_prints_no_workflow_command(
    repo: Repo, target: SpillingTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit("feat: compose file", "compose.yaml", "services:\n  web:\n    build: .\n")
    config = load_config(
        {
            "checklist": {"changelog_unreleased_ok": True},
            "environments": {"prod": {"target": "compose", "hosts": ["web1"], "path": "/a"}},
        }
    )
    said: list[str] = []
    code, _ = deploy(LocalExecutor(), FakeHttpClient(), repo.path, config, DeployRequest("prod"), said.append)
    assert code == ExitCode.ROLLED_BACK
    assert "-> deploy [web1, web2]" in said and not any(line.startswith("::") for line in said)
    assert "::" not in capsys.readouterr().out


def test_invoke_rollback_in_github_actions_masks_on_stderr_groups_annotates_and_appends_its_summary(
    target: SpillingTarget,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    summary = tmp_path / "summary.md"
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "DEPLOY_HOOK": HOOK,
    }.items():
        monkeypatch.setenv(name, value)
    for unit in target.state.values():  # 2.0.0 serves, healthy; 1.0.0 before it
        unit.journal.append(
            replace(unit.journal[-1], version="2.0.0", commit="commit-2.0.0", db_after="0004")
        )
        unit.serving, unit.commit = "2.0.0", "commit-2.0.0"
    target.shared_revision = "0004"
    environment = {"target": "compose", "hosts": ["web1", "web2"], "path": "/a"}
    environment["notify"] = [{"webhook": {"url_env": "DEPLOY_HOOK"}}]
    config = load_config({"environments": {"prod": environment}})

    code = operate.rollback(config, "prod", LocalExecutor(), FakeHttpClient(), print, None)
    assert code == ExitCode.OK and target.state["web1"].serving == "1.0.0"
    captured = capsys.readouterr()
    assert HOOK in {unescape(line.removeprefix("::add-mask::")) for line in captured.err.splitlines()}
    lines = captured.out.splitlines()
    assert next(line for line in lines if line.startswith("::group::")).startswith("::group::rollback (")
    assert lines.count("::endgroup::") == 1
    assert "   web2: restore ok" in {line.split(" (")[0] for line in lines}
    assert any(line.startswith("::warning title=rollback prod%3A rolled back::") for line in lines)
    assert leaks(captured.out) == []
    markdown = summary.read_text()
    assert markdown.startswith("### rollback prod: OK: ")
    tasks = gantt_tasks(mermaid_block(markdown))
    assert {t[0] for t in tasks} == {"rollback web1", "rollback web2"}


def test_a_deploy_refused_before_it_ran_is_an_error_annotation_without_secrets(
    repo: Repo, target: SpillingTarget, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit("feat: compose file", "compose.yaml", "services:\n  web:\n    build: .\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    target.state["web2"].lock = LockInfo(
        who=f"someone with {TOKEN}", at="2026-11-30T12:00:00Z", version="9.9.9"
    )
    environment = {
        "target": "compose",
        "hosts": ["web1"],
        "path": "/a",
        "repository": f"https://{TOKEN}@h/r.git",
    }
    config = load_config(
        {"checklist": {"changelog_unreleased_ok": True}, "environments": {"prod": environment}}
    )
    with pytest.raises(LockHeld):
        deploy(LocalExecutor(), FakeHttpClient(), repo.path, config, DeployRequest("prod"))
    out = capsys.readouterr().out.splitlines()
    errors = [line for line in out if line.startswith("::error ")]
    assert len(errors) == 1
    assert errors[0].startswith("::error title=deploy prod::web2: a deploy holds the lock: someone with ***")
    assert leaks("\n".join(line for line in out if not line.startswith("::add-mask::"))) == []


def test_failed_checks_before_a_deploy_are_one_error_annotation_each(
    repo: Repo, target: SpillingTarget, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit("feat: compose file", "compose.yaml", "services:\n  web:\n    build: .\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    environment = {"target": "compose", "hosts": ["web1"], "path": "/a"}
    config = load_config({"lint": ["false"], "environments": {"prod": environment}})
    with pytest.raises(ChecklistFailed):
        deploy(LocalExecutor(), FakeHttpClient(), repo.path, config, DeployRequest("prod"))
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 2 and all("title=deploy prod%3A " in line for line in errors)
    assert "::error title=deploy prod%3A lint::`false` exited 1" in errors
    assert errors[0].startswith("::error file=CHANGELOG.md,line=3,title=deploy prod%3A changelog::")
    assert not target.calls  # nothing was touched


def test_on_a_terminal_a_deploy_shows_its_long_checks_live_and_the_screen_keeps_the_plain_lines(
    repo: Repo, target: SpillingTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.commit("feat: compose file", "compose.yaml", "services:\n  web:\n    build: .\n")
    monkeypatch.setattr(progress, "LONG_SECONDS", 0.2)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stdout", terminal)
    target.broken = set()
    lint = shlex.join(["sh", "-c", f"echo 'linting with {TOKEN}'; sleep 0.8"])
    environment = {
        "target": "compose",
        "hosts": ["web1"],
        "path": "/a",
        "repository": f"https://{TOKEN}@h/r.git",
    }
    config = load_config(
        {
            "checklist": {"changelog_unreleased_ok": True},
            "lint": [lint],
            "environments": {"prod": environment},
        }
    )
    code, _ = deploy(LocalExecutor(), FakeHttpClient(), repo.path, config, DeployRequest("prod"))
    assert code == ExitCode.OK
    written = terminal.getvalue()
    assert re.search(r"\r\x1b\[Kchecks \[runner\] \ds  runner: linting with \*\*\*\r", written)  # redacted
    assert TOKEN not in written
    shown = screen(written)
    assert shown[:3] == ["-> deploy [web1, web2]", "-> migrate [web1]", "-> health [web1, web2]"]
    assert shown[3] == "deploy prod: OK: 1.1.0 deployed to prod"
    assert not any("checks [runner]" in line for line in shown)
    assert not any(t.name == "progress" for t in threading.enumerate())

"""The notify stage of a whole deploy, against real HTTP servers on loopback: the release notes of
the deployed commit on success, an incident on failure, retries within the budget, and an exit code
that no channel can change. (The hosts are the fake of ``test_compose_target``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gitrepos import Repo
from loopback import TELEGRAM_OK, Reply, Server, serving, telegram_429
from test_secret_canary import ENVIRONMENT, SpillingHosts, World

from pipeline.config import load_config
from pipeline.errors import ExitCode
from pipeline.http import HttpRequest, HttpResponse, UrllibClient
from pipeline.orchestrate import DeployRequest, deploy

TG_TOKEN = "123456:AAE-n0tify-t0ken"
CHANGELOG = """# Changelog

## [Unreleased]

## [1.1.0] - 2026-11-20

### Added
- **Voice** messages in the `bot` <beta> & more.

## [1.0.0] - 2026-01-02

- The first release.
"""


class LoopbackWorld(World):
    """The canary test's world, whose notifications go to real servers."""

    def answer(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            self.sent.append(request)
            return UrllibClient().request(
                "POST", request.url, body=request.body, headers=request.headers, timeout=request.timeout
            )
        return super().answer(request)


@pytest.fixture
def world(repo: Repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LoopbackWorld:
    repo.write("compose.yaml", "services:\n  web:\n    build: .\n")
    repo.write("CHANGELOG.md", CHANGELOG)
    repo.commit("docs: release 1.1.0", "compose.yaml", "services:\n  web:\n    build: .\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("TG_TOKEN", TG_TOKEN)
    monkeypatch.setenv("TG_CHAT", "-100200")
    monkeypatch.setenv("GITHUB_ACTOR", "alice")
    for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    return LoopbackWorld(repo, SpillingHosts())


def configure(world: World, monkeypatch: pytest.MonkeyPatch, hook: Server, telegram: Server) -> None:
    monkeypatch.setenv("DEPLOY_HOOK", f"{hook.url}/hook/n0tify-h00k-t0ken")
    env: dict[str, Any] = {
        **ENVIRONMENT,
        "notify": [
            {"webhook": {"url_env": "DEPLOY_HOOK"}},
            {"telegram": {"token_env": "TG_TOKEN", "chat_env": "TG_CHAT", "api_url": telegram.url}},
        ],
    }
    config = {"checklist": {"changelog_unreleased_ok": True}, "environments": {"prod": env}}
    world.config = load_config(config)


def run(world: World) -> tuple[ExitCode, Any, list[float]]:
    slept: list[float] = []
    request = DeployRequest("prod")
    code, report = deploy(
        world.executor, world.http, world.repo.path, world.config, request, world.printed.append, slept.append
    )
    return code, report, slept


def test_a_deploy_tells_the_release_notes_of_its_commit_and_a_failing_channel_keeps_exit_0(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(Reply(500, b"hook is down")) as hook, serving(TELEGRAM_OK) as telegram:
        configure(world, monkeypatch, hook, telegram)
        code, report, slept = run(world)

    assert code == ExitCode.OK
    [(name, error), told] = report.notified
    assert (name, told) == ("webhook", ("telegram", None)) and error is not None
    assert error.startswith("webhook: the webhook answered 500: hook is down (gave up after 3 attempts in ")
    assert f"warning: notify webhook failed: {error}" in world.printed
    assert len(hook.received) == 3 and slept[-2:] == [1.0, 2.0]
    assert "n0tify-h00k-t0ken" not in "\n".join(world.printed)

    [message] = telegram.received
    assert message.path == f"/bot{TG_TOKEN}/sendMessage"
    text = message.json["text"]
    assert text.startswith("<b>✅ prod: 1.1.0 deployed</b>\n1.1.0 deployed to prod\n")
    assert f"<b>Commit:</b> {world.repo.head()[:12]}\n<b>By:</b> alice\n" in text
    assert text.endswith(
        "<b>What's new in 1.1.0</b>\n<b>Added</b>\n"
        "• <b>Voice</b> messages in the <code>bot</code> &lt;beta&gt; &amp; more."
    )
    sent = hook.received[0].json
    assert (sent["outcome"], sent["commit"], sent["who"]) == ("deployed", world.repo.head(), "alice")
    assert sent["notes"]["markdown"] == "### Added\n- **Voice** messages in the `bot` <beta> & more."


def test_a_rolled_back_deploy_tells_an_incident_after_waiting_out_flood_control(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.hosts.broken = ("1.1.0",)
    with serving(Reply(200)) as hook, serving(telegram_429(4), TELEGRAM_OK) as telegram:
        configure(world, monkeypatch, hook, telegram)
        code, report, slept = run(world)

    assert code == ExitCode.ROLLED_BACK
    assert report.notified == [("webhook", None), ("telegram", None)]
    assert len(telegram.received) == 2 and 4.0 in slept
    text = telegram.received[-1].json["text"]
    assert "<b>What failed:</b> health: " in text
    assert "<b>Serving now:</b> 1.0.0 on web1, web2" in text
    assert "<b>Human needed now:</b> no: the previous release serves" in text
    assert "What's new" not in text
    incident = json.loads(hook.received[0].body)["incident"]
    assert incident["human_needed"] is False and incident["rollback"].startswith("downgrade ok")


def test_no_channel_answering_at_all_still_ends_the_deploy_with_its_own_code(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving() as hook, serving() as telegram:
        configure(world, monkeypatch, hook, telegram)
    # Both servers are gone: every attempt is refused.
    code, report, _ = run(world)
    assert code == ExitCode.OK
    assert [name for name, error in report.notified if error and "connection refused" in error] == [
        "webhook",
        "telegram",
    ]
    assert TG_TOKEN not in "\n".join(world.printed)


def test_invoke_notify_sends_a_message_through_the_same_channels(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import operate

    with serving(Reply(200)) as hook, serving(TELEGRAM_OK) as telegram:
        configure(world, monkeypatch, hook, telegram)
        message = "rolled back by hand <see #ops>"
        code = operate.notify(world.config, "prod", world.executor, world.http, world.printed.append, message)
    assert code == ExitCode.OK
    assert world.printed[-1] == "notified webhook, telegram"
    assert telegram.received[0].json["text"].split("\n")[:4] == [
        "<b>📣 prod: 1.0.0</b>",
        "rolled back by hand &lt;see #ops&gt;",
        "web1: 1.0.0",
        "web2: 1.0.0",
    ]
    assert hook.received[0].json["summary"] == message


def test_an_image_release_is_told_with_the_commit_of_its_tag_and_its_notes(repo: Repo) -> None:
    from pipeline.engine.values import Release
    from pipeline.executor import LocalExecutor
    from pipeline.notifyrun import deploy_notification
    from pipeline.runreport import RunReport

    config = load_config({})
    report = RunReport("prod", "1.0.0", None, {}, "deployed")
    note = deploy_notification(
        LocalExecutor(), repo.path, config, Release("1.0.0", None), report, tagged=True, who="bob", run_url=""
    )
    assert note.commit == repo.git("rev-parse", "v1.0.0^{commit}")
    assert note.notes is not None and note.notes.lines == ("### Added", "- The first release.")
    report.outcome = "rolled_back"
    told = deploy_notification(
        LocalExecutor(), repo.path, config, Release("1.0.0", None), report, tagged=True, who="bob", run_url=""
    )
    assert told.notes is None and told.outcome == "rolled_back"


def test_a_git_that_fails_leaves_the_commit_and_notes_out_but_the_notification_goes(repo: Repo) -> None:
    from pipeline.engine.values import Release
    from pipeline.executor import Command, FakeExecutor
    from pipeline.notifyrun import deploy_notification
    from pipeline.runreport import RunReport

    def broken(command: Command) -> Any:
        raise OSError("git: not found")

    report = RunReport("prod", "1.1.0", None, {}, "deployed")
    note = deploy_notification(
        FakeExecutor(handler=broken), repo.path, load_config({}), Release("1.1.0", None), report,
        tagged=False, who="bob", run_url="",
    )  # fmt: skip
    assert note.commit == ""
    assert note.notes is not None and note.notes.missing == "the release's commit is unknown"


def test_a_notification_that_cannot_be_built_is_reported_per_channel_and_the_code_stands(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import notifyrun

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"bug near {TG_TOKEN}")

    monkeypatch.setattr(notifyrun, "deploy_notification", broken)
    with serving() as hook, serving(TELEGRAM_OK) as telegram:
        configure(world, monkeypatch, hook, telegram)
        code, report, _ = run(world)
    assert code == ExitCode.OK
    reason = "the notification could not be built: RuntimeError: bug near ***"
    assert report.notified == [("webhook", reason), ("telegram", reason)]
    assert hook.received == telegram.received == []


def test_invoke_notify_exits_1_when_a_channel_does_not_take_the_message(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import operate

    with serving(Reply(400, b"no such hook")) as hook, serving(TELEGRAM_OK) as telegram:
        configure(world, monkeypatch, hook, telegram)
        code = operate.notify(world.config, "prod", world.executor, world.http, world.printed.append, "hi")
    assert code == ExitCode.ROLLED_BACK == 1  # a stage that failed, not bad input
    assert [line for line in world.printed if line.startswith("notify failed: webhook")], world.printed
    assert len(telegram.received) == 1

"""Notifications of real deploys to the sandbox's servers, told to real HTTP servers on loopback that
answer 200, 429, 500 and slowly: the release notes of the deployed tag on success, the incident on
failure, and the deploy's exit code whatever the channels do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apprepo import WEBHOOK_TOKEN
from loopback import TELEGRAM_OK, Reply, serving, telegram_429
from sandboxlib import Project

pytestmark = pytest.mark.e2e

TG_TOKEN = "123456:AAE-e2e-n0tify-t0ken"
SLACK_TOKEN = "T000/B000/e2eSlackH00kT0ken"


def channels(telegram: str) -> list[dict[str, Any]]:
    return [
        {"webhook": {"url_env": "DEPLOY_WEBHOOK"}},
        {"telegram": {"token_env": "TG_TOKEN", "chat_env": "TG_CHAT", "api_url": telegram}},
        {"slack": {"webhook_env": "SLACK_HOOK"}},
        {"webhook": {"url_env": "SLOW_HOOK"}, "attempts": 2, "budget": 3},
    ]


def test_release_notes_reach_every_channel_that_answers_and_a_failing_one_keeps_exit_0(
    project: Project, tmp_path: Path
) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    with (
        serving(telegram_429(1), TELEGRAM_OK) as telegram,
        serving(Reply(500, b"slack is down")) as slack,
        serving(Reply(200, delay=20.0)) as slow,
    ):
        project.configure(notify=channels(telegram.url))
        commit = project.release("2.0.0", "migration", "good")
        env = {
            "TG_TOKEN": TG_TOKEN,
            "TG_CHAT": "-100200",
            "SLACK_HOOK": f"{slack.url}/services/{SLACK_TOKEN}",
            "SLOW_HOOK": f"{slow.url}/hook/{SLACK_TOKEN}",
            "GITHUB_ACTOR": "alice",
        }
        report = tmp_path / "report.json"
        run = project.invoke(
            "deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(report), env=env
        )

    assert run.code == 0, run.text
    assert project.versions() == ["2.0.0"] * 3
    notified = dict(json.loads(report.read_text())["notified"])
    assert (notified["webhook"], notified["telegram"]) == (None, None)
    assert notified["slack"].startswith(
        "slack: the webhook answered 500: slack is down (gave up after 3 attempts"
    )
    assert notified["webhook#2"].startswith(
        "webhook#2: no answer: timed out after 3 s (gave up after 1 attempt"
    )
    assert f"warning: notify slack failed: {notified['slack']}" in run.text
    assert len(slack.received) == 3 and len(slow.received) == 1
    for secret in (TG_TOKEN, SLACK_TOKEN, WEBHOOK_TOKEN):
        assert secret not in run.text + report.read_text()

    assert len(telegram.received) == 2  # flood control waited out
    text = telegram.received[-1].json["text"]
    assert text.startswith("<b>✅ sandbox: 2.0.0 deployed</b>\n")
    assert f"<b>Commit:</b> {commit[:12]}\n<b>By:</b> alice\n" in text
    assert text.endswith("<b>What's new in 2.0.0</b>\n• migration good.")
    sent = project.webhook.received[-1]["json"]
    assert (sent["outcome"], sent["commit"], sent["who"]) == ("deployed", commit, "alice")
    assert sent["notes"]["markdown"] == "- migration good."


def test_a_rolled_back_deploy_tells_the_incident_and_what_serves_now(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    bad = project.hosts[2]
    with serving(TELEGRAM_OK) as telegram:
        project.configure(notify=channels(telegram.url)[:2])
        project.release("2.0.0", "health", f"fail-on-{bad['name']}")
        run = project.invoke(
            "deploy", "--env", "sandbox", "--version", "2.0.0", env={"TG_TOKEN": TG_TOKEN, "TG_CHAT": "-1"}
        )

    assert run.code == 1, run.text
    assert project.versions() == ["1.0.0"] * 3
    ips = ", ".join(h["ip"] for h in project.hosts)
    incident = project.webhook.received[-1]["json"]["incident"]
    assert incident["what_failed"].startswith("health") and bad["ip"] in incident["what_failed"]
    assert incident["serving"] == f"1.0.0 on {ips}"
    assert incident["human_needed"] is False
    text = telegram.received[-1].json["text"]
    assert "<b>What failed:</b> health" in text
    assert f"<b>Serving now:</b> 1.0.0 on {ips}" in text
    assert "<b>Evidence</b>" in text

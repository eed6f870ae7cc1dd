"""Notifiers: what each channel is sent, which refusals are worth a retry, secrets kept out, and real
POSTs to a server on loopback. Message shapes and limits: test_notifyformat; retries: test_delivery."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from loopback import TELEGRAM_OK, Reply, serving

from pipeline.environments import NotifyConfig, SlackConfig, TelegramConfig, WebhookConfig
from pipeline.errors import ConfigError
from pipeline.http import FakeHttpClient, HttpError, HttpResponse, UrllibClient
from pipeline.notify import (
    OUTCOMES,
    Budget,
    FakeNotifier,
    Notification,
    NotifyError,
    Retryable,
    SlackNotifier,
    TelegramNotifier,
    WebhookNotifier,
    build_notifiers,
    send_all,
)
from pipeline.secrets import Redactor, Secret

TOKEN = "s3cr3t-token"
HOOK = f"https://hooks.example.com/hook?token={TOKEN}"
KEY = "pipeline.environments.prod.notify"

HOSTS = ("web1", "web2", "web3")
ROLLED_BACK = Notification(
    environment="production",
    version="2.0.0",
    outcome="rolled_back",
    summary="2.0.0 failed (health) and was rolled back to 1.0.0",
    details=("deploy: ok", "health: GET /health answered 500"),
    run_url="https://github.com/acme/app/actions/runs/1",
    report={
        "exit_code": 1,
        "version": "2.0.0",
        "previous": {h: "1.0.0" for h in HOSTS},
        "stages": [
            {"name": "deploy", "status": "ok"},
            {"name": "health", "status": "failed", "detail": "web3: GET /health answered 500"},
        ],
        "rollback": [{"name": "restore", "status": "ok", "host": h} for h in HOSTS],
        "units": {h: "restored" for h in HOSTS},
    },
    commit="0123456789abcdef",
    who="alice",
)


def sent_json(fake: FakeHttpClient, index: int = -1) -> Any:
    body = fake.requests[index].body
    assert body is not None
    return json.loads(body)


@pytest.mark.parametrize(
    ("outcome", "title"),
    [
        ("deployed", "✅ production: 2.0.0 deployed"),
        ("rolled_back", "↩️ production: 2.0.0 rolled back"),
        ("rollback_failed", "🔥 production: rollback FAILED"),
        ("record_failed", "🔥 production: 2.0.0: the journal was NOT written"),
        ("migrate_failed", "❌ production: the migration failed"),
        ("restored", "↩️ production: 2.0.0 rolled back by hand"),
        ("migrated", "🗄️ production: 2.0.0 migrated"),
        ("failed", "❌ production: 2.0.0 failed"),
        ("cancelled", "⏹️ production: 2.0.0 cancelled"),
        ("interrupted", "⏹️ production: 2.0.0 interrupted before any change"),
        ("noop", "💤 production: 2.0.0 already deployed"),
        ("message", "📣 production: 2.0.0"),
        ("env_applied", "⚙️ production: configuration changed"),
        ("env_reverted", "↩️ production: configuration change reverted"),
        ("env_failed", "🔥 production: configuration revert FAILED"),
    ],
)
def test_the_title_says_environment_version_and_outcome(outcome: str, title: str) -> None:
    assert Notification("production", "2.0.0", outcome, "s").title == title


def test_every_outcome_has_a_title() -> None:
    assert OUTCOMES == (
        "deployed",
        "rolled_back",
        "rollback_failed",
        "record_failed",
        "failed",
        "migrate_failed",
        "cancelled",
        "interrupted",
        "noop",
        "restored",
        "migrated",
        "message",
        "env_applied",
        "env_reverted",
        "env_failed",
    )


def test_every_outcome_of_a_run_report_can_be_told() -> None:
    from pipeline.runreport import OUTCOMES as REPORTED

    assert set(REPORTED) | {"interrupted"} <= set(OUTCOMES)


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="'shipped' is not one of deployed, rolled_back"):
        Notification("production", "2.0.0", "shipped", "s")


def test_slack_gets_a_header_the_message_in_mrkdwn_and_fallback_text() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, "ok")])
    SlackNotifier(Secret(HOOK), fake).send(ROLLED_BACK)
    [request] = fake.requests
    assert (request.method, request.url) == ("POST", HOOK)
    assert request.headers == {"Content-Type": "application/json; charset=utf-8"}
    assert request.timeout == 10.0
    assert sent_json(fake) == {
        "text": "↩️ production: 2.0.0 rolled back\n" + ROLLED_BACK.summary,
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "↩️ production: 2.0.0 rolled back", "emoji": True},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*What failed:* health: web3: GET /health answered 500\n"
                    "*Impact:* 2.0.0 is not live: users are served what they had before the deploy\n"
                    "*Rollback:* restore ok [web1, web2, web3]\n"
                    "*Serving now:* 1.0.0 on web1, web2, web3\n"
                    "*Human needed now:* no: the previous release serves; fix and deploy again\n"
                    "*Version:* 2.0.0\n*Environment:* production\n*Commit:* 0123456789ab\n*By:* alice\n"
                    "*Run:* <https://github.com/acme/app/actions/runs/1|CI run>",
                },
            },
        ],
    }


def test_a_message_without_a_report_says_its_summary_and_details() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, "ok")])
    note = Notification("staging", "1.1.0", "message", "a < b & c", ("web1: 1.1.0",))
    SlackNotifier(Secret(HOOK), fake).send(note)
    payload = sent_json(fake)
    assert payload["text"] == "📣 staging: 1.1.0\na &lt; b &amp; c"
    assert payload["blocks"][1]["text"]["text"] == (
        "a &lt; b &amp; c\nweb1: 1.1.0\n*Version:* 1.1.0\n*Environment:* staging"
    )


@pytest.mark.parametrize(
    ("answer", "retry_after"),
    [
        (HttpResponse(500, "internal_error"), None),
        (HttpResponse(503, "busy", {"retry-after": "7"}), 7.0),
        (HttpResponse(429, "rate_limited", {"retry-after": "3"}), 3.0),
        (HttpResponse(429, "rate_limited", {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}), None),
    ],
)
def test_a_slack_429_or_5xx_is_retryable_with_the_wait_slack_asks(
    answer: HttpResponse, retry_after: float | None
) -> None:
    with pytest.raises(Retryable) as caught:
        SlackNotifier(Secret(HOOK), FakeHttpClient(responses=[answer])).send(ROLLED_BACK)
    assert caught.value.retry_after == retry_after
    assert str(caught.value) == f"slack: the webhook answered {answer.status}: {answer.body}"


def test_a_slack_refusal_names_the_channel_status_and_body_start_and_is_final() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(404, "no_service" + "x" * 500)])
    with pytest.raises(NotifyError) as caught:
        SlackNotifier(Secret(HOOK), fake).send(ROLLED_BACK)
    assert str(caught.value) == "slack: the webhook answered 404: no_service" + "x" * 190
    assert not isinstance(caught.value, Retryable)


def test_an_unreachable_slack_is_retryable_and_the_error_has_no_url() -> None:
    fake = FakeHttpClient(responses=[HttpError("POST", HOOK, "connection refused")])
    with pytest.raises(Retryable) as caught:
        SlackNotifier(Secret(HOOK), fake).send(ROLLED_BACK, timeout=2.5)
    assert str(caught.value) == "slack: no answer: connection refused"
    assert caught.value.__cause__ is None
    assert fake.requests[0].timeout == 2.5


def test_telegram_gets_html_without_previews_at_the_bot_url() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, '{"ok": true, "result": {}}')])
    TelegramNotifier(Secret("123:" + TOKEN), Secret("-100200"), fake).send(ROLLED_BACK)
    [request] = fake.requests
    assert request.url == f"https://api.telegram.org/bot123:{TOKEN}/sendMessage"
    sent = sent_json(fake)
    assert (sent["chat_id"], sent["parse_mode"], sent["disable_web_page_preview"]) == (
        "-100200",
        "HTML",
        True,
    )
    assert sent["text"].splitlines()[:3] == [
        "<b>↩️ production: 2.0.0 rolled back</b>",
        "<b>What failed:</b> health: web3: GET /health answered 500",
        "<b>Impact:</b> 2.0.0 is not live: users are served what they had before the deploy",
    ]
    assert sent["text"].endswith(
        '<b>Run:</b> <a href="https://github.com/acme/app/actions/runs/1">CI run</a>'
    )


def test_telegram_429_is_retryable_after_the_bot_apis_retry_after() -> None:
    body = '{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":5}}'
    notifier = TelegramNotifier(
        Secret(TOKEN), Secret("-1"), FakeHttpClient(responses=[HttpResponse(429, body)])
    )
    with pytest.raises(Retryable) as caught:
        notifier.send(ROLLED_BACK)
    assert caught.value.retry_after == 5.0


def test_html_the_bot_api_cannot_parse_goes_out_again_as_plain_text() -> None:
    refused = HttpResponse(400, '{"ok":false,"description":"Bad Request: can\'t parse entities: ..."}')
    fake = FakeHttpClient(responses=[refused, HttpResponse(200, '{"ok": true}')])
    note = Notification("prod", "2.0.0", "message", "a < b & c")
    TelegramNotifier(Secret(TOKEN), Secret("-1"), fake).send(note)
    first, second = (json.loads(r.body or b"") for r in fake.requests)
    assert first["parse_mode"] == "HTML" and "a &lt; b &amp; c" in first["text"]
    assert "parse_mode" not in second
    assert second["text"] == "📣 prod: 2.0.0\na < b & c\nVersion: 2.0.0\nEnvironment: prod"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            HttpResponse(200, '{"ok": false, "description": "Bad Request: chat not found"}'),
            'telegram: the Bot API did not confirm: {"ok": false, "description": '
            '"Bad Request: chat not found"}',
        ),
        (HttpResponse(200, "<html>proxy</html>"), "telegram: the Bot API did not confirm: "),
        (
            HttpResponse(401, '{"ok":false,"error_code":401,"description":"Unauthorized"}'),
            'telegram: the Bot API answered 401: {"ok":false,"error_code":401,',
        ),
        (HttpError("POST", f"https://t/bot{TOKEN}/x", "timed out"), "telegram: no answer: "),
    ],
)
def test_telegram_not_confirming_is_a_notify_error_without_the_token(
    answer: HttpResponse | Exception, error: str
) -> None:
    notifier = TelegramNotifier(Secret(TOKEN), Secret("-100200"), FakeHttpClient(responses=[answer]))
    with pytest.raises(NotifyError) as caught:
        notifier.send(ROLLED_BACK)
    assert str(caught.value).startswith(error)
    assert TOKEN not in str(caught.value)


def test_the_webhook_gets_structured_fields_and_the_report_as_it_is() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(204)])
    WebhookNotifier(Secret(HOOK), fake).send(ROLLED_BACK)
    assert fake.requests[0].url == HOOK
    sent = sent_json(fake)
    assert {
        k: sent[k] for k in ("title", "environment", "version", "outcome", "commit", "who", "run_url")
    } == {
        "title": "↩️ production: 2.0.0 rolled back",
        "environment": "production",
        "version": "2.0.0",
        "outcome": "rolled_back",
        "commit": "0123456789abcdef",
        "who": "alice",
        "run_url": "https://github.com/acme/app/actions/runs/1",
    }
    assert (sent["summary"], sent["details"]) == (ROLLED_BACK.summary, list(ROLLED_BACK.details))
    assert sent["incident"]["serving"] == "1.0.0 on web1, web2, web3"
    assert sent["incident"]["human_needed"] is False
    assert (sent["notes"], sent["emergency"], sent["waived"], sent["backups"]) == (None, None, [], None)
    assert sent["report"] == ROLLED_BACK.report


def test_a_webhook_refusal_is_a_notify_error() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(502, "")])
    with pytest.raises(NotifyError, match=r"^webhook: the webhook answered 502: \(empty body\)$"):
        WebhookNotifier(Secret(HOOK), fake).send(ROLLED_BACK)


def test_notifiers_print_without_their_secrets() -> None:
    http = FakeHttpClient()
    printed = [
        repr(SlackNotifier(Secret(HOOK), http)),
        str(TelegramNotifier(Secret(TOKEN), Secret("-100200"), http)),
        repr(WebhookNotifier(Secret(HOOK), http)),
    ]
    assert printed[0] == "SlackNotifier(name='slack', webhook=***)"
    assert all(TOKEN not in p and "-100200" not in p for p in printed)


def test_the_fake_notifier_records_or_fails_on_demand() -> None:
    fake = FakeNotifier()
    fake.send(ROLLED_BACK)
    assert fake.sent == [ROLLED_BACK]
    with pytest.raises(NotifyError, match=r"^pager: "):
        FakeNotifier("pager", fail=True).send(ROLLED_BACK)


CHANNELS = (
    NotifyConfig(slack=SlackConfig(webhook_env="SLACK_URL")),
    NotifyConfig(telegram=TelegramConfig(token_env="TG_TOKEN", chat_env="TG_CHAT")),
    NotifyConfig(webhook=WebhookConfig(url_env="HOOK_URL")),
    NotifyConfig(slack=SlackConfig(webhook_env="SLACK_URL_2"), attempts=5, budget=60),
)
ENV = {
    "SLACK_URL": HOOK,
    "TG_TOKEN": "123:" + TOKEN,
    "TG_CHAT": "-100200",
    "HOOK_URL": "https://ops.example.com/deploys",
    "SLACK_URL_2": "https://hooks.example.com/other-room",
}


def test_build_notifiers_makes_one_per_channel_and_hands_secrets_to_the_redactor() -> None:
    redactor = Redactor()
    notifiers = build_notifiers(CHANNELS, ENV, FakeHttpClient(), KEY, redactor)
    assert [type(n).__name__ for n in notifiers] == [
        "SlackNotifier",
        "TelegramNotifier",
        "WebhookNotifier",
        "SlackNotifier",
    ]
    assert [n.name for n in notifiers] == ["slack", "telegram", "webhook", "slack#2"]
    slack, telegram, webhook, _ = notifiers
    assert isinstance(slack, SlackNotifier) and slack.webhook == Secret(HOOK)
    assert isinstance(telegram, TelegramNotifier)
    assert (telegram.token, telegram.chat_id) == (Secret("123:" + TOKEN), Secret("-100200"))
    assert isinstance(webhook, WebhookNotifier)
    assert redactor.redact(" ".join(ENV.values())) == " ".join(["***"] * len(ENV))
    budgets = [
        n.budget for n in notifiers if isinstance(n, (SlackNotifier, TelegramNotifier, WebhookNotifier))
    ]
    assert budgets == [Budget(3, 20.0)] * 3 + [Budget(5, 60.0)]


def test_build_notifiers_names_every_missing_variable_by_its_key() -> None:
    env = {"TG_TOKEN": "123:" + TOKEN, "SLACK_URL_2": "https://hooks.example.com/x"}
    with pytest.raises(ConfigError) as caught:
        build_notifiers(CHANNELS, env, FakeHttpClient(), KEY, Redactor())
    assert str(caught.value).splitlines() == [
        f"{KEY}[0].slack.webhook_env: environment variable SLACK_URL is not set",
        f"{KEY}[1].telegram.chat_env: environment variable TG_CHAT is not set",
        f"{KEY}[2].webhook.url_env: environment variable HOOK_URL is not set",
    ]


def test_a_failing_channel_does_not_stop_the_others() -> None:
    first, broken, last = FakeNotifier("a"), FakeNotifier("b", fail=True), FakeNotifier("c")
    results = send_all([first, broken, last], ROLLED_BACK, Redactor())
    assert results == [
        ("a", None),
        ("b", "b: failing on purpose (FakeNotifier(fail=True))"),
        ("c", None),
    ]
    assert first.sent == last.sent == [ROLLED_BACK]


def test_a_crashing_notifier_is_reported_not_raised() -> None:
    class Crashing:
        name = "custom"

        def send(self, notification: Notification) -> None:
            raise RuntimeError(f"bug near {TOKEN}")

    assert send_all([Crashing()], ROLLED_BACK, Redactor([TOKEN])) == [
        ("custom", "RuntimeError: bug near ***")
    ]


def test_send_all_redacts_every_text_that_leaves_and_every_error() -> None:
    note = Notification(
        environment="prod",
        version="2.0.0",
        outcome="failed",
        summary=f"POST {HOOK} failed",
        details=(f"token={TOKEN}",),
        run_url=f"https://ci/run?t={TOKEN}",
        report={"evidence": [f"Authorization: {TOKEN}"], TOKEN: ("x",)},
    )

    class Leaky:
        name = "leaky"

        def send(self, notification: Notification) -> None:
            raise NotifyError(f"leaky: could not reach {HOOK}")

    fake = FakeNotifier()
    results = send_all([fake, Leaky()], note, Redactor([TOKEN]))
    assert results == [
        ("fake", None),
        ("leaky", "leaky: could not reach https://hooks.example.com/hook?token=***"),
    ]
    [sent] = fake.sent
    assert sent == Notification(
        environment="prod",
        version="2.0.0",
        outcome="failed",
        summary="POST https://hooks.example.com/hook?token=*** failed",
        details=("token=***",),
        run_url="https://ci/run?t=***",
        report={"evidence": ["Authorization: ***"], "***": ("x",)},
    )


def test_these_modules_import_neither_urllib_request_nor_the_config_types() -> None:
    code = (
        "import sys, pipeline.notify\n"
        "heavy = ['urllib.request', 'http.client', 'msgspec', 'pipeline.environments']\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def leaked_note(url: str) -> Notification:
    """A notification whose texts quote the secret, as a careless error message would."""
    return Notification(
        "prod",
        "2.0.0",
        "failed",
        f"could not reach {url}",
        details=(f"POST {url}",),
        report={"url": url, "stages": [{"name": "deploy", "status": "failed", "detail": f"POST {url}"}]},
    )


def assert_never_shown(secret: str, notifier: object, error: NotifyError, body: bytes) -> None:
    shown = [str(error), str(notifier), repr(notifier), body.decode()]
    assert all(secret not in text for text in shown)


def test_slack_posts_to_a_real_server_and_never_shows_the_secret() -> None:
    with serving() as server:
        url = f"{server.url}/hook?token={TOKEN}"
        redactor = Redactor()
        [slack] = build_notifiers(CHANNELS[:1], {"SLACK_URL": url}, UrllibClient(), KEY, redactor)
        assert send_all([slack], leaked_note(url), redactor) == [("slack", None)]
        [received] = server.received
        assert received.path == f"/hook?token={TOKEN}"
        assert received.json["text"] == "❌ prod: 2.0.0 failed\ncould not reach ***"
        assert "*What failed:* deploy: POST ***" in received.json["blocks"][1]["text"]["text"]

        server.answer(Reply(404, b"no_service"))
        with pytest.raises(NotifyError) as caught:
            slack.send(leaked_note("***"))
    assert str(caught.value) == "slack: the webhook answered 404: no_service"
    assert_never_shown(TOKEN, slack, caught.value, received.body)


def test_telegram_posts_to_a_real_server_and_never_shows_the_token() -> None:
    token = "123456:" + TOKEN
    env = {"TG_TOKEN": token, "TG_CHAT": "-100200"}
    with serving(TELEGRAM_OK) as server:
        channel = NotifyConfig(
            telegram=TelegramConfig(token_env="TG_TOKEN", chat_env="TG_CHAT", api_url=server.url)
        )
        redactor = Redactor()
        [telegram] = build_notifiers([channel], env, UrllibClient(), KEY, redactor)
        assert send_all([telegram], leaked_note(token), redactor) == [("telegram", None)]
        [received] = server.received
        assert received.path == f"/bot{token}/sendMessage"
        sent = received.json
        assert sent["chat_id"] == "-100200"
        assert sent["text"].startswith("<b>❌ prod: 2.0.0 failed</b>\n<b>What failed:</b> deploy: POST ***")

        server.answer(Reply(401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}'))
        with pytest.raises(NotifyError) as caught:
            telegram.send(leaked_note("***"))
    assert "answered 401" in str(caught.value)
    assert_never_shown(TOKEN, telegram, caught.value, received.body)


def test_the_webhook_posts_the_report_to_a_real_server_and_never_shows_the_secret() -> None:
    with serving(Reply(200), Reply(404, b"gone")) as server:
        url = f"{server.url}/hook?token={TOKEN}"
        redactor = Redactor()
        [webhook] = build_notifiers(CHANNELS[2:3], {"HOOK_URL": url}, UrllibClient(), KEY, redactor)
        assert send_all([webhook], leaked_note(url), redactor) == [("webhook", None)]
        received = server.received[0]
        assert received.path == f"/hook?token={TOKEN}"
        sent = received.json
        assert (sent["outcome"], sent["report"]["url"]) == ("failed", "***")
        assert sent["details"] == ["POST ***"]

        results = send_all([webhook], leaked_note(url), redactor)
        assert results == [("webhook", "webhook: the webhook answered 404: gone")]
        with pytest.raises(NotifyError) as caught:
            webhook.send(leaked_note("***"))
    assert_never_shown(TOKEN, webhook, caught.value, received.body)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"attempts": 0}, "notify[0].attempts: 0 must be between 1 and 10"),
        ({"attempts": 11}, "notify[0].attempts: 11 must be between 1 and 10"),
        ({"budget": 0.5}, "notify[0].budget: 0.5 must be between 1 and 300 seconds"),
        ({"budget": 3600}, "notify[0].budget: 3600 must be between 1 and 300 seconds"),
    ],
)
def test_a_channels_attempts_and_budget_are_bounded(settings: dict[str, Any], problem: str) -> None:
    from pipeline.config import load_config

    channel = {"webhook": {"url_env": "HOOK_URL"}, **settings}
    env = {"target": "compose", "hosts": ["h"], "path": "/srv/a", "notify": [channel]}
    with pytest.raises(ConfigError) as caught:
        load_config({"environments": {"prod": env}}).environment("prod")
    assert f"pipeline.environments.prod.{problem}" in str(caught.value)

"""Notifications: exact payloads per channel, secrets kept out, and real POSTs to a local server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline.environments import NotifyConfig, SlackConfig, TelegramConfig, WebhookConfig
from pipeline.errors import ConfigError
from pipeline.http import FakeHttpClient, HttpError, HttpResponse, UrllibClient
from pipeline.notify import (
    OUTCOMES,
    SLACK_DETAILS_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    TRUNCATED,
    FakeNotifier,
    Notification,
    NotifyError,
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

ROLLED_BACK = Notification(
    environment="production",
    version="2.0.0",
    outcome="rolled_back",
    summary="2.0.0 failed its health check on 10.200.0.2 and was rolled back to 1.0.0",
    details=("deploy: ok", "health: GET /health answered 500"),
    run_url="https://github.com/acme/app/actions/runs/1",
    report={"exit_code": 1, "stages": [{"name": "health", "ok": False}]},
)


def sent_json(fake: FakeHttpClient, index: int = -1) -> Any:
    body = fake.requests[index].body
    assert body is not None
    return json.loads(body)


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize(
    ("outcome", "title"),
    [
        ("deployed", "✅ production: 2.0.0 deployed"),
        ("rolled_back", "↩️ production: 2.0.0 rolled back"),
        ("rollback_failed", "🔥 production: rollback FAILED"),
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
        "failed",
        "cancelled",
        "interrupted",
        "noop",
        "message",
        "env_applied",
        "env_reverted",
        "env_failed",
    )


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="'shipped' is not one of deployed, rolled_back"):
        Notification("production", "2.0.0", "shipped", "s")


def test_slack_gets_fallback_text_a_header_section_and_a_code_block() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, "ok")])
    SlackNotifier(Secret(HOOK), fake).send(ROLLED_BACK)
    [request] = fake.requests
    assert (request.method, request.url) == ("POST", HOOK)
    assert request.headers == {"Content-Type": "application/json; charset=utf-8"}
    assert sent_json(fake) == {
        "text": "↩️ production: 2.0.0 rolled back\n" + ROLLED_BACK.summary,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*↩️ production: 2.0.0 rolled back*\n"
                    + ROLLED_BACK.summary
                    + "\n<https://github.com/acme/app/actions/runs/1|Open the run>",
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "```\ndeploy: ok\nhealth: GET /health answered 500\n```",
                },
            },
        ],
    }


def test_slack_without_details_or_run_url_gets_the_header_only() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, "ok")])
    SlackNotifier(Secret(HOOK), fake).send(Notification("staging", "1.1.0", "deployed", "done"))
    assert sent_json(fake)["blocks"] == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "*✅ staging: 1.1.0 deployed*\ndone"},
        }
    ]


def test_slack_control_characters_are_escaped() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, "ok")])
    note = Notification("prod", "2.0.0", "failed", "a < b & c > d", details=("<html>",))
    SlackNotifier(Secret(HOOK), fake).send(note)
    payload = sent_json(fake)
    assert payload["text"] == "❌ prod: 2.0.0 failed\na &lt; b &amp; c &gt; d"
    assert payload["blocks"][1]["text"]["text"] == "```\n&lt;html&gt;\n```"


def test_slack_details_are_cut_below_the_block_limit_between_whole_entities() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, "ok")])
    note = Notification("prod", "2.0.0", "failed", "s", details=("&" * 5000,))
    SlackNotifier(Secret(HOOK), fake).send(note)
    block = sent_json(fake)["blocks"][1]["text"]["text"]
    assert len(block) <= 3000
    inner = block.removeprefix("```\n").removesuffix("\n```")
    assert inner.endswith(TRUNCATED)
    kept = inner.removesuffix(TRUNCATED)
    assert kept == "&amp;" * ((SLACK_DETAILS_LIMIT - len(TRUNCATED)) // 5)


def test_a_slack_refusal_names_the_channel_status_and_body_start() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(404, "no_service" + "x" * 500)])
    with pytest.raises(NotifyError) as caught:
        SlackNotifier(Secret(HOOK), fake).send(ROLLED_BACK)
    assert str(caught.value) == "slack: the webhook answered 404: no_service" + "x" * 190


def test_an_unreachable_slack_is_a_notify_error_without_the_url() -> None:
    fake = FakeHttpClient(responses=[HttpError("POST", HOOK, "connection refused")])
    with pytest.raises(NotifyError) as caught:
        SlackNotifier(Secret(HOOK), fake).send(ROLLED_BACK)
    assert str(caught.value) == "slack: no answer: connection refused"
    assert caught.value.__cause__ is None


def test_telegram_gets_plain_text_without_previews_at_the_bot_url() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, '{"ok": true, "result": {}}')])
    TelegramNotifier(Secret("123:" + TOKEN), Secret("-100200"), fake).send(ROLLED_BACK)
    [request] = fake.requests
    assert request.url == f"https://api.telegram.org/bot123:{TOKEN}/sendMessage"
    assert sent_json(fake) == {
        "chat_id": "-100200",
        "text": "↩️ production: 2.0.0 rolled back\n"
        + ROLLED_BACK.summary
        + "\n\ndeploy: ok\nhealth: GET /health answered 500"
        + "\n\nhttps://github.com/acme/app/actions/runs/1",
        "disable_web_page_preview": True,
    }


def test_telegram_text_is_cut_to_4096_utf16_units() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200, '{"ok": true}')])
    note = Notification("prod", "2.0.0", "failed", "s", details=("🔥" * 3000,))
    TelegramNotifier(Secret(TOKEN), Secret("-100200"), fake).send(note)
    text = sent_json(fake)["text"]
    assert text.endswith(TRUNCATED)
    assert TELEGRAM_TEXT_LIMIT - 1 <= units(text) <= TELEGRAM_TEXT_LIMIT


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


def test_the_webhook_gets_every_field_and_the_report_as_it_is() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(204)])
    WebhookNotifier(Secret(HOOK), fake).send(ROLLED_BACK)
    assert fake.requests[0].url == HOOK
    assert sent_json(fake) == {
        "title": "↩️ production: 2.0.0 rolled back",
        "environment": "production",
        "version": "2.0.0",
        "outcome": "rolled_back",
        "summary": ROLLED_BACK.summary,
        "details": ["deploy: ok", "health: GET /health answered 500"],
        "run_url": "https://github.com/acme/app/actions/runs/1",
        "report": {"exit_code": 1, "stages": [{"name": "health", "ok": False}]},
    }


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
    NotifyConfig(slack=SlackConfig(webhook_env="SLACK_URL_2")),
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


class Server(ThreadingHTTPServer):
    """A loopback server that records each request (path, body) and answers ``reply``."""

    received: list[tuple[str, bytes]]
    reply: tuple[int, bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, body))
        status, payload = self.server.reply
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.received, httpd.reply = [], (200, b"ok")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def leaked_note(url: str) -> Notification:
    """A notification whose texts quote the secret, as a careless error message would."""
    return Notification(
        "prod",
        "2.0.0",
        "failed",
        f"could not reach {url}",
        details=(f"POST {url}",),
        report={"url": url},
    )


def assert_never_shown(secret: str, notifier: object, error: NotifyError, body: bytes) -> None:
    shown = [str(error), str(notifier), repr(notifier), body.decode()]
    assert all(secret not in text for text in shown)


def test_slack_posts_to_a_real_server_and_never_shows_the_secret(server: Server) -> None:
    url = f"{server.url}/hook?token={TOKEN}"
    redactor = Redactor()
    [slack] = build_notifiers(CHANNELS[:1], {"SLACK_URL": url}, UrllibClient(), KEY, redactor)
    assert send_all([slack], leaked_note(url), redactor) == [("slack", None)]
    [(path, body)] = server.received
    assert path == f"/hook?token={TOKEN}"
    assert json.loads(body)["text"] == "❌ prod: 2.0.0 failed\ncould not reach ***"

    server.reply = (500, b"internal_error")
    with pytest.raises(NotifyError) as caught:
        slack.send(leaked_note("***"))
    assert str(caught.value) == "slack: the webhook answered 500: internal_error"
    assert_never_shown(TOKEN, slack, caught.value, body)


def test_telegram_posts_to_a_real_server_and_never_shows_the_token(server: Server) -> None:
    token = "123456:" + TOKEN
    env = {"TG_TOKEN": token, "TG_CHAT": "-100200"}
    channel = NotifyConfig(
        telegram=TelegramConfig(token_env="TG_TOKEN", chat_env="TG_CHAT", api_url=server.url)
    )
    redactor = Redactor()
    [telegram] = build_notifiers([channel], env, UrllibClient(), KEY, redactor)
    server.reply = (200, b'{"ok": true, "result": {"message_id": 7}}')
    assert send_all([telegram], leaked_note(token), redactor) == [("telegram", None)]
    [(path, body)] = server.received
    assert path == f"/bot{token}/sendMessage"
    sent = json.loads(body)
    assert sent["chat_id"] == "-100200"
    assert sent["text"].startswith("❌ prod: 2.0.0 failed\ncould not reach ***\n\nPOST ***")

    server.reply = (401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}')
    with pytest.raises(NotifyError) as caught:
        telegram.send(leaked_note("***"))
    assert "answered 401" in str(caught.value)
    assert_never_shown(TOKEN, telegram, caught.value, body)


def test_the_webhook_posts_the_report_to_a_real_server_and_never_shows_the_secret(
    server: Server,
) -> None:
    url = f"{server.url}/hook?token={TOKEN}"
    redactor = Redactor()
    [webhook] = build_notifiers(CHANNELS[2:3], {"HOOK_URL": url}, UrllibClient(), KEY, redactor)
    assert send_all([webhook], leaked_note(url), redactor) == [("webhook", None)]
    [(path, body)] = server.received
    assert path == f"/hook?token={TOKEN}"
    sent = json.loads(body)
    assert (sent["outcome"], sent["report"]) == ("failed", {"url": "***"})
    assert sent["details"] == ["POST ***"]

    server.reply = (503, b"maintenance")
    results = send_all([webhook], leaked_note(url), redactor)
    assert results == [("webhook", "webhook: the webhook answered 503: maintenance")]
    with pytest.raises(NotifyError) as caught:
        webhook.send(leaked_note("***"))
    assert_never_shown(TOKEN, webhook, caught.value, body)

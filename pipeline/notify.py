"""Telling people what a run did: Slack, Telegram and a JSON webhook, each behind one protocol."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.errors import ConfigError, PipelineError
from pipeline.http import HttpClient, HttpError, HttpResponse
from pipeline.secrets import Redactor, Secret, secret_from_env

if TYPE_CHECKING:
    from pipeline.environments import NotifyConfig

_TITLES = {
    "deployed": "✅ {environment}: {version} deployed",
    "rolled_back": "↩️ {environment}: {version} rolled back",
    "rollback_failed": "🔥 {environment}: rollback FAILED",
    "failed": "❌ {environment}: {version} failed",
    "cancelled": "⏹️ {environment}: {version} cancelled",
    "interrupted": "⏹️ {environment}: {version} interrupted before any change",
    "noop": "💤 {environment}: {version} already deployed",
    "message": "📣 {environment}: {version}",
}

OUTCOMES = tuple(_TITLES)

# Slack refuses a text block over 3,000 characters; Telegram a message over 4,096.
SLACK_DETAILS_LIMIT = 2900
TELEGRAM_TEXT_LIMIT = 4096
TRUNCATED = "\n… (truncated)"
_ERROR_BODY = 200
_JSON = {"Content-Type": "application/json; charset=utf-8"}


class NotifyError(PipelineError):
    """A channel did not take the notification; the message names the channel, never a secret."""


@dataclass(frozen=True)
class Notification:
    """What a run did, in words: a title, a one-line summary, detail lines and the run report."""

    environment: str
    version: str
    outcome: str
    summary: str
    details: tuple[str, ...] = ()
    run_url: str = ""
    report: Mapping[str, Any] = field(default_factory=dict)
    emergency: bool = False  # an emergency deploy (its reason is in the summary and the report)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")

    @property
    def title(self) -> str:
        """``✅ production: 2.0.0 deployed``, ``↩️ production: 2.0.0 rolled back``, ``... [EMERGENCY]``"""
        title = _TITLES[self.outcome].format(environment=self.environment, version=self.version)
        return f"{title} [EMERGENCY]" if self.emergency else title


class Notifier(Protocol):
    """A channel; ``send`` raises NotifyError when the channel does not take the message."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one notification."""
        ...


class SlackNotifier:
    """A Slack incoming webhook: a header section and the details as a code block."""

    def __init__(self, webhook: Secret, http: HttpClient, *, name: str = "slack") -> None:
        self.webhook = webhook
        self.http = http
        self.name = name

    def send(self, notification: Notification) -> None:
        """POST the message to the webhook."""
        response = _post(self.http, self.name, self.webhook.reveal(), slack_payload(notification))
        if not response.ok:
            raise NotifyError(_refused(self.name, "the webhook", response))

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r}, webhook={self.webhook!r})"


class TelegramNotifier:
    """A Telegram bot message (plain text, so nothing in the details needs escaping)."""

    def __init__(
        self,
        token: Secret,
        chat_id: Secret,
        http: HttpClient,
        api_url: str = "https://api.telegram.org",
        *,
        name: str = "telegram",
    ) -> None:
        self.token = token
        self.chat_id = chat_id
        self.http = http
        self.api_url = api_url
        self.name = name

    def send(self, notification: Notification) -> None:
        """POST the message to the Bot API's sendMessage."""
        url = f"{self.api_url.rstrip('/')}/bot{self.token.reveal()}/sendMessage"
        payload = telegram_payload(notification, self.chat_id.reveal())
        response = _post(self.http, self.name, url, payload)
        if not response.ok:
            raise NotifyError(_refused(self.name, "the Bot API", response))
        try:
            answer = json.loads(response.body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            raise NotifyError(f"{self.name}: the Bot API did not confirm: {_excerpt(response)}")

    def __repr__(self) -> str:
        return f"TelegramNotifier(name={self.name!r}, token={self.token!r}, chat_id={self.chat_id!r})"


class WebhookNotifier:
    """A JSON POST of the notification and the whole run report to a URL."""

    def __init__(self, url: Secret, http: HttpClient, *, name: str = "webhook") -> None:
        self.url = url
        self.http = http
        self.name = name

    def send(self, notification: Notification) -> None:
        """POST the notification as JSON."""
        response = _post(self.http, self.name, self.url.reveal(), webhook_payload(notification))
        if not response.ok:
            raise NotifyError(_refused(self.name, "the webhook", response))

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r}, url={self.url!r})"


class FakeNotifier:
    """A test double: records what it was sent, or fails every time with ``fail=True``."""

    def __init__(self, name: str = "fake", *, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        """Record the notification, or raise NotifyError."""
        if self.fail:
            raise NotifyError(f"{self.name}: failing on purpose (FakeNotifier(fail=True))")
        self.sent.append(notification)


def slack_payload(notification: Notification) -> dict[str, Any]:
    """The Slack message: fallback text, a header section, and the details as a code block."""
    n = notification
    header = f"*{_slack_escape(n.title)}*\n{_slack_escape(n.summary)}"
    if n.run_url:
        header += f"\n<{n.run_url}|Open the run>"
    blocks: list[dict[str, Any]] = [_section(_truncate(header, SLACK_DETAILS_LIMIT))]
    if n.details:
        details = _truncate("\n".join(n.details), SLACK_DETAILS_LIMIT, _slack_escape)
        blocks.append(_section(f"```\n{details}\n```"))
    return {"text": _slack_escape(f"{n.title}\n{n.summary}"), "blocks": blocks}


def telegram_payload(notification: Notification, chat_id: str) -> dict[str, Any]:
    """The Telegram sendMessage body: plain text cut to Telegram's limit."""
    n = notification
    lines = [n.title, n.summary]
    if n.details:
        lines += ["", *n.details]
    if n.run_url:
        lines += ["", n.run_url]
    return {
        "chat_id": chat_id,
        "text": _truncate("\n".join(lines), TELEGRAM_TEXT_LIMIT),
        "disable_web_page_preview": True,
    }


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """The webhook body: every field of the notification, the run report as it is."""
    n = notification
    return {
        "title": n.title,
        "environment": n.environment,
        "version": n.version,
        "outcome": n.outcome,
        "summary": n.summary,
        "details": list(n.details),
        "run_url": n.run_url,
        "report": dict(n.report),
    }


def build_notifiers(
    channels: Sequence[NotifyConfig],
    env: Mapping[str, str],
    http: HttpClient,
    key: str,
    redactor: Redactor,
) -> list[Notifier]:
    """One notifier per configured channel, secrets read from ``env`` and given to the redactor.

    Every missing variable is reported at once, each with its key path.
    """
    notifiers: list[Notifier] = []
    problems: list[str] = []
    kinds: dict[str, int] = {}

    def named(kind: str) -> str:
        # Two Slack channels are "slack" and "slack#2", so a result says which one failed.
        kinds[kind] = kinds.get(kind, 0) + 1
        return kind if kinds[kind] == 1 else f"{kind}#{kinds[kind]}"

    def secret(name: str, at: str) -> Secret:
        try:
            value = secret_from_env(env, name, at)
        except ConfigError as exc:
            problems.append(str(exc))
            return Secret("")
        redactor.add(value)
        return value

    for i, channel in enumerate(channels):
        at = f"{key}[{i}]"
        if channel.slack is not None:
            webhook = secret(channel.slack.webhook_env, f"{at}.slack.webhook_env")
            notifiers.append(SlackNotifier(webhook, http, name=named("slack")))
        elif channel.telegram is not None:
            t = channel.telegram
            token = secret(t.token_env, f"{at}.telegram.token_env")
            chat = secret(t.chat_env, f"{at}.telegram.chat_env")
            notifiers.append(TelegramNotifier(token, chat, http, t.api_url, name=named("telegram")))
        elif channel.webhook is not None:
            url = secret(channel.webhook.url_env, f"{at}.webhook.url_env")
            notifiers.append(WebhookNotifier(url, http, name=named("webhook")))
        else:
            problems.append(f"{at}: give exactly one of slack, telegram or webhook")
    if problems:
        raise ConfigError("\n".join(problems))
    return notifiers


def send_all(
    notifiers: Sequence[Notifier], notification: Notification, redactor: Redactor
) -> list[tuple[str, str | None]]:
    """Send to every channel: ``(name, error or None)`` each; one failure stops no other.

    The notification is redacted before it leaves, and so are the errors.
    """
    n = notification
    clean = replace(
        n,
        environment=redactor.redact(n.environment),
        version=redactor.redact(n.version),
        summary=redactor.redact(n.summary),
        details=redactor.redact_data(n.details),
        run_url=redactor.redact(n.run_url),
        report=redactor.redact_data(dict(n.report)),
    )
    results: list[tuple[str, str | None]] = []
    for notifier in notifiers:
        try:
            notifier.send(clean)
        # The outcome is settled before anyone is told: a broken channel (even a bug in a
        # user's own notifier) must neither silence the others nor change the exit code.
        except Exception as exc:
            detail = str(exc) if isinstance(exc, NotifyError) else f"{type(exc).__name__}: {exc}"
            results.append((notifier.name, redactor.redact(detail)))
        else:
            results.append((notifier.name, None))
    return results


def _post(http: HttpClient, name: str, url: str, payload: Mapping[str, Any]) -> HttpResponse:
    """POST JSON; no answer becomes a NotifyError that leaves the URL out (it holds the token)."""
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    try:
        return http.request("POST", url, body=body, headers=_JSON)
    except HttpError as exc:
        raise NotifyError(f"{name}: no answer: {exc.reason}") from None


def _refused(name: str, whom: str, response: HttpResponse) -> str:
    return f"{name}: {whom} answered {response.status}: {_excerpt(response)}"


def _excerpt(response: HttpResponse) -> str:
    return " ".join(response.body[:_ERROR_BODY].split()) or "(empty body)"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int, escape: Callable[[str], str] = str) -> str:
    """``escape(text)`` in at most ``limit`` UTF-16 code units (what Slack and Telegram count).

    The cut falls between characters of the original, so never inside an escape like ``&amp;``.
    """
    if _units(escape(text)) <= limit:
        return escape(text)
    room, total = limit - _units(TRUNCATED), 0
    for i, char in enumerate(text):
        total += _units(escape(char))
        if total > room:
            return escape(text[:i]) + TRUNCATED
    return escape(text)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2

"""Telling people what a run did: Slack, Telegram and a JSON webhook, each behind one protocol.

What is said is built in ``pipeline.notifytext`` (release notes, incidents), rendered per channel in
``pipeline.notifyformat`` (within each API's limits) and delivered by ``pipeline.delivery`` (retries
within a bounded budget, all channels at once).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.delivery import DEFAULT_BUDGET, Budget, NotifyError, Retryable, deliver_all
from pipeline.errors import ConfigError
from pipeline.http import HttpClient, HttpError, HttpResponse
from pipeline.notifyformat import (
    SLACK_SECTION_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    slack_payload,
    telegram_payload,
    visible_text,
    webhook_payload,
)
from pipeline.releasenotes import ReleaseNotes
from pipeline.secrets import Redactor, Secret, secret_from_env

if TYPE_CHECKING:
    from pipeline.environments import NotifyConfig

__all__ = [
    "OUTCOMES",
    "SLACK_SECTION_LIMIT",
    "TELEGRAM_TEXT_LIMIT",
    "Budget",
    "FakeNotifier",
    "HttpNotifier",
    "Notification",
    "Notifier",
    "NotifyError",
    "SlackNotifier",
    "TelegramNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "send_all",
    "slack_payload",
    "telegram_payload",
    "webhook_payload",
]

_TITLES = {
    "deployed": "✅ {environment}: {version} deployed",
    "rolled_back": "↩️ {environment}: {version} rolled back",
    "rollback_failed": "🔥 {environment}: rollback FAILED",
    "record_failed": "🔥 {environment}: {version}: the journal was NOT written",
    "failed": "❌ {environment}: {version} failed",
    "migrate_failed": "❌ {environment}: the migration failed",
    "cancelled": "⏹️ {environment}: {version} cancelled",
    "interrupted": "⏹️ {environment}: {version} interrupted before any change",
    "noop": "💤 {environment}: {version} already deployed",
    "restored": "↩️ {environment}: {version} rolled back by hand",
    "migrated": "🗄️ {environment}: {version} migrated",
    "message": "📣 {environment}: {version}",
    "env_applied": "⚙️ {environment}: configuration changed",
    "env_reverted": "↩️ {environment}: configuration change reverted",
    "env_failed": "🔥 {environment}: configuration revert FAILED",
}

OUTCOMES = tuple(_TITLES)

_ERROR_BODY = 200
_JSON = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(frozen=True)
class Notification:
    """What a run did: a title, a one-line summary, detail lines, the run report, and for a
    deployed release who shipped which commit and its release notes."""

    environment: str
    version: str
    outcome: str
    summary: str
    details: tuple[str, ...] = ()
    run_url: str = ""
    report: Mapping[str, Any] = field(default_factory=dict)
    commit: str = ""
    who: str = ""
    notes: ReleaseNotes | None = None
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


class HttpNotifier:
    """A channel over HTTP: one attempt bounded by ``timeout``, retried by the delivery within
    ``budget``; a refusal worth retrying (429, 5xx, no answer) is a ``Retryable``."""

    name: str
    http: HttpClient
    budget: Budget

    def send(self, notification: Notification, timeout: float | None = None) -> None:
        """Deliver one notification in one attempt."""
        raise NotImplementedError

    def _post(self, url: str, payload: Mapping[str, Any], timeout: float | None) -> HttpResponse:
        """POST JSON; no answer is retryable and never shows the URL (it holds the token)."""
        body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
        try:
            return self.http.request(
                "POST", url, body=body, headers=_JSON, timeout=timeout or self.budget.timeout
            )
        except HttpError as exc:
            raise Retryable(f"{self.name}: no answer: {exc.reason}") from None

    def _refuse(self, whom: str, response: HttpResponse, retry_after: float | None = None) -> NotifyError:
        """The error for a status other than 2xx: retryable for 429 and 5xx."""
        message = f"{self.name}: {whom} answered {response.status}: {_excerpt(response)}"
        if response.status == 429 or response.status >= 500:
            wait = retry_after if retry_after is not None else _retry_after(response)
            return Retryable(message, wait)
        return NotifyError(message)


class SlackNotifier(HttpNotifier):
    """A Slack incoming webhook: a header, the message in mrkdwn sections (Block Kit)."""

    def __init__(
        self, webhook: Secret, http: HttpClient, *, name: str = "slack", budget: Budget = DEFAULT_BUDGET
    ) -> None:
        self.webhook = webhook
        self.http = http
        self.name = name
        self.budget = budget

    def send(self, notification: Notification, timeout: float | None = None) -> None:
        """POST the message to the webhook."""
        response = self._post(self.webhook.reveal(), slack_payload(notification), timeout)
        if not response.ok:
            raise self._refuse("the webhook", response)

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r}, webhook={self.webhook!r})"


class TelegramNotifier(HttpNotifier):
    """A Telegram bot message in HTML; should the Bot API not parse it, the same text plain."""

    def __init__(
        self,
        token: Secret,
        chat_id: Secret,
        http: HttpClient,
        api_url: str = "https://api.telegram.org",
        *,
        name: str = "telegram",
        budget: Budget = DEFAULT_BUDGET,
    ) -> None:
        self.token = token
        self.chat_id = chat_id
        self.http = http
        self.api_url = api_url
        self.name = name
        self.budget = budget

    def send(self, notification: Notification, timeout: float | None = None) -> None:
        """POST the message to the Bot API's sendMessage."""
        url = f"{self.api_url.rstrip('/')}/bot{self.token.reveal()}/sendMessage"
        payload = telegram_payload(notification, self.chat_id.reveal())
        response = self._post(url, payload, timeout)
        if response.status == 400 and "parse entities" in response.body:
            # Our HTML is meant to be valid; if the Bot API disagrees, the words still go out.
            plain = {k: v for k, v in payload.items() if k != "parse_mode"}
            plain["text"] = visible_text(payload["text"])
            response = self._post(url, plain, timeout)
        answer = _json(response.body)
        if not response.ok:
            raise self._refuse("the Bot API", response, _telegram_retry_after(answer))
        if answer.get("ok") is not True:
            raise NotifyError(f"{self.name}: the Bot API did not confirm: {_excerpt(response)}")

    def __repr__(self) -> str:
        return f"TelegramNotifier(name={self.name!r}, token={self.token!r}, chat_id={self.chat_id!r})"


class WebhookNotifier(HttpNotifier):
    """A JSON POST of the notification, its notes, its incident and the whole run report."""

    def __init__(
        self, url: Secret, http: HttpClient, *, name: str = "webhook", budget: Budget = DEFAULT_BUDGET
    ) -> None:
        self.url = url
        self.http = http
        self.name = name
        self.budget = budget

    def send(self, notification: Notification, timeout: float | None = None) -> None:
        """POST the notification as JSON."""
        response = self._post(self.url.reveal(), webhook_payload(notification), timeout)
        if not response.ok:
            raise self._refuse("the webhook", response)

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
        budget = Budget(attempts=channel.attempts, seconds=channel.budget)
        if channel.slack is not None:
            webhook = secret(channel.slack.webhook_env, f"{at}.slack.webhook_env")
            notifiers.append(SlackNotifier(webhook, http, name=named("slack"), budget=budget))
        elif channel.telegram is not None:
            t = channel.telegram
            token = secret(t.token_env, f"{at}.telegram.token_env")
            chat = secret(t.chat_env, f"{at}.telegram.chat_env")
            notifiers.append(
                TelegramNotifier(token, chat, http, t.api_url, name=named("telegram"), budget=budget)
            )
        elif channel.webhook is not None:
            url = secret(channel.webhook.url_env, f"{at}.webhook.url_env")
            notifiers.append(WebhookNotifier(url, http, name=named("webhook"), budget=budget))
        else:
            problems.append(f"{at}: give exactly one of slack, telegram or webhook")
    if problems:
        raise ConfigError("\n".join(problems))
    return notifiers


def send_all(
    notifiers: Sequence[Notifier],
    notification: Notification,
    redactor: Redactor,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> list[tuple[str, str | None]]:
    """Send to every channel at once, each retried within its budget: ``(name, error or None)``
    each, in channel order; one failure stops no other and nothing is raised.

    The notification is redacted before it leaves, and so are the errors.
    """
    import time

    clean = redactor.redact_data(notification)
    # The outcome is settled before anyone is told: a broken channel (even a bug in a user's own
    # notifier) must neither silence the others nor change the exit code.
    results = deliver_all(notifiers, clean, sleep or time.sleep, clock or time.monotonic)
    return [(name, None if error is None else redactor.redact(error)) for name, error in results]


def _excerpt(response: HttpResponse) -> str:
    return " ".join(response.body[:_ERROR_BODY].split()) or "(empty body)"


def _json(body: str) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _telegram_retry_after(answer: Mapping[str, Any]) -> float | None:
    """The Bot API's ``parameters.retry_after`` of a 429, in seconds."""
    parameters = answer.get("parameters")
    value = parameters.get("retry_after") if isinstance(parameters, dict) else None
    return float(value) if isinstance(value, (int, float)) and 0 <= value < 86400 else None


def _retry_after(response: HttpResponse) -> float | None:
    """A ``Retry-After`` header in seconds (an HTTP date is read as no header: back off instead)."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None

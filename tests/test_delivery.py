"""Delivery against real HTTP servers on loopback that answer 200, 429, 500 and slowly: retries
within a bounded budget (the clock and the sleeps injected, so nothing waits), all channels at once,
and errors that never show a secret."""

from __future__ import annotations

import threading

import pytest
from loopback import TELEGRAM_OK, FakeClock, Reply, Server, serving, telegram_429

from pipeline import delivery
from pipeline.delivery import Budget, deliver
from pipeline.http import FakeHttpClient, HttpResponse, UrllibClient
from pipeline.notify import (
    Notification,
    SlackNotifier,
    TelegramNotifier,
    WebhookNotifier,
    send_all,
)
from pipeline.secrets import Redactor, Secret

TOKEN = "123456:AAE-s3cr3t-b0t-t0ken"
HOOK_TOKEN = "T000/B000/s3cr3tW3bh00kT0ken"
NOTE = Notification("production", "2.0.0", "deployed", "2.0.0 deployed to production", commit="0" * 40)
http = UrllibClient()


DEFAULT = Budget()


def telegram(server: Server, budget: Budget = DEFAULT) -> TelegramNotifier:
    return TelegramNotifier(Secret(TOKEN), Secret("-100"), http, server.url, budget=budget)


def slack(server: Server, budget: Budget = DEFAULT) -> SlackNotifier:
    return SlackNotifier(Secret(f"{server.url}/services/{HOOK_TOKEN}"), http, budget=budget)


def webhook(server: Server, budget: Budget = DEFAULT) -> WebhookNotifier:
    return WebhookNotifier(Secret(f"{server.url}/hook/{HOOK_TOKEN}"), http, budget=budget)


def redactor() -> Redactor:
    return Redactor([TOKEN, HOOK_TOKEN])


def test_telegram_flood_control_is_waited_out_as_the_bot_api_asks() -> None:
    clock = FakeClock()
    with serving(telegram_429(3), TELEGRAM_OK) as server:
        results = send_all([telegram(server)], NOTE, redactor(), clock.sleep, clock)
    assert results == [("telegram", None)]
    assert len(server.received) == 2
    assert server.received[0].body == server.received[1].body
    assert clock.sleeps("telegram") == [3.0]


@pytest.mark.parametrize("make", [slack, webhook], ids=["slack", "webhook"])
def test_a_429_is_retried_after_its_retry_after_header(make: object) -> None:
    clock = FakeClock()
    with serving(Reply(429, b"rate_limited", {"Retry-After": "2"}), Reply(200)) as server:
        notifier = make(server)  # type: ignore[operator]
        results = send_all([notifier], NOTE, redactor(), clock.sleep, clock)
    assert results == [(notifier.name, None)]
    assert len(server.received) == 2
    assert clock.sleeps(notifier.name) == [2.0]


def test_a_5xx_is_retried_with_a_doubling_backoff_then_reported() -> None:
    clock = FakeClock()
    with serving(Reply(500, b"internal_error")) as server:
        results = send_all([webhook(server)], NOTE, redactor(), clock.sleep, clock)
    [(name, error)] = results
    assert name == "webhook" and error is not None
    assert error.startswith("webhook: the webhook answered 500: internal_error (gave up after 3 attempts in ")
    assert len(server.received) == 3
    assert clock.sleeps("webhook") == [1.0, 2.0]


def test_a_5xx_that_recovers_is_delivered_once() -> None:
    clock = FakeClock()
    with serving(Reply(502, b"bad gateway"), Reply(503, b"busy"), Reply(200)) as server:
        assert send_all([slack(server)], NOTE, redactor(), clock.sleep, clock) == [("slack", None)]
    assert len(server.received) == 3


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_a_4xx_other_than_429_is_never_retried(status: int) -> None:
    clock = FakeClock()
    with serving(Reply(status, b"invalid_payload")) as server:
        [(_, error)] = send_all([slack(server)], NOTE, redactor(), clock.sleep, clock)
    assert error == f"slack: the webhook answered {status}: invalid_payload"
    assert len(server.received) == 1 and clock.sleeps("slack") == []


def test_a_retry_after_past_the_budget_is_not_waited_for() -> None:
    clock = FakeClock()
    with serving(telegram_429(60), TELEGRAM_OK) as server:
        [(_, error)] = send_all([telegram(server)], NOTE, redactor(), clock.sleep, clock)
    assert error is not None and error.endswith(
        "(gave up after 1 attempt: asked to retry in 60 s, past the 20 s budget)"
    )
    assert len(server.received) == 1 and clock.sleeps("telegram") == []


def test_a_slow_server_costs_at_most_the_budget() -> None:
    clock = FakeClock()
    budget = Budget(attempts=5, seconds=3.0, timeout=0.2, backoff=0.5)
    with serving(Reply(200, delay=5.0, gate=threading.Event())) as server:
        [(_, error)] = send_all([webhook(server, budget)], NOTE, redactor(), clock.sleep, clock)
    # 0.2 s, sleep 0.5, 0.2 s, sleep 1.0, 0.2 s: the next wait (2.0) would end past 3 s.
    assert error is not None
    assert error.startswith("webhook: no answer: timed out after 0.2 s (gave up after 3 attempts: ")
    assert error.endswith("a retry would be past the 3 s budget)")
    assert len(server.received) == 3
    assert clock.sleeps("webhook") == [0.5, 1.0]


def test_one_attempt_never_waits_longer_than_what_is_left_of_the_budget() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    budget = Budget(attempts=5, seconds=12.0, timeout=10.0, backoff=4.0)
    fake = FakeHttpClient(responses=[HttpResponse(500, "x"), HttpResponse(200)])
    notifier = SlackNotifier(Secret("https://hooks.example.com/x"), fake)
    assert deliver(notifier, NOTE, budget, sleep, lambda: now[0]) is None
    assert [r.timeout for r in fake.requests] == [10.0, 8.0] and now[0] == 4.0

    now[0] = 0.0
    notifier.http = FakeHttpClient(responses=[HttpResponse(500, "x")])
    error = deliver(notifier, NOTE, budget, sleep, lambda: now[0])
    assert error == (
        "slack: the webhook answered 500: x (gave up after 2 attempts: a retry would be past the 12 s budget)"
    )


def test_a_slow_channel_does_not_hold_back_the_others() -> None:
    clock = FakeClock()
    # The slow server answers only once the fast one was reached: were the channels sent one after
    # the other, the slow one (first in the list) would time out.
    fast_arrived = threading.Event()
    with (
        serving(Reply(200, delay=5.0, gate=fast_arrived)) as slow,
        serving(Reply(200)) as fast,
        serving(telegram_429(1), TELEGRAM_OK) as limited,
    ):
        fast.arrived = fast_arrived
        channels = [
            webhook(slow, Budget(attempts=1, seconds=2.0, timeout=2.0)),
            slack(fast),
            telegram(limited),
        ]
        results = send_all(channels, NOTE, redactor(), clock.sleep, clock)
    assert results == [("webhook", None), ("slack", None), ("telegram", None)]
    assert clock.sleeps("telegram") == [1.0]


def test_a_channel_stuck_past_its_budget_is_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "GRACE", 0.05)
    stuck = threading.Event()

    class Stuck:
        name = "pager"
        budget = Budget(seconds=0.05)

        def send(self, notification: Notification) -> None:
            stuck.wait(5)

    try:
        assert send_all([Stuck()], NOTE, redactor()) == [("pager", "pager: no answer within 0.05 s")]
    finally:
        stuck.set()


def test_no_secret_shows_in_an_error_even_when_the_server_echoes_it() -> None:
    clock = FakeClock()
    with serving() as server:
        echo = f"upstream failed for POST /bot{TOKEN}/sendMessage and /services/{HOOK_TOKEN}".encode()
        server.answer(Reply(500, echo))
        channels = [telegram(server), slack(server), webhook(server)]
        results = send_all(channels, NOTE, redactor(), clock.sleep, clock)
    errors = [error or "" for _, error in results]
    assert all("answered 500: upstream failed for POST /bot***/sendMessage" in e for e in errors)
    assert not any(TOKEN in e or HOOK_TOKEN in e or "s3cr3t" in e for e in errors)


def test_no_answer_at_all_is_retried_and_reported_without_the_url() -> None:
    with serving() as server:
        url = server.url
    clock = FakeClock()  # the server is gone: connection refused
    notifier = TelegramNotifier(Secret(TOKEN), Secret("-100"), http, url)
    [(_, error)] = send_all([notifier], NOTE, redactor(), clock.sleep, clock)
    assert error is not None
    assert error.startswith("telegram: no answer: connection refused (gave up after 3 attempts")
    assert TOKEN not in error and url not in error

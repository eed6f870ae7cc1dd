"""Delivering one notification to every channel: each retried within its own bounded budget, all
at once, so a slow channel starves none of the others and the deploy's end waits a bounded time.

A 429 is retried after the wait the channel asks for (Telegram's ``parameters.retry_after``,
Slack's and a webhook's ``Retry-After``) when that wait fits the budget; a 5xx or no answer after a
doubling backoff; any other 4xx never (the same request would be refused again). Sleeping and the
clock are injected, so tests never wait. The outcome per channel is a line for the report; it never
becomes an exception, and it never changes a deploy's exit code.

(tenacity's policies are the model; a loop of our own keeps "the asked wait does not fit what is
left of the budget, so stop now and say so" and the injected clock in plain sight.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.notify import Notification, Notifier

Sleep = Callable[[float], None]
Clock = Callable[[], float]
# Past every channel's budget, how long the deploy still waits for a channel stuck in a read.
GRACE = 2.0


@dataclass(frozen=True)
class Budget:
    """How hard to try one channel: attempts, seconds in all, seconds for one attempt, first backoff."""

    attempts: int = 3
    seconds: float = 20.0
    timeout: float = 10.0
    backoff: float = 1.0


DEFAULT_BUDGET = Budget()


class NotifyError(PipelineError):
    """A channel did not take the notification; the message names the channel, never a secret."""


class Retryable(NotifyError):
    """A channel did not take the message, but may if asked again (429, 5xx, no answer)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def deliver(
    notifier: Notifier, notification: Notification, budget: Budget, sleep: Sleep, clock: Clock
) -> str | None:
    """Send to one channel within its budget: None once it took the message, else why not."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        left = budget.seconds - (clock() - started)
        try:
            _send(notifier, notification, max(0.1, min(budget.timeout, left)))
            return None
        except Retryable as exc:
            error, asked = str(exc), exc.retry_after
            wait = asked if asked is not None else budget.backoff * 2 ** (attempt - 1)
        except Exception as exc:
            # Refused for good (a 4xx), or a bug in a user's own notifier: asking again changes nothing.
            return _detail(exc)
        spent = clock() - started
        if attempt >= budget.attempts:
            return f"{error} (gave up after {_attempts(attempt)} in {spent:.1f} s)"
        if spent + wait >= budget.seconds:
            why = f"asked to retry in {wait:g} s, " if asked is not None else "a retry would be "
            return f"{error} (gave up after {_attempts(attempt)}: {why}past the {budget.seconds:g} s budget)"
        sleep(wait)


def deliver_all(
    notifiers: Sequence[Notifier],
    notification: Notification,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> list[tuple[str, str | None]]:
    """Every channel at once, each within its budget; ``(name, error or None)`` in channel order.

    A channel whose thread is still in a read past its budget (and a grace) is reported as such and
    left behind (a daemon thread): the deploy's end waits a bounded time whatever the network does.
    """
    results: dict[int, str | None] = {}
    budgets = [budget_of(n) for n in notifiers]

    def run(index: int) -> None:
        results[index] = deliver(notifiers[index], notification, budgets[index], sleep, clock)

    threads = [
        threading.Thread(target=run, args=(i,), name=f"notify {n.name}", daemon=True)
        for i, n in enumerate(notifiers)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + max((b.seconds for b in budgets), default=0.0) + GRACE
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        (n.name, results[i] if i in results else f"{n.name}: no answer within {budgets[i].seconds:g} s")
        for i, n in enumerate(notifiers)
    ]


def budget_of(notifier: Notifier) -> Budget:
    """The notifier's own budget (from its channel's configuration), else the default."""
    budget = getattr(notifier, "budget", None)
    return budget if isinstance(budget, Budget) else Budget()


def _send(notifier: Notifier, notification: Notification, timeout: float) -> None:
    from pipeline.notify import HttpNotifier

    if isinstance(notifier, HttpNotifier):
        notifier.send(notification, timeout=timeout)
    else:
        notifier.send(notification)


def _detail(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, NotifyError) else f"{type(exc).__name__}: {exc}"


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"

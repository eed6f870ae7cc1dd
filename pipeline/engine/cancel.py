"""Cancellation and deadlines: what a signal asks, and what each step on a unit may still spend.

A signal sets the run's ``Cancellation``; steps check it between commands, and a command in flight
is stopped once the grace period has passed (the remote side is stopped with it). The rollback runs
shielded: a second signal does not cut it short, but its own deadlines still hold.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from pipeline import interrupts
from pipeline.errors import Cancelled, DeadlineExceeded


class Cancellation:
    """Set once by a signal (or by the engine to stop sibling units); read by every step."""

    def __init__(self, grace: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self.clock = clock
        self.reason: str | None = None
        self.at = 0.0
        self.immediate = False
        self._lock = threading.Lock()

    def request(self, reason: str, immediate: bool = False) -> None:
        """Ask the run to stop; the first reason wins. ``immediate`` skips the grace period."""
        with self._lock:
            if self.reason is None:
                self.reason, self.at = reason, self.clock()
            self.immediate = self.immediate or immediate

    @property
    def requested(self) -> bool:
        """Whether a stop was asked."""
        return self.reason is not None

    def overdue(self) -> bool:
        """Whether a command in flight must be stopped now (the grace period is over)."""
        return self.reason is not None and (self.immediate or self.clock() - self.at >= self.grace)

    def reset(self) -> None:
        """Forget the request (after the rollback it caused)."""
        with self._lock:
            self.reason, self.at, self.immediate = None, 0.0, False


@contextmanager
def signals_to(cancel: Cancellation) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT request a cancel instead of killing the process.

    From here the engine may change units, so a signal after the block no longer stops the task
    midway (``pipeline.interrupts``): the report and the notifications still go out.
    """
    interrupts.touched()

    def ask(signum: int, frame: FrameType | None) -> None:
        cancel.request(f"{signal.Signals(signum).name} received")

    with interrupts.handling(ask):
        yield


@dataclass
class Call:
    """One stage on one unit: its deadline, the run's cancellation, and who to tell of a first change.

    Targets call ``check()`` before each command, ``timeout()`` for the command's deadline,
    pass ``interrupt`` to the executor, and call ``changing()`` right before a command that changes
    the unit (so a rollback restores exactly the units that were changed).
    """

    stage: str
    unit: str
    seconds: float
    cancel: Cancellation
    shielded: bool = False
    on_change: Callable[[str], None] = lambda unit: None
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()

    def remaining(self) -> float:
        """Seconds left before the stage's deadline."""
        return self.seconds - (self.clock() - self.started)

    def check(self) -> None:
        """Raise Cancelled when a stop was asked (unless shielded), DeadlineExceeded when time is up."""
        if self.cancel.requested and not self.shielded:
            raise Cancelled(str(self.cancel.reason))
        if self.remaining() <= 0:
            raise DeadlineExceeded(
                self.stage,
                f"{self.stage} on {self.unit} passed its deadline of {self.seconds:g} s",
                self.unit,
            )

    def timeout(self) -> float:
        """The deadline of the next command: what is left of the stage's (at least a second)."""
        self.check()
        return max(1.0, self.remaining())

    def interrupt(self) -> bool:
        """Whether the command in flight must stop now (never while shielded)."""
        return not self.shielded and self.cancel.overdue()

    def changing(self) -> None:
        """The unit is about to be changed."""
        self.on_change(self.unit)

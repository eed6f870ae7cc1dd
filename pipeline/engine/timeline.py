"""When each stage ran on each unit: the spans behind the job summary's timeline.

A stage's body is wrapped so every unit's part is timed (relative to the run's start) and announced
to the context's ``activity`` (the terminal's live progress) while it runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from pipeline.errors import Cancelled
from pipeline.runreport import Span

Activity = Callable[[str, str], AbstractContextManager[object]]


class Timer:
    """Times one stage's body on each unit; ``spans`` says how each part ended."""

    def __init__(self, origin: float, stage: str, activity: Activity) -> None:
        self.origin = origin
        self.stage = stage
        self.activity = activity
        self.began = time.monotonic()
        self.times: dict[str, tuple[float, float]] = {}
        self.guard = threading.Lock()

    @property
    def start(self) -> float:
        """When the stage began, in seconds since the run started."""
        return round(self.began - self.origin, 3)

    def wrap(self, body: Callable[[str], None]) -> Callable[[str], None]:
        """``body`` timed and announced on each unit."""

        def timed(unit: str) -> None:
            begun = time.monotonic()
            try:
                with self.activity(self.stage, unit):
                    body(unit)
            finally:
                with self.guard:
                    self.times[unit] = (begun, time.monotonic())

        return timed

    def span(self, unit: str, failure: BaseException | None = None) -> Span:
        """One unit's part: failed on its own failure, cancelled when stopped for another's."""
        begun, ended = self.times.get(unit, (self.began, self.began))
        status = "ok" if failure is None else "cancelled" if isinstance(failure, Cancelled) else "failed"
        return Span(unit, round(begun - self.origin, 3), round(ended - begun, 3), status)

    def spans(self, units: list[str], failures: dict[str, BaseException]) -> list[Span]:
        """Every unit's part, in the order the units were given."""
        return [self.span(u, failures.get(u)) for u in units if u in self.times]

"""How long a target's units kept a run waiting: the pipeline's own overhead is the rest of its time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class BusyClock:
    """Wall time during which at least one command (or wait on a unit) was in flight, counted once
    however many run at once or nest."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.active = 0
        self.since = 0.0
        self.guard = threading.Lock()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Count the block's wall time (once, when blocks overlap)."""
        with self.guard:
            if self.active == 0:
                self.since = time.monotonic()
            self.active += 1
        try:
            yield
        finally:
            with self.guard:
                self.active -= 1
                if self.active == 0:
                    self.seconds += time.monotonic() - self.since

    def spent(self) -> float:
        """The seconds counted so far, the block in flight included."""
        with self.guard:
            return self.seconds + (time.monotonic() - self.since if self.active else 0.0)

"""Ctrl-C and SIGTERM outside the engine: before anything changed, a task stops at once (130/143).

The engine installs its own handlers while it may change hosts (``engine.cancel.signals_to``): there
a signal becomes a rollback. Once it has changed something, a later signal no longer stops the task
midway (the report and notifications still go out); the task ends with the run's own exit code.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_state = {"touched": False, "deferred": 0}


class Interrupted(KeyboardInterrupt):
    """A signal stopped the task before it changed anything."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    """``SIGINT``, ``SIGTERM``."""
    return signal.Signals(signum).name


def touched() -> None:
    """From now on something may have changed: a signal no longer stops the task midway."""
    _state["touched"] = True


def deferred() -> int:
    """The signal that arrived after something changed (0 if none)."""
    return _state["deferred"]


@contextmanager
def handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` while the block runs (signals reach the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, previous in saved.items():
            signal.signal(s, previous)


@contextmanager
def handled() -> Iterator[None]:
    """While a task runs, SIGINT and SIGTERM raise ``Interrupted`` until something changed."""
    _state.update(touched=False, deferred=0)

    def stop(signum: int, frame: FrameType | None) -> None:
        if _state["touched"]:
            _state["deferred"] = _state["deferred"] or signum
            return
        raise Interrupted(signum)

    with handling(stop):
        yield

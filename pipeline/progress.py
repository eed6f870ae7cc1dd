"""Live progress on a terminal: one status line, rewritten in place while a stage runs long.

The line shows the stage, its units, the seconds it has run and the last line of output of a command
running there (redacted, made printable). It is cleared before any other line is printed and at the
end, so what stays on the screen reads exactly as the plain output. Only on a terminal (not in CI,
not with ``TERM=dumb``); ``NO_COLOR`` keeps it uncoloured.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TextIO

from pipeline.executor import Command, Executor, Result
from pipeline.terminal import colour_wanted, printable

TICK_SECONDS = 0.25  # how often the line is redrawn: four times a second at most
LONG_SECONDS = 1.0  # a stage shows on the line once it has run this long
_CLEAR = "\r\x1b[K"


def progress_wanted(stream: object, environ: Mapping[str, str]) -> bool:
    """A status line only on a terminal, never in CI (plain lines there) or with ``TERM=dumb``."""
    isatty = getattr(stream, "isatty", None)
    ci = environ.get("CI", "").lower() not in ("", "0", "false") or environ.get("GITHUB_ACTIONS") == "true"
    return bool(isatty and isatty()) and environ.get("TERM") != "dumb" and not ci


@dataclass
class _Activity:
    stage: str
    unit: str
    since: float
    last: str = ""  # the last line of output, as it came (redacted when drawn)
    heard: int = -1  # when it came, in the order of every line heard


class LiveStatus:
    """The status line: activities begin and end on units, commands report lines, a ticker draws."""

    def __init__(
        self,
        stream: TextIO,
        redact: Callable[[str], str] = str,
        colour: bool = False,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self.stream = stream
        self.redact = redact
        self.colour = colour
        self.clock = clock
        self.width = width
        self.lock = threading.RLock()  # one writer at a time: the ticker, or a line being printed
        self.activities: dict[int, _Activity] = {}
        self.keys = itertools.count()
        self.heard = itertools.count()
        self.shown = ""
        self.local = threading.local()
        self.stop = threading.Event()
        self.ticker: threading.Thread | None = None

    # -- what is going on ----------------------------------------------------------------------

    @contextmanager
    def activity(self, stage: str, unit: str) -> Iterator[None]:
        """While the block runs, ``stage`` runs on ``unit`` (in this thread)."""
        with self.lock:
            key = next(self.keys)
            self.activities[key] = _Activity(stage, unit, self.clock())
        outer, self.local.key = getattr(self.local, "key", None), key
        try:
            yield
        finally:
            self.local.key = outer
            with self.lock:
                self.activities.pop(key, None)

    def echo_for_this_thread(self) -> Callable[[str, bool], None] | None:
        """Where a command started in this thread reports its lines (None outside an activity)."""
        key = getattr(self.local, "key", None)
        if key is None:
            return None

        def take(line: str, is_err: bool) -> None:
            found = self.activities.get(key)
            if found is not None and line.strip():
                found.last, found.heard = line, next(self.heard)

        return take

    # -- drawing -------------------------------------------------------------------------------

    def render(self) -> str:
        """The status text now ("" when no stage has run long): the oldest stage and its units."""
        now = self.clock()
        with self.lock:
            long = [a for a in self.activities.values() if now - a.since >= LONG_SECONDS]
        if not long:
            return ""
        stage = min(long, key=lambda a: a.since).stage
        mine = [a for a in long if a.stage == stage]
        units = ", ".join(dict.fromkeys(a.unit for a in mine))
        text = f"{stage} [{units}] {now - min(a.since for a in mine):.0f}s"
        latest = max(mine, key=lambda a: a.heard)
        if latest.last:
            # What a terminal shows of a line rewritten with \r (a progress bar): its last part.
            shown = [part for part in self.redact(latest.last).split("\r") if part.strip()]
            text += f"  {latest.unit}: {' '.join(shown[-1].split())}" if shown else ""
        return printable(text, keep_lines=False)[: max(10, self.width() - 1)]

    def draw(self) -> None:
        """Rewrite the line when what it says changed."""
        with self.lock:
            text = self.render()
            if text == self.shown:
                return
            styled = f"\x1b[2m{text}\x1b[0m" if self.colour and text else text
            self._write(_CLEAR + styled)
            self.shown = text

    def clear(self) -> None:
        """Take the line off the screen (before a plain line, and at the end)."""
        with self.lock:
            if self.shown:
                self._write(_CLEAR)
                self.shown = ""

    @contextmanager
    def printing(self) -> Iterator[None]:
        """Around a plain line: the status line cleared before it, drawn again after it."""
        with self.lock:
            self.clear()
            yield
            self.draw()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal: the deploy goes on without its status line

    # -- the ticker ----------------------------------------------------------------------------

    def start(self) -> None:
        """Draw a few times a second in a daemon thread until ``close``."""
        if self.ticker is None:
            self.stop.clear()
            self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self.ticker.start()

    def _tick(self) -> None:
        while not self.stop.wait(TICK_SECONDS):
            self.draw()

    def close(self) -> None:
        """Stop the ticker (joined: none outlives the run) and clear the line."""
        self.stop.set()
        if self.ticker is not None:
            self.ticker.join()
            self.ticker = None
        self.clear()


class EchoingExecutor:
    """An executor whose commands report their output lines to the status line of their thread."""

    def __init__(self, inner: Executor, status: LiveStatus) -> None:
        self.inner = inner
        self.status = status

    def _with_echo(self, command: Command) -> Command:
        take = self.status.echo_for_this_thread()
        if take is None or not command.capture:
            return command
        first = command.echo
        if first is None:
            return replace(command, echo=take)

        def both(line: str, is_err: bool) -> None:
            first(line, is_err)
            take(line, is_err)

        return replace(command, echo=both)

    def run(self, command: Command) -> Result:
        """Run one command, its lines reported."""
        return self.inner.run(self._with_echo(command))

    def run_all(self, commands: Iterable[Command]) -> list[Result]:
        """Run several commands, their lines reported."""
        return self.inner.run_all([self._with_echo(c) for c in commands])


def live_status(
    stream: TextIO, environ: Mapping[str, str], redact: Callable[[str], str]
) -> LiveStatus | None:
    """A status line for this stream, or None where plain lines are wanted."""
    if not progress_wanted(stream, environ):
        return None
    return LiveStatus(stream, redact, colour=colour_wanted(stream, environ))

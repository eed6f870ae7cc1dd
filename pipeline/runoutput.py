"""What a run prints while it runs: plain lines, GitHub Actions log groups and annotations, or a
terminal's live status line, from one place.

In GitHub Actions (``GITHUB_ACTIONS=true``) the secrets are masked first, each stage (``-> deploy``)
is a log group holding each unit's result, and the run's failures and rollback become annotations.
On a terminal, long stages show a status line (``pipeline.progress``). Elsewhere, plain lines.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

from pipeline import workflow
from pipeline.errors import Cancelled
from pipeline.executor import Executor
from pipeline.progress import EchoingExecutor, LiveStatus, live_status
from pipeline.runreport import RunReport

STAGE_MARK = "-> "  # how the engine announces a stage: each one opens a log group


class RunOutput:
    """The run's printing: ``say`` for lines, ``activity`` for the engine, ``close`` at the end."""

    def __init__(
        self,
        say: Callable[[str], None],
        environ: Mapping[str, str],
        stream: TextIO | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.plain = say
        self.stream = stream if stream is not None else sys.stdout
        self.github = workflow.in_github_actions(environ)
        self.live: LiveStatus | None = live_status(self.stream, environ, redact)
        self.grouped = False
        self.lock = threading.RLock()

    # -- lines ---------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        """A line of the run: in GitHub Actions a stage's line opens its log group."""
        with self.lock:
            if self.github and line.startswith(STAGE_MARK):
                self.end_group()
                self.emit(workflow.group(line[len(STAGE_MARK) :]))
                self.grouped = True
            elif self.live is not None:
                with self.live.printing():
                    self.plain(line)
            else:
                self.plain(line)

    def emit(self, command: str) -> None:
        """A workflow command, straight to the stream (never through the redactor: a mask names the
        secret it hides)."""
        with self.lock:
            self.stream.write(command + "\n")
            self.stream.flush()

    def end_group(self) -> None:
        """Close the open log group, if any (before the report, which belongs to no stage)."""
        with self.lock:
            if self.grouped:
                self.emit(workflow.endgroup())
                self.grouped = False

    def mask(self, values: Iterable[str]) -> None:
        """In GitHub Actions, ``::add-mask::`` for each secret value before anything else is printed."""
        if self.github:
            for command in workflow.mask_commands(values):
                self.emit(command)

    def annotate(self, report: RunReport, task: str = "deploy") -> None:
        """In GitHub Actions, the run's failures and rollback as annotations."""
        if self.github:
            for command in workflow.run_annotations(report, task):
                self.emit(command)

    def refused(self, title: str, exc: BaseException) -> None:
        """In GitHub Actions, an error that stopped the task before its run, as annotations."""
        if self.github:
            for command in workflow.refusal_annotations(title, exc):
                self.emit(command)

    # -- the engine's side ---------------------------------------------------------------------

    @contextmanager
    def activity(self, stage: str, unit: str) -> Iterator[None]:
        """A stage runs on a unit: on the status line while it runs; in a log group, its result."""
        started = time.monotonic()
        status = "failed"
        try:
            if self.live is not None:
                with self.live.activity(stage, unit):
                    yield
            else:
                yield
            status = "ok"
        except Cancelled:
            status = "stopped"
            raise
        finally:
            if self.github:
                self.say(f"   {unit}: {stage} {status} ({time.monotonic() - started:.1f} s)")

    @contextmanager
    def watching(self, stage: str, where: str) -> Iterator[None]:
        """A step outside the engine (the checks on the runner): on the status line while it runs."""
        if self.live is None:
            yield
            return
        with self.live.activity(stage, where):
            yield

    def executor(self, inner: Executor) -> Executor:
        """The executor whose commands feed the status line (itself where there is none)."""
        return inner if self.live is None else EchoingExecutor(inner, self.live)

    # -- start and end -------------------------------------------------------------------------

    def __enter__(self) -> RunOutput:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """No ticker, no status line, no open group left: on success, an error or a signal."""
        if self.live is not None:
            self.live.close()
        self.end_group()


def publish(out: RunOutput, report: RunReport, redact: Callable[[str], str], task: str) -> None:
    """After a run's report is printed: its annotations, and its job summary appended to
    ``$GITHUB_STEP_SUMMARY`` (a failure to write is a warning, never a new outcome)."""
    import os

    from pipeline.outputs import write
    from pipeline.summary import job_summary

    out.annotate(report, task)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        text = redact(job_summary(report, task=task))
        warning = write("$GITHUB_STEP_SUMMARY", summary, text, append=True)
        if warning:
            out.say(warning)

"""The one seam through which the pipeline runs processes, and its fake for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Protocol

from pipeline.errors import CommandFailed, CommandNotFound


@dataclass(frozen=True)
class Command:
    """A process to run, as data: argv (never a shell string), where, and what to feed it.

    With ``capture`` off the output goes straight to the terminal (long test runs stream).
    """

    argv: tuple[str, ...]
    cwd: str | None = None
    stdin: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    capture: bool = True
    timeout: float | None = None
    # In its own session, a Ctrl-C at the terminal does not reach it: a cancelled deploy lets
    # the step in flight finish, then rolls back.
    shield: bool = False
    # Asked while the process runs; True stops it (a signal asked the deploy to stop). Not part of
    # what the command is, so two commands differing only by it compare equal.
    interrupt: Callable[[], bool] | None = field(default=None, compare=False, repr=False)
    # Without input, an open pipe rather than /dev/null: its EOF tells a remote guard the client is gone.
    keep_stdin_open: bool = False
    # With ``capture``, each line as it arrives (and whether it came on stderr): output streamed to a
    # person after passing through us (the redactor) rather than straight to the terminal.
    echo: Callable[[str, bool], None] | None = field(default=None, compare=False, repr=False)
    # With ``echo``: keep only the newest this many bytes of each stream in the Result (a log followed
    # for hours is echoed line by line, never held whole in memory). None keeps everything.
    retain: int | None = None

    def __str__(self) -> str:
        import shlex

        return shlex.join(self.argv)


@dataclass(frozen=True)
class Result:
    """What a finished process left: exit status and its captured output."""

    command: Command
    returncode: int
    stdout: str = ""
    stderr: str = ""
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """Whether the process exited 0."""
        return self.returncode == 0

    def check(self) -> Result:
        """Return self, or raise CommandFailed when the process failed."""
        if not self.ok:
            raise CommandFailed(self.command.argv, self.returncode, self.stderr or self.stdout)
        return self


# The exit status reported for a command killed at its timeout (as coreutils `timeout` does).
TIMED_OUT = 124
# The exit status reported for a command stopped by its interrupt (128 + SIGINT, as a shell does).
INTERRUPTED = 130

# How often a running command's deadline and interrupt are looked at.
POLL_SECONDS = 0.05
# A stopped process gets SIGTERM, then SIGKILL when it is still there after this long.
KILL_AFTER_SECONDS = 2.0
# After a stop, how long the output is still read once the process is gone: whatever it started
# may hold the pipes open forever (a shell's orphaned child), and the caller asked to be done.
DRAIN_SECONDS = 1.0


class Executor(Protocol):
    """Runs commands; `run_all` may run them concurrently and returns results in order."""

    def run(self, command: Command) -> Result:
        """Run one command to completion and capture its output."""
        ...

    def run_all(self, commands: Iterable[Command]) -> list[Result]:
        """Run several independent commands, concurrently where possible."""
        ...


class LocalExecutor:
    """Runs commands as local processes (ssh included: remote commands are local `ssh` argv)."""

    def run(self, command: Command) -> Result:
        """Run one command to completion and capture its output."""
        return self.run_all([command])[0]

    def run_all(self, commands: Iterable[Command]) -> list[Result]:
        """Start every command, then collect each: git answers several questions in parallel."""
        jobs: list[_Job] = []
        try:
            for command in commands:
                jobs.append(_Job(command))
        except BaseException:
            for job in jobs:
                job.kill()
            raise
        pending = list(jobs)
        try:
            while pending:
                pending = [job for job in pending if not job.step()]
                if pending:
                    # Blocks on one process at a time, but never longer than a poll: the others'
                    # deadlines and interrupts are looked at again right after.
                    pending[0].wait(POLL_SECONDS)
        except BaseException:
            # A signal (Ctrl-C before anything changed) or a bug: our commands do not outlive us.
            for job in pending:
                job.kill()
            raise
        return [job.result() for job in jobs]


class _Job:
    """One started process: its output read by threads, its deadline and interrupt watched."""

    def __init__(self, command: Command) -> None:
        self.command = command
        self.process = _start(command)
        self.started = time.monotonic()
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        # Threads read the pipes, so a process writing more than a pipe holds never blocks on us
        # while we look at the clock.
        self.readers = [
            _thread(
                _read, stream, chunks, _lines(command.echo, is_err) if command.echo else None, command.retain
            )
            for stream, chunks, is_err in (
                (self.process.stdout, self.out, False),
                (self.process.stderr, self.err, True),
            )
            if stream is not None
        ]
        if command.stdin is not None and self.process.stdin is not None:
            _thread(_feed, self.process.stdin, command.stdin.encode("utf-8", "replace"))
        self.stop: str | None = None
        self.stopped_at = 0.0
        self.killed = False
        self.exited_at: float | None = None

    def step(self) -> bool:
        """Look at the process once: stop it when due; whether it is done (exited, output read)."""
        now = time.monotonic()
        code = self.process.poll()
        if code is not None and self.exited_at is None:
            self.exited_at = now
            if self.command.keep_stdin_open and self.process.stdin is not None:
                self.process.stdin.close()
        if code is not None and not any(t.is_alive() for t in self.readers):
            return True
        if self.stop is None:
            timeout = self.command.timeout
            if timeout is not None and now - self.started >= timeout:
                self.stop = "timed out"
            elif self.command.interrupt is not None and self.command.interrupt():
                self.stop = "interrupted"
            if self.stop is not None:
                self.stopped_at = now
                if code is None:
                    self._signal(signal.SIGTERM)
        elif code is None and not self.killed and now - self.stopped_at >= KILL_AFTER_SECONDS:
            self.killed = True
            self._signal(signal.SIGKILL)
        return (
            self.stop is not None
            and self.exited_at is not None
            and now - max(self.exited_at, self.stopped_at) >= DRAIN_SECONDS
        )

    def wait(self, seconds: float) -> None:
        """Block until the process ends and its output is read, or for ``seconds`` at most.

        The readers first: a thread's end wakes us at once, where ``Popen.wait(timeout)`` sleeps in
        growing steps (a 16 ms git was seen 31 ms late).
        """
        until = time.monotonic() + seconds
        for reader in self.readers:
            reader.join(max(0.0, until - time.monotonic()))
        if self.process.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(max(0.0, until - time.monotonic()))

    def kill(self) -> None:
        """Kill and reap it at once (the batch was abandoned: a start failed, or a signal came)."""
        self._signal(signal.SIGKILL)
        self.process.wait()
        if self.command.keep_stdin_open and self.process.stdin is not None:
            self.process.stdin.close()

    def result(self) -> Result:
        """The Result, with what was read so far and the reason when it was stopped."""
        out, err = _text(self.out), _text(self.err)
        if self.stop is None:
            return Result(self.command, self.process.returncode, out, err)
        note = "interrupted" if self.stop == "interrupted" else f"timed out after {self.command.timeout:g} s"
        if err and not err.endswith("\n"):
            err += "\n"
        code = INTERRUPTED if self.stop == "interrupted" else TIMED_OUT
        return Result(self.command, code, out, err + note, interrupted=self.stop == "interrupted")

    def _signal(self, sig: signal.Signals) -> None:
        try:
            if self.command.shield:
                # Its own session is its own process group: whatever it started goes too.
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        except ProcessLookupError:
            pass


def _start(command: Command) -> subprocess.Popen[bytes]:
    env = {**os.environ, **command.env} if command.env else None
    piped = command.stdin is not None or command.keep_stdin_open
    try:
        return subprocess.Popen(
            command.argv,
            cwd=command.cwd,
            env=env,
            stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
            stdout=subprocess.PIPE if command.capture else None,
            stderr=subprocess.PIPE if command.capture else None,
            start_new_session=command.shield,
        )
    except FileNotFoundError as exc:
        raise CommandNotFound(
            f"`{command.argv[0]}` is not installed or not on PATH"
            if exc.filename == command.argv[0]
            else f"directory {command.cwd!r} does not exist"
        ) from None


def _thread(target: Callable[..., None], *args: object) -> threading.Thread:
    # Daemon: a reader left behind on a pipe something else holds open must not keep Python alive.
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _read(
    stream: IO[bytes],
    chunks: list[bytes],
    echo: Callable[[bytes], None] | None = None,
    retain: int | None = None,
) -> None:
    kept = 0
    try:
        while chunk := os.read(stream.fileno(), 65536):
            chunks.append(chunk)
            kept += len(chunk)
            while retain is not None and kept > retain and len(chunks) > 1:
                kept -= len(chunks.pop(0))
            if echo is not None:
                echo(chunk)
    finally:
        if echo is not None:
            echo(b"")  # the end: a last line without its newline
        stream.close()


LINE_LIMIT = 1 << 20  # bytes of one line handed on; a longer one comes in pieces


class Lines:
    """Bytes in as they arrive, whole lines out (UTF-8, broken sequences replaced); ``end``: the rest.

    A line longer than ``LINE_LIMIT`` bytes is handed on in pieces, so output without newlines (a log
    followed for hours) never grows without bound."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        """The lines this chunk completes."""
        self.pending.extend(chunk)
        *whole, rest = self.pending.split(b"\n")
        while len(rest) > LINE_LIMIT:
            whole.append(rest[:LINE_LIMIT])
            rest = rest[LINE_LIMIT:]
        self.pending[:] = rest
        return [bytes(line).decode("utf-8", "replace") for line in whole]

    def end(self) -> list[str]:
        """The last line, when it had no newline."""
        rest = bytes(self.pending).decode("utf-8", "replace")
        self.pending.clear()
        return [rest] if rest else []


def _lines(echo: Callable[[str, bool], None], is_err: bool) -> Callable[[bytes], None]:
    """Chunks in, whole lines out to ``echo`` (an empty chunk flushes the rest)."""
    lines = Lines()

    def take(chunk: bytes) -> None:
        for line in lines.feed(chunk) if chunk else lines.end():
            echo(line, is_err)

    return take


def _feed(stream: IO[bytes], data: bytes) -> None:
    # The process may exit (or be stopped) without reading all its input: that is its business.
    with contextlib.suppress(BrokenPipeError):
        stream.write(data)
    with contextlib.suppress(BrokenPipeError):
        stream.close()


def _text(chunks: list[bytes]) -> str:
    # As subprocess's text mode does: UTF-8 with replacement, universal newlines.
    text = b"".join(list(chunks)).decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


Handler = Callable[[Command], Result]


class FakeExecutor:
    """A test double: answers each argv from a table (or a handler) and records every call.

    ``FakeExecutor({("git", "status"): (0, "clean", "")})`` answers that exact argv; an argv
    with no answer fails the test loudly instead of running anything.
    """

    def __init__(
        self,
        answers: Mapping[tuple[str, ...], tuple[int, str, str]] | None = None,
        handler: Handler | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self.handler = handler
        self.calls: list[Command] = []

    def run(self, command: Command) -> Result:
        """Answer from the table or the handler; record the call."""
        self.calls.append(command)
        if command.argv in self.answers:
            code, out, err = self.answers[command.argv]
            return Result(command, code, out, err)
        if self.handler is not None:
            return self.handler(command)
        raise AssertionError(f"FakeExecutor has no answer for {command.argv!r}")

    def run_all(self, commands: Iterable[Command]) -> list[Result]:
        """Answer each command in order."""
        return [self.run(c) for c in commands]

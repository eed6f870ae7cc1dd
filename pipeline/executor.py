"""The one seam through which the pipeline runs processes, and its fake for tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

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
        started = [(command, self._start(command)) for command in commands]
        results = []
        for command, process in started:
            try:
                out, err = process.communicate(command.stdin, timeout=command.timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
                err = f"{err or ''}timed out after {command.timeout:g} s"
                results.append(Result(command, TIMED_OUT, out or "", err))
                continue
            results.append(Result(command, process.returncode, out or "", err or ""))
        return results

    @staticmethod
    def _start(command: Command) -> subprocess.Popen[str]:
        env = {**os.environ, **command.env} if command.env else None
        try:
            return subprocess.Popen(
                command.argv,
                cwd=command.cwd,
                env=env,
                stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE if command.capture else None,
                stderr=subprocess.PIPE if command.capture else None,
                text=True,
                start_new_session=command.shield,
                encoding="utf-8",
                errors="replace",
            )
        except FileNotFoundError as exc:
            raise CommandNotFound(
                f"`{command.argv[0]}` is not installed or not on PATH"
                if exc.filename == command.argv[0]
                else f"directory {command.cwd!r} does not exist"
            ) from None


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

"""The project's errors: one small tree, each class carrying its documented exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every task; stable and documented in the README."""

    OK = 0
    ROLLED_BACK = 1
    BAD_INPUT = 2
    CHECKLIST_FAILED = 3
    ROLLBACK_FAILED = 4
    LOCKED = 5
    INTERNAL_ERROR = 70  # a bug outside the engine (sysexits' EX_SOFTWARE); nothing was changed
    INTERRUPTED = 130  # SIGINT (Ctrl-C) before anything was changed
    TERMINATED = 143  # SIGTERM before anything was changed


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class ConfigError(PipelineError):
    """The configuration is invalid; the message names the key path."""


class InputError(PipelineError):
    """A file, flag or repository state cannot be used; nothing was touched."""


class CommandNotFound(InputError):
    """An executable the pipeline needs is not installed."""


class CommandFailed(PipelineError):
    """A command the pipeline ran exited non-zero."""

    def __init__(self, argv: tuple[str, ...], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        detail = " / ".join(stderr.strip().splitlines()[-4:]) or "no output"
        super().__init__(f"`{' '.join(argv)}` exited {returncode}: {detail}")


class ChecklistFailed(PipelineError):
    """A pre-deployment or pre-release check failed; nothing was touched."""

    exit_code = ExitCode.CHECKLIST_FAILED

    def __init__(self, message: str, results: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.results = results


class LockHeld(PipelineError):
    """Another run holds the deploy lock."""

    exit_code = ExitCode.LOCKED


class StageError(PipelineError):
    """A step on a unit failed; the engine rolls back. ``output`` is what the failed command said."""

    exit_code = ExitCode.ROLLED_BACK

    def __init__(self, stage: str, message: str, unit: str = "", output: str = "") -> None:
        super().__init__(message)
        self.stage = stage
        self.unit = unit
        self.output = output


class DeadlineExceeded(StageError):
    """A step did not finish within its stage's deadline; it was stopped."""


class Cancelled(PipelineError):
    """A signal (SIGTERM, Ctrl-C) asked the run to stop; the engine rolls back what it touched."""

    exit_code = ExitCode.ROLLED_BACK


class ReleaseIncomplete(PipelineError):
    """A release stopped after its commit (the tag or the push failed); the message says how to finish."""

    exit_code = ExitCode.ROLLBACK_FAILED


class NotRecorded(InputError):
    """A rollback would need a database revision that no journal recorded: it refuses to guess."""


def failure_text(exc: BaseException) -> str:
    """How a failure is named in reports and journals: our errors by their message, anything else (a bug
    of ours) as an internal error with its type."""
    if isinstance(exc, PipelineError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"

"""``invoke logs``: the services' logs from every host or pod at once, each line prefixed with its source.

The flags are checked here before anything runs (``request_of``), the argv and the API query are built
here (pure), and each line is printed whole, redacted and without control characters, by one ``Printer``
that the hosts' or pods' reader threads share. ``pipeline.targets.composelogs`` and
``pipeline.targets.helmlogs`` fetch the lines. Read-only: no lock is taken, no journal line written.

Ways out: every source read (exit 0); a source that could not be read, or ended with an error, says so on
its own line and the others go on (exit 1); bad flags or configuration (exit 2, nothing run); Ctrl-C ends
a ``--follow`` cleanly (exit 0, or 1 when a source had failed), and any read without ``--follow`` (130);
SIGTERM ends either cleanly with 143. Without ``--follow`` every read has the ``deadlines.read``
deadline; with it there is none, and a signal stops every ssh and remote command, or closes every stream.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from pipeline.errors import ExitCode, InputError, PipelineError
from pipeline.terminal import printable

if TYPE_CHECKING:
    from pipeline.compose import Project
    from pipeline.config import PipelineConfig
    from pipeline.executor import Executor

DEFAULT_TAIL = 100  # lines per container without --tail, as the runbooks' `--tail=100`
MAX_TAIL = 10_000  # lines per container at most; also the tail of a --since without --tail
MAX_SINCE = 366 * 24 * 3600  # a relative --since of at most a year (in seconds)
SOME_FAILED = ExitCode.ROLLED_BACK  # exit 1: a host or pod could not be read (as `health`'s failed check)

_DURATION = re.compile(r"(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,9})s)?")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


@dataclass(frozen=True)
class Since:
    """Where a ``--since`` starts: ``seconds`` ago, or at ``time`` (RFC 3339, UTC, whole seconds)."""

    seconds: int = 0
    time: str = ""

    @property
    def compose(self) -> str:
        """As ``docker compose logs --since`` takes it (a Go duration, or an RFC 3339 time)."""
        return self.time or f"{self.seconds}s"

    @property
    def query(self) -> dict[str, str]:
        """As the Kubernetes log endpoint takes it."""
        return {"sinceTime": self.time} if self.time else {"sinceSeconds": str(self.seconds)}


@dataclass(frozen=True)
class LogRequest:
    """What ``invoke logs`` was asked for, checked."""

    service: str = ""
    tail: int = DEFAULT_TAIL
    since: Since | None = None
    follow: bool = False
    timestamps: bool = False


def parse_tail(text: str | int) -> int:
    """``--tail``: a whole number of lines from 0 (only new lines, with ``--follow``) to MAX_TAIL."""
    value = str(text).strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 6 and int(value) <= MAX_TAIL):
        shown = printable(repr(value), keep_lines=False)
        raise InputError(f"--tail must be a whole number of lines from 0 to {MAX_TAIL}, got {shown}")
    return int(value)


def parse_since(text: str, now: datetime | None = None) -> Since:
    """``--since``: a duration (``30s``, ``10m``, ``2h``, ``1h30m``) or an RFC 3339 time
    (``2026-12-01T09:30:00Z``, ``...+02:00``), as docker and kubectl take them."""
    value = text.strip()
    shown = printable(repr(value), keep_lines=False)
    duration = _DURATION.fullmatch(value)
    if value and duration:
        hours, minutes, seconds = (int(g or 0) for g in duration.groups())
        total = hours * 3600 + minutes * 60 + seconds
        if not 1 <= total <= MAX_SINCE:
            raise InputError(f"--since must be from 1s to {MAX_SINCE // 3600}h, got {shown}")
        return Since(seconds=total)
    if _TIME.fullmatch(value):
        try:
            whole = re.sub(r"\.\d+", "", value.upper()).replace("Z", "+00:00")  # 3.10 takes 3 or 6 digits
            moment = datetime.fromisoformat(whole)
        except ValueError:
            raise InputError(f"--since: {shown} is not a valid time") from None
        utc = moment.astimezone(timezone.utc)
        if utc - (now or datetime.now(timezone.utc)) > timedelta(days=1):
            raise InputError(f"--since: {shown} is in the future")
        return Since(time=utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
    raise InputError(
        f"--since must be a duration such as 30s, 10m, 2h or 1h30m, or an RFC 3339 time such as "
        f"2026-12-01T09:30:00Z, got {shown}"
    )


def request_of(
    service: str | None, tail: str | int | None, since: str | None, follow: bool, timestamps: bool = False
) -> LogRequest:
    """The checked flags; without ``--tail``, 100 lines, or with ``--since`` every line since (up to
    MAX_TAIL per container)."""
    name = (service or "").strip()
    if service is not None and not _NAME.fullmatch(name):
        shown = printable(repr(service), keep_lines=False)
        raise InputError(f"--service must be a service, container or workload name, got {shown}")
    parsed = parse_since(since) if since is not None else None
    lines = parse_tail(tail) if tail is not None else (MAX_TAIL if parsed else DEFAULT_TAIL)
    return LogRequest(name, lines, parsed, bool(follow), bool(timestamps))


# -- what runs ----------------------------------------------------------------------------------------


def compose_logs(project: Project, version: str, request: LogRequest) -> tuple[str, ...]:
    """``docker compose logs`` of a release as the request asks (compose prefixes each container)."""
    args = ["logs", "--no-color", "--tail", str(request.tail)]
    if request.since is not None:
        args += ["--since", request.since.compose]
    if request.timestamps:
        args.append("--timestamps")
    if request.follow:
        args.append("--follow")
    if request.service:
        args.append(request.service)
    return project.compose(version, *args)


def compose_services(project: Project, version: str) -> tuple[str, ...]:
    """The services of a release's compose file, one a line."""
    return project.compose(version, "config", "--services")


def kube_log_query(container: str, request: LogRequest) -> dict[str, str]:
    """The query of ``GET .../pods/NAME/log`` for one container."""
    query = {"container": container, "tailLines": str(request.tail)}
    if request.since is not None:
        query.update(request.since.query)
    if request.timestamps:
        query["timestamps"] = "true"
    if request.follow:
        query["follow"] = "true"
    return query


# -- printing ----------------------------------------------------------------------------------------


class Printer:
    """Writes each line whole, ``source | line``, redacted and printable, one writer at a time; notes
    about a source (``source: text``) go to the error stream.

    While ``held`` (a read without ``--follow``), lines are kept per source and ``release`` prints them
    source by source, as ``kubectl logs`` does for several pods; a follow prints each as it comes."""

    def __init__(
        self, out: TextIO, err: TextIO, redact: Callable[[str], str], gone: Callable[[], None] = lambda: None
    ) -> None:
        self.out, self.err, self.redact = out, err, redact
        self.gone = gone  # called once the reader of the output went away (`invoke logs | head`)
        self.closed = False
        self.width = 0
        self.lock = threading.Lock()
        self.held: dict[str, list[tuple[str, bool]]] | None = None

    def sources(self, names: list[str]) -> None:
        """Pad every prefix to the longest of these names, so the lines line up."""
        self.width = max((len(printable(n, keep_lines=False)) for n in names), default=0)

    def hold(self) -> None:
        """Keep lines per source until ``release``."""
        self.held = {}

    def release(self, order: list[str]) -> None:
        """Print the kept lines, source by source in ``order`` (then any other source), and stop keeping."""
        held, self.held = self.held or {}, None
        for source in [*order, *(s for s in held if s not in order)]:
            for text, is_err in held.get(source, []):
                self.line(source, text, is_err)

    def line(self, source: str, text: str, is_err: bool = False) -> None:
        """One log line of a source (tabs kept, every other control character escaped)."""
        safe = printable(self.redact(text.removesuffix("\r"))).replace("\n", "\\x0a")
        shown = f"{printable(source, keep_lines=False):<{self.width}} | {safe}\n"
        with self.lock:
            if self.held is not None:
                self.held.setdefault(source, []).append((text, is_err))
                return
            if self.closed:
                return
            try:
                stream = self.err if is_err else self.out
                stream.write(shown)
                stream.flush()
            except BrokenPipeError:
                self.closed = True
                self.gone()

    def note(self, source: str, text: str) -> None:
        """What happened to a source (unreachable, nothing deployed, stopped at its deadline), or to
        the whole run without one."""
        safe = printable(self.redact(text), keep_lines=False)
        shown = f"{printable(source, keep_lines=False)}: {safe}\n" if source else f"{safe}\n"
        with self.lock, contextlib.suppress(BrokenPipeError):
            self.err.write(shown)
            self.err.flush()


class Stop:
    """Set by SIGINT or SIGTERM (the handler only records it); every reader looks at it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0

    def handler(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: remember the first signal, wake whoever waits."""
        self.signum = self.signum or signum
        self.event.set()

    def reader_gone(self) -> None:
        """The output's reader went away: stop as for a signal, quietly."""
        self.event.set()

    def is_set(self) -> bool:
        """Whether a signal asked to stop."""
        return self.event.is_set()


def outcome(failed: bool, stop: Stop, follow: bool) -> tuple[int, str]:
    """The exit code and the closing line (empty: none)."""
    if stop.signum == signal.SIGTERM:
        return int(ExitCode.TERMINATED), "logs: stopped by SIGTERM"
    if stop.signum == signal.SIGINT and not follow:
        return int(ExitCode.INTERRUPTED), "logs: interrupted by SIGINT before every log was read"
    code = int(SOME_FAILED) if failed else int(ExitCode.OK)
    if stop.signum == signal.SIGINT:
        return code, "logs: stopped following (Ctrl-C)"
    return code, ""


def show_logs(
    config: PipelineConfig,
    name: str,
    executor: Executor,
    request: LogRequest,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the logs an environment's hosts or pods have, as asked; the exit code (see the module)."""
    from pipeline import interrupts
    from pipeline.helmconfig import HelmEnvironment
    from pipeline.secrets import redactor_for

    env = config.environment(name)
    redactor = redactor_for(env, os.environ)
    stop = Stop()
    printer = Printer(out or sys.stdout, err or sys.stderr, redactor.redact, stop.reader_gone)
    try:
        with interrupts.handling(stop.handler):
            if isinstance(env, HelmEnvironment):
                from pipeline.targets import helmlogs

                failed = helmlogs.show(env, f"pipeline.environments.{name}", executor, request, printer, stop)
            else:
                from pipeline.targets import composelogs

                failed = composelogs.show(env, executor, request, printer, stop)
    except PipelineError as exc:
        redactor.redact_error(exc)
        raise
    if printer.closed and out is None:
        # What is still buffered would fail again at exit, with a traceback-like warning.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code, last = outcome(failed, stop, request.follow)
    if last:
        printer.note("", last)
    return code

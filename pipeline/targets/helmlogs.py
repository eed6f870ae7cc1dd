"""``invoke logs`` on a Helm release: every container of the pods of the release's workloads, at once.

The workloads are those the release's newest revision rendered (``helm get manifest``: what runs now),
their pods those each workload's selector finds. Each container's log is one stream from the API
server's log endpoint (``tailLines``, ``sinceSeconds``/``sinceTime``, ``follow=true``), read by a thread
of its own; ``show`` waits for them all, for the ``deadlines.read`` deadline without ``--follow``, or for
a signal, then shuts every stream that is still open.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from pipeline.errors import InputError
from pipeline.executor import Command, Executor, Lines
from pipeline.helm import Workload, workloads
from pipeline.helmconfig import HelmEnvironment
from pipeline.kube import Kube, KubeError
from pipeline.logs import LogRequest, Printer, Stop, kube_log_query

CONNECT_SECONDS = 10.0  # to open one stream (the API server answers its headers at once)
JOIN_SECONDS = 2.0  # how long a shut stream's reader is waited for
POLL = 0.1


@dataclass(frozen=True)
class Source:
    """One container of one pod of a workload."""

    workload: str
    pod: str
    container: str

    @property
    def name(self) -> str:
        """``pod/container``, as each of its lines is prefixed."""
        return f"{self.pod}/{self.container}"


@dataclass
class Stream:
    """An open log stream and its reader; ``error`` says why it ended early, if it did."""

    source: Source
    response: Any
    thread: threading.Thread | None = None
    error: str = ""
    shut: bool = False


def selector_of(workload: Workload, obj: dict[str, Any]) -> str:
    """The label selector of a workload's pods (a Job's: its ``job-name``)."""
    if workload.kind == "Job":
        return f"job-name={workload.name}"
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def sources_of(kube: Kube, found: list[Workload], seconds: float) -> list[Source]:
    """Every app container of every pod of each workload (a pod counted once)."""
    sources: list[Source] = []
    seen: set[str] = set()
    for workload in found:
        obj = kube.get(workload.kind.lower(), workload.name, seconds)
        selector = selector_of(workload, obj or {})
        if obj is None or not selector:
            continue
        for pod in sorted(kube.select("pod", seconds, selector=selector), key=_pod_name):
            name = _pod_name(pod)
            if name in seen:
                continue
            seen.add(name)
            for container in (pod.get("spec") or {}).get("containers") or []:
                sources.append(Source(workload.name, name, str(container.get("name", ""))))
    return sources


def _pod_name(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def chosen(sources: list[Source], found: list[Workload], service: str) -> list[Source]:
    """The sources of ``--service``: a workload's, else a container's; InputError naming both kinds."""
    if not service:
        return sources
    if any(w.name == service for w in found):
        return [s for s in sources if s.workload == service]
    containers = {
        str(c.get("name", "")) for w in found for c in (w.template.get("spec") or {}).get("containers") or []
    } | {s.container for s in sources}
    if service in containers:
        return [s for s in sources if s.container == service]
    raise InputError(
        f"--service {service}: no such workload or container; the workloads are "
        f"{', '.join(sorted(w.name for w in found)) or 'none'}, the containers "
        f"{', '.join(sorted(containers)) or 'none'}"
    )


def release_workloads(env: HelmEnvironment, target: Any, seconds: float, stop: Stop) -> list[Workload] | None:
    """The workloads the newest revision rendered; None when the release has no revision."""
    history = target.history(seconds)
    if not history:
        return None
    argv = target.helm.manifest(history[-1].revision)
    result = target.executor.run(Command(argv, timeout=seconds, interrupt=stop.is_set))
    if result.interrupted:
        return []
    if not result.ok:
        words = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"{target.name}: helm get manifest exited {result.returncode}: {words}")
    return workloads(result.stdout, env.namespace)


def pump(stream: Stream, printer: Printer) -> None:
    """Print a stream's lines as they come, until it ends or is shut."""
    lines = Lines()
    try:
        for chunk in stream.response.stream(65536):
            for line in lines.feed(chunk):
                printer.line(stream.source.name, line)
    except Exception as exc:  # urllib3's and the socket's errors alike: the stream broke, or was shut
        if not stream.shut:
            stream.error = f"the log stream broke: {type(exc).__name__}: {exc}"
    finally:
        for line in lines.end():
            printer.line(stream.source.name, line)
        stream.response.close()


def shut(stream: Stream) -> None:
    """Stop reading a stream: its socket is shut down, which wakes its reader."""
    stream.shut = True
    closing = getattr(stream.response, "shutdown", None) or stream.response.close
    with contextlib.suppress(OSError, AttributeError):
        closing()


def open_streams(
    kube: Kube, sources: list[Source], request: LogRequest, seconds: float, printer: Printer, stop: Stop
) -> tuple[list[Stream], bool]:
    """A stream per source, each read by a thread; a source that cannot be opened is noted."""
    streams, failed = [], False
    read_timeout = None if request.follow else seconds
    for source in sources:
        if stop.is_set():
            break
        query = kube_log_query(source.container, request)
        try:
            response = kube.open_log(source.pod, query, (min(CONNECT_SECONDS, seconds), read_timeout))
        except KubeError as exc:
            printer.note(source.name, f"the log cannot be read: {exc}")
            failed = True
            continue
        stream = Stream(source, response)
        stream.thread = threading.Thread(target=pump, args=(stream, printer), daemon=True,
                                         name=f"pipeline-log-{source.name}")  # fmt: skip
        stream.thread.start()
        streams.append(stream)
    return streams, failed


def wait(streams: list[Stream], request: LogRequest, seconds: float, printer: Printer, stop: Stop) -> bool:
    """Until every stream ended, the deadline (without ``--follow``) or a signal; whether one failed."""
    end = None if request.follow else time.monotonic() + seconds
    late = False
    while any(s.thread is not None and s.thread.is_alive() for s in streams):
        late = end is not None and time.monotonic() >= end
        if stop.is_set() or late:
            break
        stop.event.wait(POLL)
    open_ones = [s for s in streams if s.thread is not None and s.thread.is_alive()]
    for stream in open_ones:
        shut(stream)
    for stream in open_ones:
        assert stream.thread is not None
        stream.thread.join(JOIN_SECONDS)
    failed = False
    for stream in streams:
        if stream in open_ones and late:
            printer.note(stream.source.name, f"the log did not end within {seconds:g} s (deadlines.read)")
            failed = True
        elif stream.error:
            printer.note(stream.source.name, stream.error)
            failed = True
        elif request.follow and stream not in open_ones:
            printer.note(stream.source.name, "the log ended (the container stopped, or its pod went)")
    return failed


def show(
    env: HelmEnvironment, key: str, executor: Executor, request: LogRequest, printer: Printer, stop: Stop
) -> bool:
    """Print the logs of every container of the release as asked; whether a source failed."""
    from pipeline.http import UrllibClient
    from pipeline.targets.helm import HelmTarget

    seconds = env.deadlines.read
    with HelmTarget.connect(env, executor, UrllibClient(), key=key) as target:
        found = release_workloads(env, target, seconds, stop)
        if found is None:
            printer.note(target.name, "nothing deployed (helm has no revision of the release)")
            return False
        try:
            sources = chosen(sources_of(target.kube, found, seconds), found, request.service)
        except KubeError as exc:
            printer.note(target.name, f"the cluster cannot be read: {exc}")
            return True
        if not sources and not stop.is_set():
            printer.note(target.name, "no pods (the release's workloads have none now)")
            return False
        printer.sources([s.name for s in sources])
        if not request.follow:
            printer.hold()
        try:
            streams, failed = open_streams(target.kube, sources, request, seconds, printer, stop)
            return wait(streams, request, seconds, printer, stop) or failed
        finally:
            printer.release([s.name for s in sources])

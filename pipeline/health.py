"""Health checks: HTTP from the runner, a command in a service, compose's container health.

Each check is retried under a tenacity policy built from its configuration (interval, attempts,
deadline); sleeping is injected so that tests never sleep.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline.compose import Container, Project, shell_command
from pipeline.environments import HealthCheckConfig
from pipeline.errors import PipelineError
from pipeline.http import HttpClient, HttpError
from pipeline.remote import Remote

Sleep = Callable[[float], None]
BODY_LINES = 20


@dataclass(frozen=True)
class HealthResult:
    """The verdict of one check on one host: the last try's evidence, and how many tries it took."""

    check: str
    host: str
    ok: bool
    detail: str
    attempts: int = 1
    seconds: float = 0.0
    status: int | None = None
    body: str = ""
    containers: tuple[Container, ...] = ()


def describe(check: HealthCheckConfig) -> str:
    """How a check is named in plans and reports."""
    if check.kind == "http":
        return f"http {check.http}"
    if check.kind == "command":
        return f"command in {check.service}: {check.command}"
    return "compose: every container running, healthy where it has a healthcheck"


def url_for(check: HealthCheckConfig, host: str) -> str:
    """The URL of an HTTP check for a host: ``{host}`` stands for the host's name."""
    return check.http.replace("{host}", f"[{host}]" if ":" in host else host)


def probe_http(
    check: HealthCheckConfig, url: str, version: str, http: HttpClient
) -> tuple[bool, str, int | None, str]:
    """One try of an HTTP check: (ok, why, status, first lines of the body)."""
    try:
        response = http.request("GET", url, timeout=check.timeout)
    except HttpError as exc:
        return False, str(exc), None, ""
    ok, why, shown = judge_response(check, response.status, response.body, version)
    return ok, why, response.status, shown


def judge_response(check: Any, status: int, body: str, version: str) -> tuple[bool, str, str]:
    """Whether an answer passes a check's ``status``, ``contains`` and ``expect_version``: (ok, why,
    the body's first lines). ``check`` is a compose or a Helm health check."""
    shown = "\n".join(body.splitlines()[:BODY_LINES])
    if status != check.status:
        return False, f"answered {status}, expected {check.status}", shown
    if check.contains and check.contains not in body:
        return False, f"the body does not contain {check.contains!r}", shown
    if check.expect_version and not mentions_version(body, version):
        return False, f"the body does not report version {version}", shown
    return True, f"answered {status}", shown


def mentions_version(body: str, version: str) -> bool:
    """Whether a response reports exactly ``version``: a JSON ``version`` field equal to it, else the
    version as a whole word (``1.0.0`` is not in ``1.0.0-rc.1``, ``2.0.0`` is not in ``12.0.0``)."""
    import json

    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and "version" in data:
        return str(data["version"]).strip().removeprefix("v") == version
    word = re.escape(version)
    return re.search(rf"(?<![0-9A-Za-z.+-])v?{word}(?![0-9A-Za-z.+-])", body) is not None


def probe_command(
    check: HealthCheckConfig, remote: Remote, project: Project, version: str
) -> tuple[bool, str]:
    """One try of a command check, run in its service over ssh."""
    argv = project.in_service(version, check.service, shell_command(check.command), "exec")
    result = remote.run(argv, timeout=check.timeout)
    last = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
    if result.ok:
        return True, f"exited 0 {last[0]}".strip()
    return False, f"exited {result.returncode}: {last[0]}".strip()


def probe_compose(
    remote: Remote, project: Project, timeout: float
) -> tuple[bool, str, tuple[Container, ...]]:
    """One try of the compose check: container states read through the docker SDK over ssh://."""
    try:
        containers = tuple(_containers(remote, project.name, timeout))
    except PipelineError as exc:
        return False, str(exc), ()
    if not containers:
        return False, "no containers", ()
    bad = [c for c in containers if not c.ok]
    if bad:
        return (
            False,
            "; ".join(f"{c.service}: {c.state} {c.health}".strip() for c in bad),
            containers,
        )
    return True, f"{len(containers)} container(s) running", containers


def _containers(remote: Remote, project: str, timeout: float) -> list[Container]:
    """Ask the host's engine through the docker SDK, whose ssh transport uses our ssh options."""
    import docker  # heavy: only here
    from docker.errors import DockerException

    host = remote.host
    where = f"{host.user + '@' if host.user else ''}{host.name}{f':{host.port}' if host.port else ''}"
    with _ssh_on_path(remote):
        try:
            client = docker.DockerClient(
                base_url=f"ssh://{where}", use_ssh_client=True, timeout=int(timeout) or 1
            )
            try:
                found = client.containers.list(
                    all=True, filters={"label": f"com.docker.compose.project={project}"}
                )
                return [_container(c.attrs) for c in found]
            finally:
                client.close()
        except (DockerException, OSError) as exc:
            raise PipelineError(f"docker over ssh://{host.name}: {exc}") from None


def _container(attrs: dict[str, Any]) -> Container:
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    health = state.get("Health") or {}
    return Container(
        service=str(labels.get("com.docker.compose.service", "")),
        state=str(state.get("Status", "")),
        health=str(health.get("Status", "")),
        status=str(state.get("Status", "")),
    )


_PATH_GUARD = threading.Lock()  # PATH is the process's: one host's docker client at a time


class _ssh_on_path:
    """Puts an ``ssh`` wrapper with the run's options first on PATH while the SDK connects."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.directory = os.path.join(remote.options.control_dir, "bin")
        self.saved = ""

    def __enter__(self) -> None:
        # Held until __exit__ restores PATH: a second host's wrapper must never find this one as
        # its "real" ssh (it would run itself forever).
        _PATH_GUARD.acquire()
        self.saved = os.environ.get("PATH", "")
        real = shutil.which("ssh", path=self.saved) or "/usr/bin/ssh"
        os.makedirs(self.directory, exist_ok=True)
        wrapper = os.path.join(self.directory, "ssh")
        options = shlex.join([real, *self.remote.options.client_args()])
        with open(wrapper, "w", encoding="utf-8") as handle:
            handle.write(f'#!/bin/sh\nexec {options} "$@"\n')
        os.chmod(wrapper, 0o700)
        os.environ["PATH"] = f"{self.directory}{os.pathsep}{self.saved}"

    def __exit__(self, *exc: object) -> None:
        os.environ["PATH"] = self.saved
        _PATH_GUARD.release()


def run_check(
    check: HealthCheckConfig,
    one_try: Callable[[], HealthResult],
    sleep: Sleep = time.sleep,
) -> HealthResult:
    """Retry a check until it passes or its policy gives up; the last try's evidence is kept."""
    from tenacity import Retrying, retry_if_result, stop_after_attempt, stop_after_delay, wait_fixed

    start = time.monotonic()
    attempts = 0

    def attempt() -> HealthResult:
        nonlocal attempts
        attempts += 1
        return one_try()

    retrying = Retrying(
        stop=stop_after_attempt(check.attempts) | stop_after_delay(check.deadline),
        wait=wait_fixed(check.interval),
        retry=retry_if_result(lambda r: not r.ok),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=sleep,
        reraise=True,
    )
    result: HealthResult = retrying(attempt)
    return HealthResult(
        **{**result.__dict__, "attempts": attempts, "seconds": round(time.monotonic() - start, 3)}
    )


def check_host(
    checks: Sequence[HealthCheckConfig],
    remote: Remote,
    project: Project,
    version: str,
    http: HttpClient,
    sleep: Sleep = time.sleep,
) -> list[HealthResult]:
    """Every check on one host, in order (HTTP checks without ``{host}`` are left to the caller)."""
    results: list[HealthResult] = []
    for check in checks:
        one_try = partial(_probe, check, remote, project, version, http)
        results.append(run_check(check, one_try, sleep))
        if not results[-1].ok:
            break  # the release is failing: the other checks would only delay the rollback
    return results


def _probe(
    check: HealthCheckConfig, remote: Remote, project: Project, version: str, http: HttpClient
) -> HealthResult:
    """One try of any kind of check on one host."""
    host = remote.host.label
    if check.kind == "http":
        url = url_for(check, remote.host.name)
        ok, why, status, body = probe_http(check, url, version, http)
        return HealthResult(f"http {url}", host, ok, why, status=status, body=body)
    if check.kind == "command":
        ok, why = probe_command(check, remote, project, version)
        return HealthResult(describe(check), host, ok, why)
    ok, why, containers = probe_compose(remote, project, check.timeout)
    return HealthResult(describe(check), host, ok, why, containers=containers)

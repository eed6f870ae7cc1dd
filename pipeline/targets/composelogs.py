"""``invoke logs`` on compose hosts: ``docker compose logs`` of the release each host serves, all at once.

Each host's journal says which release it serves (as ``status`` reads it); its ``docker compose logs``
runs over the host's ssh connection with its output streamed line by line through the ``Printer``.
Without ``--follow`` the remote command runs under the remote guard with the ``deadlines.read``
deadline; with it, under the same guard without a deadline: when the local ssh client ends (a signal
stops it), the host sees its stdin close and stops ``docker compose logs`` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pipeline.environments import ComposeEnvironment
from pipeline.errors import InputError
from pipeline.executor import TIMED_OUT, Command, Executor, Result
from pipeline.logs import LogRequest, Printer, Stop, compose_logs, compose_services
from pipeline.remote import GUARD_NAME, GUARD_SCRIPT, ssh_argv
from pipeline.targets import hostfiles
from pipeline.targets.compose import ComposeTarget, Host


def following(argv: Sequence[str]) -> tuple[str, ...]:
    """The remote guard without a deadline (``timeout 0``): ``argv`` ends when the session's stdin does."""
    return ("sh", "-c", GUARD_SCRIPT, GUARD_NAME, "0", *argv)


RETAIN = 65536  # bytes of a host's output kept for its error line; the rest is only printed


def command(host: Host, argv: Sequence[str], seconds: float | None, stop: Stop, printer: Printer) -> Command:
    """The local ssh Command running ``argv`` on the host, its lines printed as they come."""

    def echo(line: str, is_err: bool) -> None:
        printer.line(host.name, line, is_err)

    remote = host.remote
    if seconds is None:
        argv = ssh_argv(remote.host, following(argv), remote.options)
        plain = Command(argv, shield=True, interrupt=stop.is_set, keep_stdin_open=True)
        return replace(plain, echo=echo, retain=RETAIN)
    return replace(remote.command(argv, timeout=seconds, interrupt=stop.is_set), echo=echo, retain=RETAIN)


def failure(host: Host, result: Result, seconds: float | None, what: str) -> str | None:
    """Why a host's command did not give what was asked, in one line; None when it did."""
    if result.interrupted or result.ok:
        return None
    words = (result.stderr.strip().splitlines() or ["no output"])[-1]
    if result.returncode == TIMED_OUT and seconds is not None:
        return f"{what} did not finish within {seconds:g} s (deadlines.read); stopped there"
    if host.remote.unreachable(result):
        return f"unreachable over ssh: {words}"
    return f"{what} exited {result.returncode}: {words}"


def serving(
    hosts: Sequence[Host], env: ComposeEnvironment, stop: Stop, printer: Printer
) -> tuple[dict[str, str], bool]:
    """The version each host serves, by its journal; hosts that cannot say are noted. Whether one failed."""
    seconds = env.deadlines.read
    git = env.source == "git"
    commands = [
        h.remote.command(hostfiles.read_state(h.files, h.project.path, git), timeout=seconds,
                         interrupt=stop.is_set)
        for h in hosts
    ]  # fmt: skip
    results = hosts[0].remote.executor.run_all(commands) if hosts else []
    versions: dict[str, str] = {}
    failed = False
    for host, result in zip(hosts, results, strict=True):
        if result.interrupted:
            continue
        if host.remote.unreachable(result) or result.returncode == TIMED_OUT:
            printer.note(host.name, failure(host, result, seconds, "reading the journal") or "unreachable")
            failed = True
            continue
        state = hostfiles.parse_state(host.name, result.returncode, result.stdout, result.stderr)
        if state.damaged:
            printer.note(host.name, f"the journal cannot be read ({state.damaged})")
            failed = True
        elif state.serving is None:
            printer.note(host.name, "nothing deployed (its journal records no release healthy here)")
        else:
            versions[host.name] = state.serving.version
    return versions, failed


def with_service(
    hosts: dict[str, Host],
    versions: dict[str, str],
    service: str,
    seconds: float,
    stop: Stop,
    printer: Printer,
) -> tuple[dict[str, str], bool]:
    """The hosts whose release has ``service``; InputError naming the known services when none has."""
    names = list(versions)
    commands = [
        hosts[n].remote.command(compose_services(hosts[n].project, versions[n]), timeout=seconds,
                                interrupt=stop.is_set)
        for n in names
    ]  # fmt: skip
    results = hosts[names[0]].remote.executor.run_all(commands) if names else []
    known: set[str] = set()
    having: dict[str, str] = {}
    failed = False
    for name, result in zip(names, results, strict=True):
        why = failure(hosts[name], result, seconds, "docker compose config")
        if why or result.interrupted:
            if why:
                printer.note(name, why)
                failed = True
            continue
        services = {line.strip() for line in result.stdout.splitlines() if line.strip()}
        known |= services
        if service in services:
            having[name] = versions[name]
        else:
            printer.note(name, f"its release {versions[name]} has no service {service}")
    if not having and known and not stop.is_set():
        raise InputError(f"--service {service}: no such service; the services are {', '.join(sorted(known))}")
    return having, failed


def show(
    env: ComposeEnvironment, executor: Executor, request: LogRequest, printer: Printer, stop: Stop
) -> bool:
    """Print the logs of every host of the environment as asked; whether a host failed."""
    from pipeline.http import UrllibClient

    with ComposeTarget.connect(env, executor, UrllibClient(), redactor=None) as target:
        hosts = target.hosts
        printer.sources(list(hosts))
        versions, failed = serving(list(hosts.values()), env, stop, printer)
        seconds = env.deadlines.read
        if request.service and versions and not stop.is_set():
            versions, missing = with_service(hosts, versions, request.service, seconds, stop, printer)
            failed = failed or missing
        if stop.is_set() or not versions:
            return failed
        deadline = None if request.follow else seconds
        runs = [(hosts[n], compose_logs(hosts[n].project, v, request)) for n, v in versions.items()]
        if not request.follow:
            printer.hold()
        try:
            results = executor.run_all(command(h, argv, deadline, stop, printer) for h, argv in runs)
        finally:
            printer.release(list(hosts))
        for (host, _), result in zip(runs, results, strict=True):
            why = failure(host, result, deadline, "docker compose logs")
            if why:
                printer.note(host.name, why)
                failed = True
            elif request.follow and not result.interrupted:
                printer.note(host.name, "the logs ended (its containers stopped)")
        return failed

"""Servers over OpenSSH: hosts, the ssh argv that carries a remote argv, and a runner per host.

Remote commands are argv tuples; ``shlex.join`` quotes them into the one string ssh sends, so no
value from configuration ever reaches a remote shell unquoted.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.environments import HostConfig, SshConfig
from pipeline.executor import Command, Executor, Result

# ssh exits 255 when it could not connect or authenticate (the remote command never ran).
SSH_FAILED = 255

# How long past its deadline a guarded command gets between SIGTERM and SIGKILL on the host.
KILL_AFTER = 5
# The local backstop beyond a guarded command's deadline: the host's own deadline and its SIGKILL
# come first, then the keepalives notice a dead link (3 x 5 s); only a wedged client is left for it.
LOCAL_GRACE = 20.0
# Runs "$@" under `timeout` on the host and kills it when the session's stdin reaches EOF: the ssh
# client was killed or the link dropped, and sshd closes the command's stdin then but signals nothing.
# The argv only ever arrives as positional parameters, never inside the script text. An asynchronous
# list gets /dev/null for stdin in a non-interactive sh, hence the session's stdin duplicated to fd 3
# first; the watcher reads it with the `read` builtin so that killing the watcher leaves no reader
# behind, and sends its own output to /dev/null so that it never holds the session's output open.
GUARD_SCRIPT = (
    "s=$1; shift; exec 3<&0; "
    f'timeout -k {KILL_AFTER} "$s" "$@" </dev/null 3<&- & c=$!; '
    '{ while read -r _; do :; done; kill -TERM "$c"; } <&3 >/dev/null 2>&1 & w=$!; '
    'exec 3<&-; wait "$c"; r=$?; kill "$w" 2>/dev/null; exit "$r"'
)
GUARD_NAME = "pl-guard"


@dataclass(frozen=True)
class Host:
    """A server as ssh sees it, and where the app lives on it."""

    name: str
    user: str | None
    port: int | None
    path: str

    @property
    def label(self) -> str:
        """How reports name the host."""
        return self.name


def parse_host(config: HostConfig) -> Host:
    """``[user@]host[:port]`` (already validated) into a Host."""
    user, _, rest = config.address.rpartition("@")
    port = None
    if rest.startswith("["):
        name, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") else None
    elif ":" in rest:
        name, _, number = rest.partition(":")
        port = int(number)
    else:
        name = rest
    return Host(name=name, user=user or None, port=port, path=config.path)


@dataclass(frozen=True)
class SshOptions:
    """Client options for every connection of a run; ``control_dir`` holds the master sockets."""

    control_dir: str
    identity_file: str = ""
    known_hosts: str = ""
    config_file: str = ""
    strict: bool = True
    connect_timeout: int = 10
    control_persist: int = 60
    keepalive: int = 5

    @classmethod
    def from_config(cls, config: SshConfig, control_dir: str) -> SshOptions:
        """Options from the environment's ``ssh`` section."""
        return cls(
            control_dir=control_dir,
            identity_file=config.identity_file,
            known_hosts=config.known_hosts,
            config_file=config.config_file,
            strict=config.strict_host_key_checking,
            connect_timeout=config.connect_timeout,
            control_persist=config.control_persist,
            # The config key is newer than this code may be run with: a config without it means 5 s.
            keepalive=int(getattr(config, "keepalive", 5)),
        )

    def client_args(self) -> tuple[str, ...]:
        """The ``ssh`` options, before the destination."""
        args: list[str] = []
        if self.config_file:
            args += ["-F", self.config_file]
        args += [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", f"StrictHostKeyChecking={'yes' if self.strict else 'accept-new'}",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self.control_dir}/%C",
            "-o", f"ControlPersist={self.control_persist}",
            # A dead link is noticed after three unanswered keepalives, not at the TCP timeout (hours).
            "-o", f"ServerAliveInterval={self.keepalive}",
            "-o", "ServerAliveCountMax=3",
        ]  # fmt: skip
        if self.identity_file:
            args += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        return tuple(args)


def ssh_argv(host: Host, remote: Sequence[str], options: SshOptions) -> tuple[str, ...]:
    """The local argv that runs ``remote`` on ``host``."""
    args = ["ssh", *options.client_args()]
    if host.port:
        args += ["-p", str(host.port)]
    if host.user:
        args += ["-l", host.user]
    return (*args, "--", host.name, shlex.join(remote))


def guarded(argv: Sequence[str], seconds: float, watch_stdin: bool) -> tuple[str, ...]:
    """The remote argv that ends ``argv`` on the host after ``seconds``, and at stdin EOF if watched."""
    if not argv:
        raise ValueError("a guarded command needs a program to run")
    # `timeout 0` means no deadline at all, and it takes whole seconds portably.
    whole = str(max(1, math.ceil(seconds)))
    if not watch_stdin:
        return ("timeout", "-k", str(KILL_AFTER), whole, *argv)
    return ("sh", "-c", GUARD_SCRIPT, GUARD_NAME, whole, *argv)


def unguard(argv: Sequence[str]) -> tuple[float | None, tuple[str, ...]]:
    """The deadline and original argv of a ``guarded`` argv; ``(None, argv)`` for any other."""
    argv = tuple(argv)
    if len(argv) >= 5 and argv[:3] == ("timeout", "-k", str(KILL_AFTER)) and argv[3].isdigit():
        return float(argv[3]), argv[4:]
    if len(argv) >= 6 and argv[:4] == ("sh", "-c", GUARD_SCRIPT, GUARD_NAME) and argv[4].isdigit():
        return float(argv[4]), argv[5:]
    return None, argv


def close_master(host: Host, options: SshOptions) -> tuple[str, ...]:
    """Stop the connection master of a host, so nothing outlives the run."""
    args = ["ssh", *options.client_args(), "-O", "exit"]
    if host.port:
        args += ["-p", str(host.port)]
    if host.user:
        args += ["-l", host.user]
    return (*args, host.name)


@dataclass(frozen=True)
class Remote:
    """Runs argv on one host through the executor seam."""

    host: Host
    options: SshOptions
    executor: Executor

    def command(
        self,
        argv: Sequence[str],
        stdin: str | None = None,
        timeout: float | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> Command:
        """The local Command that runs ``argv`` on the host; ``timeout`` is enforced on the host too."""
        if timeout is None:
            plain = ssh_argv(self.host, argv, self.options)
            return Command(plain, stdin=stdin, shield=True, interrupt=interrupt)
        # Killing the local client alone would leave the command running on the host: the host keeps
        # the deadline itself and, without input to send, the open stdin's EOF says the client is gone.
        watch = stdin is None
        return Command(
            ssh_argv(self.host, guarded(argv, timeout, watch_stdin=watch), self.options),
            stdin=stdin,
            timeout=timeout + LOCAL_GRACE,
            shield=True,
            interrupt=interrupt,
            keep_stdin_open=watch,
        )

    def run(
        self,
        argv: Sequence[str],
        stdin: str | None = None,
        timeout: float | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> Result:
        """Run ``argv`` on the host and capture its output."""
        return self.executor.run(self.command(argv, stdin, timeout, interrupt))

    def unreachable(self, result: Result) -> bool:
        """Whether a failure was ssh's own (no connection), not the remote command's."""
        return result.returncode == SSH_FAILED

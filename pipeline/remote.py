"""Servers over OpenSSH: hosts, the ssh argv that carries a remote argv, and a runner per host.

Remote commands are argv tuples; ``shlex.join`` quotes them into the one string ssh sends, so no
value from configuration ever reaches a remote shell unquoted.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.environments import HostConfig, SshConfig
from pipeline.executor import Command, Executor, Result

# ssh exits 255 when it could not connect or authenticate (the remote command never ran).
SSH_FAILED = 255


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

    @property
    def state_dir(self) -> str:
        """Where the pipeline keeps its journal and lock on the host."""
        return f"{self.path}/.pipeline"

    @property
    def journal(self) -> str:
        """The JSON Lines journal of deploys and rollbacks."""
        return f"{self.state_dir}/journal.jsonl"

    @property
    def lock(self) -> str:
        """The lock directory (``mkdir`` is atomic)."""
        return f"{self.state_dir}/lock"


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

    def command(self, argv: Sequence[str], stdin: str | None = None, timeout: float | None = None) -> Command:
        """The local Command that runs ``argv`` on the host."""
        return Command(ssh_argv(self.host, argv, self.options), stdin=stdin, timeout=timeout, shield=True)

    def run(self, argv: Sequence[str], stdin: str | None = None, timeout: float | None = None) -> Result:
        """Run ``argv`` on the host and capture its output."""
        return self.executor.run(self.command(argv, stdin, timeout))

    def unreachable(self, result: Result) -> bool:
        """Whether a failure was ssh's own (no connection), not the remote command's."""
        return result.returncode == SSH_FAILED

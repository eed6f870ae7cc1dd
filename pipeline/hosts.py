"""A deploy's view of its hosts: what they had before (journal, checkout, lock) and the plan's data."""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pipeline import compose as cmd
from pipeline.compose import Project
from pipeline.environments import ComposeEnvironment
from pipeline.errors import InputError, LockHeld
from pipeline.executor import Command, Executor
from pipeline.journal import Entry, last_serving, parse_journal
from pipeline.remote import Remote, SshOptions, close_master, parse_host


@dataclass(frozen=True)
class Release:
    """What to deploy: a version, the commit it is (git source), its compose file (image source)."""

    version: str
    commit: str | None
    compose_text: str = ""


@dataclass(frozen=True)
class Step:
    """One remote command of a plan."""

    stage: str
    host: str
    argv: tuple[str, ...]
    stdin: str | None = None

    def render(self) -> str:
        """``[host] command`` as the plan prints it."""
        fed = "  < (stdin)" if self.stdin is not None else ""
        return f"[{self.host}] {shlex.join(self.argv)}{fed}"


@dataclass
class HostRun:
    """A host during a run: how to reach it, and what it had before."""

    remote: Remote
    project: Project
    journal: list[Entry] = field(default_factory=list)
    commit: str | None = None
    locked: bool = False
    touched: bool = False
    target: Entry | None = None  # set by `invoke rollback`: the release to go back to
    lock_info: str = ""  # who holds the host's deploy lock, as read before the run

    @property
    def name(self) -> str:
        """The host's name in plans and reports."""
        return self.remote.host.label

    @property
    def previous(self) -> Entry | None:
        """The rollback target: the one named, else the release this host last served healthy."""
        return self.target or last_serving(self.journal)


def read_hosts(hosts: Sequence[HostRun], source: str) -> None:
    """Read-only, one round trip per host: journal, checkout commit and lock holder.

    An unreachable host is an input error (nothing was touched).
    """
    for run in hosts:
        host = run.remote.host
        argvs = [cmd.read_file(host.journal), cmd.read_file(f"{host.lock}/info.json")]
        if source == "git":
            argvs.append(cmd.git_current(host.path))
        results = run.remote.executor.run_all(run.remote.command(a) for a in argvs)
        for result in results:
            if run.remote.unreachable(result):
                detail = result.stderr.strip().splitlines()[-1:] or ["no answer"]
                raise InputError(f"host {host.name} is unreachable over ssh: {detail[0]}")
        run.journal = parse_journal(results[0].stdout)
        run.lock_info = results[1].stdout.strip()
        if source == "git" and results[2].ok:
            run.commit = results[2].stdout.strip() or None


def refuse_held_locks(hosts: Sequence[HostRun]) -> None:
    """Exit 5 before anything changes when another run holds a host's lock."""
    for run in hosts:
        if run.lock_info:
            raise LockHeld(f"{run.name}: a deploy holds the lock: {lock_holder(run.lock_info)}")


@contextmanager
def connections(env: ComposeEnvironment, executor: Executor) -> Iterator[list[HostRun]]:
    """The environment's hosts sharing a ControlMaster directory; every master is stopped at the end."""
    control_dir = tempfile.mkdtemp(prefix="pl-", dir="/tmp")  # socket paths must stay short
    options = SshOptions.from_config(env.ssh, control_dir)
    remotes = [Remote(parse_host(h), options, executor) for h in env.host_list()]
    try:
        yield [HostRun(r, Project.of(env, r.host.path)) for r in remotes]
    finally:
        executor.run_all(Command(close_master(r.host, options)) for r in remotes)
        shutil.rmtree(control_dir, ignore_errors=True)


def lock_holder(info: str) -> str:
    try:
        data = json.loads(info)
    except json.JSONDecodeError:
        return info.strip()[:200]
    return f"{data.get('who', '?')} since {data.get('at', '?')} ({data.get('version', '?')})"

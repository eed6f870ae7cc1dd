"""The compose target: a unit is a host reached over ssh, running the release with ``docker compose``.

Commands are built by ``pipeline.compose`` (pure argv) and ``hostfiles`` below; this module only says
which run for each operation, and runs them through the host's ``Remote`` under the stage's deadline.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace

from pipeline import compose as cmd
from pipeline.compose import Project, parse_revision, shell_command
from pipeline.engine.cancel import Call
from pipeline.engine.values import LockInfo, Policy, Release, UnitState, parse_lock
from pipeline.environments import ComposeEnvironment
from pipeline.errors import Cancelled, DeadlineExceeded, InputError, StageError
from pipeline.executor import TIMED_OUT, Command, Executor, Result
from pipeline.health import HealthResult, Sleep, check_host, describe
from pipeline.http import HttpClient
from pipeline.journal import BASE, Entry
from pipeline.remote import Remote, SshOptions, close_master, parse_host
from pipeline.runreport import Evidence
from pipeline.secrets import Redactor, redactor_for
from pipeline.targets import hostfiles
from pipeline.targets.busy import BusyClock
from pipeline.targets.composebackup import ComposeBackups

CONTROL_DIR_VARIABLE = "PIPELINE_SSH_CONTROL_DIR"


def policy_of(env: ComposeEnvironment) -> Policy:
    """The engine's policy from a compose environment's configuration."""
    database = "none" if env.migrate is None else env.migrate.database
    return Policy(env.strategy, env.batch_size, env.max_failed_hosts, database, env.deadlines)


@dataclass(frozen=True)
class Host:
    """A host of the environment: how to reach it, its compose project, where its records live."""

    remote: Remote
    project: Project
    files: hostfiles.Paths

    @property
    def name(self) -> str:
        """The unit's name in plans and reports."""
        return self.remote.host.label


class ComposeTarget(ComposeBackups):
    """Hosts over ssh running ``docker compose``; see ``pipeline.targets.base.Target``.

    What comes back from a host (output, evidence, health responses) and what is written to its
    journal goes through the environment's redactor first.
    """

    kind = "compose"

    def __init__(
        self,
        env: ComposeEnvironment,
        hosts: Sequence[Host],
        http: HttpClient,
        sleep: Sleep = time.sleep,
        redactor: Redactor | None = None,
    ) -> None:
        self.env = env
        self.redactor = redactor if redactor is not None else redactor_for(env, os.environ)
        self.hosts = {h.name: h for h in hosts}
        self.http = http
        self.sleep = sleep
        self.clock = BusyClock()  # wall time with at least one command in flight, on any host

    @classmethod
    @contextmanager
    def connect(
        cls,
        env: ComposeEnvironment,
        executor: Executor,
        http: HttpClient,
        sleep: Sleep = time.sleep,
        redactor: Redactor | None = None,
    ) -> Iterator[ComposeTarget]:
        """The environment's hosts sharing a ControlMaster directory; every master is stopped after."""
        parent = os.environ.get(CONTROL_DIR_VARIABLE) or "/tmp"  # socket paths must stay short
        control_dir = tempfile.mkdtemp(prefix="pl-", dir=parent)
        options = SshOptions.from_config(env.ssh, control_dir)
        remotes = [Remote(parse_host(h), options, executor) for h in env.host_list()]
        hosts = [
            Host(r, Project.of(env, r.host.path), hostfiles.Paths.of(r.host.path, env.state_dir))
            for r in remotes
        ]
        try:
            yield cls(env, hosts, http, sleep, redactor)
        finally:
            executor.run_all(Command(close_master(r.host, options), timeout=10) for r in remotes)
            shutil.rmtree(control_dir, ignore_errors=True)

    # -- running -----------------------------------------------------------------------------------

    def _run(
        self,
        host: Host,
        argv: Sequence[str],
        call: Call,
        stdin: str | None = None,
        changing: bool = False,
        stage: str = "",
    ) -> str:
        """Run argv on a host under the call's deadline; StageError with its last words on failure."""
        result = self._attempt(host, argv, call, stdin, changing)
        if not result.ok:
            raise _failure(stage or call.stage, host.name, argv, result, self.redactor)
        return result.stdout

    def _attempt(
        self, host: Host, argv: Sequence[str], call: Call, stdin: str | None = None, changing: bool = False
    ) -> Result:
        """Run argv, turning a deadline, an interrupt or a dead link into their errors."""
        timeout = call.timeout()
        if changing:
            call.changing()
        with self.clock.busy():
            result = host.remote.run(argv, stdin=stdin, timeout=timeout, interrupt=call.interrupt)
        redact = self.redactor.redact
        result = replace(result, stdout=redact(result.stdout), stderr=redact(result.stderr))
        if result.interrupted:
            raise Cancelled(str(call.cancel.reason or "interrupted"))
        if result.returncode == TIMED_OUT:
            late = f"{call.stage} on {host.name} passed its deadline of {call.seconds:g} s"
            raise DeadlineExceeded(
                call.stage, redact(f"{late}: {shlex.join(argv)}"), host.name, _tail(result)
            )
        if host.remote.unreachable(result):
            detail = result.stderr.strip().splitlines()[-1:] or ["no answer"]
            raise StageError(call.stage, f"{host.name} is unreachable over ssh: {detail[0]}", host.name)
        return result

    def spent(self) -> float:
        """Wall seconds during which a command was running on some host (the rest is the pipeline's)."""
        return self.clock.spent()

    # -- reading and locking ----------------------------------------------------------------------------

    def units(self) -> list[str]:
        """The hosts' names."""
        return list(self.hosts)

    def databases(self) -> list[str]:
        """``migrate.host`` for a shared database; every host for per-host databases."""
        migrate = self.env.migrate
        if migrate is None:
            return []
        names = list(self.hosts)
        return names if migrate.database == "per_host" else [names[migrate.host]]

    def read(self, units: Sequence[str], seconds: float) -> list[UnitState]:
        """One round trip per host, all hosts at once: journal, lock and checkout."""
        hosts = [self.hosts[u] for u in units]
        commands = [
            h.remote.command(
                hostfiles.read_state(h.files, h.project.path, self.env.source == "git"), timeout=seconds
            )
            for h in hosts
        ]
        results = hosts[0].remote.executor.run_all(commands) if hosts else []
        states = []
        for host, result in zip(hosts, results, strict=True):
            if host.remote.unreachable(result) or result.returncode == TIMED_OUT:
                detail = result.stderr.strip().splitlines()[-1:] or ["no answer"]
                raise InputError(f"host {host.remote.host.name} is unreachable over ssh: {detail[0]}")
            states.append(hostfiles.parse_state(host.name, result.returncode, result.stdout, result.stderr))
        return states

    def lock(self, unit: str, info: LockInfo, call: Call, take_over: str = "") -> LockInfo | None:
        """Create the lock file with its holder in one step (``ln``); the holder found when held."""
        host = self.hosts[unit]
        argv = hostfiles.take_lock(host.files, take_over)
        result = self._attempt(host, argv, call, stdin=info.to_json() + "\n")
        if result.returncode == hostfiles.HELD:
            return parse_lock(result.stdout)
        if not result.ok:
            raise _failure("lock", unit, argv, result, self.redactor)
        return None

    def unlock(self, unit: str, call: Call) -> None:
        """Remove the lock (a lock directory of an older version too)."""
        host = self.hosts[unit]
        self._run(host, cmd.drop_lock(host.files.lock, f"{host.files.legacy}/lock"), call)

    def record(self, unit: str, entries: Sequence[Entry], call: Call) -> None:
        """Append entries to the host's journal."""
        host = self.hosts[unit]
        lines = "".join(self.redactor.redact_data(e).line() for e in entries)
        self._run(host, hostfiles.append(host.files.journal), call, stdin=lines)

    # -- deploying ---------------------------------------------------------------------------------

    def deploy_steps(self, host: Host, release: Release) -> list[tuple[tuple[str, ...], str | None]]:
        """The commands that put a release in place and start it, with what each reads on stdin."""
        project, version = host.project, release.version
        if self.env.source == "git":
            assert release.commit
            repository = self.env.repository
            prepare = cmd.git_prepare(project.path, repository) if repository else []
            auth = cmd.git_auth(repository)
            return [
                *((a, None) for a in [cmd.make_dirs(project.path), *prepare]),
                (cmd.git_fetch(project.path, authenticated=auth is not None), auth),
                (cmd.git_checkout(project.path, release.commit), None),
                (project.up(version, build=True), None),
            ]
        folder = project.release_dir(version)
        return [
            (cmd.make_dirs(project.path, folder), None),
            (cmd.write_file(project.file_for(version)), release.compose_text),
            (project.pull(version), None),
            (project.up(version, build=False), None),
        ]

    def deploy(self, unit: str, release: Release, call: Call) -> None:
        """Checkout or compose file, then ``up``; the first command marks the host as changed."""
        host = self.hosts[unit]
        for argv, stdin in self.deploy_steps(host, release):
            self._run(host, argv, call, stdin=stdin, changing=True)

    def restore_steps(self, host: Host, previous: Entry | None, release: Release) -> list[tuple[str, ...]]:
        """The commands that bring the previous release back without a build (or remove the new one)."""
        project = host.project
        if previous is None:
            return [project.down()]
        steps = []
        if self.env.source == "git" and previous.commit:
            steps.append(cmd.git_checkout(project.path, previous.commit))
        steps.append(project.up(previous.version, build=False))
        return steps

    def restore(self, unit: str, previous: Entry | None, release: Release, call: Call) -> None:
        """The previous release's checkout or compose file, then ``up`` without a build."""
        host = self.hosts[unit]
        for argv in self.restore_steps(host, previous, release):
            self._run(host, argv, call, changing=True)

    # -- databases -------------------------------------------------------------------------------------

    def _in_service(self, unit: str, release: Release, key: str, call: Call, revision: str = "") -> str:
        """A migration command in the service with the release's code; a one-off container when the
        service is not running (it crashed at start, or a stopped migration took it down)."""
        migrate = self.env.migrate
        assert migrate is not None
        host = self.hosts[unit]
        argv = shell_command(getattr(migrate, key), revision)
        name = f"{host.project.name}-pipeline-{key}"
        command = host.project.in_service(release.version, migrate.service, argv, migrate.run, name=name)
        changing = key in ("command", "downgrade")
        try:
            return self._run(host, command, call, changing=changing, stage="migrate")
        except (DeadlineExceeded, Cancelled):
            self._stop_service_command(host, release, name, call)
            raise
        except StageError as exc:
            if migrate.run != "exec" or not _not_running(exc.output):
                raise
        one_off = host.project.in_service(release.version, migrate.service, argv, "run", name=name)
        return self._run(host, one_off, call, changing=changing, stage="migrate")

    def _stop_service_command(self, host: Host, release: Release, name: str, call: Call) -> None:
        """A command stopped on the runner may go on in its container: stop the container too."""
        migrate = self.env.migrate
        assert migrate is not None
        if migrate.run == "run":
            argv: tuple[str, ...] = ("docker", "rm", "--force", name)
        else:
            argv = host.project.compose(release.version, "kill", "--signal", "KILL", migrate.service)
        shielded = Call("migrate", host.name, 30.0, call.cancel, shielded=True)
        with suppress(StageError):  # the rollback reads the revision again and says what it found
            self._attempt(host, argv, shielded)

    def revision(self, unit: str, release: Release, call: Call) -> str:
        """``alembic current`` in the service: the revision, ``base`` when there is none."""
        return parse_revision(self._in_service(unit, release, "current", call)) or BASE

    def head(self, unit: str, release: Release, call: Call) -> str:
        """``alembic heads`` with the release's code."""
        return parse_revision(self._in_service(unit, release, "heads", call)) or BASE

    def migrate(self, unit: str, release: Release, call: Call) -> None:
        """``alembic upgrade head`` with the release's code."""
        self._in_service(unit, release, "command", call)

    def downgrade(self, unit: str, release: Release, revision: str, call: Call) -> None:
        """``alembic downgrade REVISION`` with the release's (newer) scripts."""
        self._in_service(unit, release, "downgrade", call, revision=revision)

    # -- health and evidence --------------------------------------------------------------------------

    def health(self, unit: str, version: str, call: Call) -> list[HealthResult]:
        """The configured checks, each under its retry policy; a cancel wakes the waits."""
        host = self.hosts[unit]

        def sleep(seconds: float) -> None:
            call.check()
            self.sleep(min(seconds, max(0.0, call.remaining())))
            call.check()

        with self.clock.busy():
            results = check_host(self.env.health, host.remote, host.project, version, self.http, sleep)
        return self.redactor.redact_data(results)

    def evidence(self, unit: str, release: Release, call: Call) -> list[Evidence]:
        """The last 200 log lines and every container's state, of the release that failed."""
        host = self.hosts[unit]
        logs = self._attempt(host, host.project.logs(release.version, []), call)
        states = self._attempt(host, host.project.ps(release.version), call)
        rows = [f"{c.service}: {c.state} {c.health} ({c.status})" for c in cmd.parse_ps(states.stdout)]
        return [
            Evidence(unit, "logs", logs.stdout + logs.stderr),
            Evidence(unit, "containers", "\n".join(rows)),
        ]

    # -- the plan ------------------------------------------------------------------------------------------

    def describe(
        self, unit: str, operation: str, release: Release, previous: Entry | None = None, revision: str = ""
    ) -> list[str]:
        """The commands of an operation on a host, as ``--dry-run`` prints them."""
        host = self.hosts[unit]
        migrate = self.env.migrate
        lines: list[tuple[str, Sequence[str], bool]] = []
        backup: list[str] = []
        if operation == "lock":
            lines = [("lock", hostfiles.take_lock(host.files, ""), True)]
        elif operation == "deploy":
            lines = [("deploy", argv, stdin is not None) for argv, stdin in self.deploy_steps(host, release)]
        elif operation in ("migrate", "downgrade") and migrate is not None:
            keys = ["current", "command", "current", "heads"] if operation == "migrate" else ["downgrade"]
            if operation == "migrate" and self.env.backup is not None:  # after reading the revision
                name = f"<time>-{release.version}-<revision>.sql.gz"
                backup = self.describe_backup(unit, "backup", name, release.version)
            for key in keys:
                argv = shell_command(getattr(migrate, key), revision)
                command = host.project.in_service(release.version, migrate.service, argv, migrate.run)
                lines.append((operation, command, False))
        elif operation == "health":
            where = host.remote.host.name
            return [f"  health   [{unit}] {describe(c).replace('{host}', where)}" for c in self.env.health]
        elif operation == "record":
            return [f"  record   [{unit}] append to {host.files.journal}; release the lock"]
        elif operation == "restore":
            lines = [("restore", argv, False) for argv in self.restore_steps(host, previous, release)]
        shown = [
            f"  {stage:<8} [{unit}] {shlex.join(argv)}" + ("  < (stdin)" if fed else "")
            for stage, argv, fed in lines
        ]
        return [*shown[:1], *backup, *shown[1:]]


def _tail(result: Result) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-50:])


def _failure(stage: str, unit: str, argv: Sequence[str], result: Result, redactor: Redactor) -> StageError:
    """StageError with the command's last words."""
    words = (result.stderr or result.stdout).strip().splitlines()[-3:]
    message = f"[{unit}] {shlex.join(argv)} exited {result.returncode}: {' / '.join(words)}"
    return StageError(stage, redactor.redact(message), unit, redactor.redact(_tail(result)))


def _not_running(output: str) -> bool:
    """Whether ``compose exec`` failed because the service has no running container."""
    text = output.lower()
    return any(words in text for words in ("not running", "no container", "is restarting"))

"""On-call tasks over the hosts' own records: status, history, unlock, and the stages on their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline import compose as cmd
from pipeline.config import PipelineConfig
from pipeline.deploy import Context, Engine, StageError
from pipeline.environments import ComposeEnvironment
from pipeline.errors import ExitCode, InputError, StageFailed
from pipeline.executor import Executor
from pipeline.health import check_host
from pipeline.hosts import HostRun, Release, connections, lock_holder, read_hosts
from pipeline.http import HttpClient

Say = Callable[[str], None]


@contextmanager
def hosts_of(
    config: PipelineConfig, name: str, executor: Executor
) -> Iterator[tuple[ComposeEnvironment, list[HostRun]]]:
    """The environment and its hosts with journals, checkouts and locks read (no lock taken)."""
    env = config.environment(name)
    with connections(env, executor) as hosts:
        read_hosts(hosts, env.source)
        yield env, hosts


def serving(hosts: list[HostRun]) -> str:
    """The one version every host serves, or an input error saying they differ."""
    versions = {run.previous.version if run.previous else None for run in hosts}
    if len(versions) != 1 or None in versions:
        raise InputError(f"the hosts do not serve one known release: {sorted(map(str, versions))}")
    return str(versions.pop())


def status(config: PipelineConfig, name: str, executor: Executor, say: Say) -> ExitCode:
    """What each host serves, its last journal entry, and who holds the lock."""
    with hosts_of(config, name, executor) as (_, hosts):
        for run in hosts:
            last = run.journal[-1] if run.journal else None
            serving_now = run.previous.version if run.previous else "nothing recorded"
            say(f"{run.name}: serving {serving_now}")
            if last is not None:
                say(f"  last: {last.event} {last.version} {last.result} by {last.who} at {last.at}")
            if run.lock_info:
                say(f"  LOCKED by {lock_holder(run.lock_info)}")
    return ExitCode.OK


def history(config: PipelineConfig, name: str, executor: Executor, say: Say, limit: int) -> ExitCode:
    """The newest journal entries of every host."""
    with hosts_of(config, name, executor) as (_, hosts):
        for run in hosts:
            say(f"{run.name}:")
            for e in run.journal[-limit:]:
                db = f" db {e.db_before or '-'}->{e.db_after or '-'}" if e.db_before or e.db_after else ""
                why = f" ({e.reason})" if e.reason else ""
                say(f"  {e.at} {e.event:<8} {e.version:<12} {e.result:<11} {e.who}{db}{why}")
    return ExitCode.OK


def unlock(config: PipelineConfig, name: str, executor: Executor, say: Say) -> ExitCode:
    """Release a lock left by a cancelled run, saying who held it and since when."""
    with hosts_of(config, name, executor) as (_, hosts):
        for run in hosts:
            if not run.lock_info:
                say(f"{run.name}: not locked")
                continue
            run.remote.run(cmd.drop_lock(run.remote.host.lock)).check()
            say(f"{run.name}: released the lock held by {lock_holder(run.lock_info)}")
    return ExitCode.OK


def health(config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say) -> ExitCode:
    """The health checks against what is deployed; exit 1 when one fails."""
    with hosts_of(config, name, executor) as (env, hosts):
        version = serving(hosts)
        failed = False
        for run in hosts:
            for result in check_host(env.health, run.remote, run.project, version, http):
                failed = failed or not result.ok
                mark = "ok  " if result.ok else "FAIL"
                say(f"{mark} {result.host}: {result.check}: {result.detail} ({result.attempts} tries)")
        return ExitCode.ROLLED_BACK if failed else ExitCode.OK


def migrate(config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say) -> ExitCode:
    """Run the migrations of the release that is deployed, under the deploy lock."""
    with hosts_of(config, name, executor) as (env, hosts):
        if env.migrate is None:
            raise InputError(f"pipeline.environments.{name}.migrate is not configured")
        version = serving(hosts)
        engine = Engine(name, env, Release(version, None), hosts, Context(http=http, say=say))
        engine.revision_known = False
        engine.lock_all()
        try:
            engine.migrate()
        except StageError as exc:
            raise StageFailed(f"migrate failed: {exc}") from None
        finally:
            engine.unlock_all()
        say(f"migrated: {engine.report.db_before or 'base'} -> {engine.report.db_after or 'base'}")
    return ExitCode.OK


def rollback(
    config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say, to: str | None
) -> ExitCode:
    """Go back to the last release healthy on every host (or ``to``): downgrade, restore, check."""
    from pipeline.journal import healthy_everywhere

    with hosts_of(config, name, executor) as (env, hosts):
        current = serving(hosts)
        prefix = config.checklist.tag_prefix
        wanted = to[len(prefix) :] if to and prefix and to.startswith(prefix) else to
        older = [[e for e in run.journal if e.version != current] for run in hosts]
        target = wanted or healthy_everywhere(older)
        if target is None:
            raise InputError(
                f"no release other than {current} was healthy on every host: nothing to go back to"
            )
        now = {run.name: run.previous for run in hosts}
        for run, entries in zip(hosts, older, strict=True):
            found = [e for e in entries if e.version == target and e.serving]
            if not found:
                raise InputError(f"{run.name} never served {target} healthy (see `invoke history`)")
            run.target, run.touched = found[-1], True
        first = now[hosts[0].name]
        release = Release(current, first.commit if first else None)
        context = Context(http=http, say=say)
        engine = Engine(name, env, release, hosts, context)
        engine.report.db_before = hosts[0].target.db_after if hosts[0].target else None
        engine.migrated = env.migrate is not None
        engine.report.reason = f"rollback to {target} asked by {context.who or 'on-call'}"
        say(f"rolling back {name} from {current} to {target}")
        engine.lock_all()
        try:
            engine.rolling_back = True
            engine.failed_at = time.monotonic()
            engine.roll_back(cancelled=False)
        finally:
            engine.unlock_all()
        say(engine.report.render_text())
        return ExitCode.OK if engine.report.outcome == "rolled_back" else ExitCode.ROLLBACK_FAILED


def notify(
    config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say, message: str | None
) -> ExitCode:
    """Send a message (default: what each host serves) to the environment's channels."""
    import os

    from pipeline.notify import Notification, build_notifiers, send_all
    from pipeline.secrets import Redactor

    env = config.environment(name)
    redactor = Redactor()
    notifiers = build_notifiers(
        env.notify, os.environ, http, f"pipeline.environments.{name}.notify", redactor
    )
    if not notifiers:
        raise InputError(f"pipeline.environments.{name}.notify has no channel")
    with hosts_of(config, name, executor) as (_, hosts):
        lines = [f"{run.name}: {run.previous.version if run.previous else 'nothing'}" for run in hosts]
        versions = {run.previous.version for run in hosts if run.previous}
    version = versions.pop() if len(versions) == 1 else "mixed versions"
    note = Notification(name, version, "message", message or "serving: " + "; ".join(lines), tuple(lines))
    failed = [f"{channel}: {error}" for channel, error in send_all(notifiers, note, redactor) if error]
    for line in failed:
        say(f"notify failed: {line}")
    if not failed:
        say(f"notified {', '.join(n.name for n in notifiers)}")
    return ExitCode.BAD_INPUT if failed else ExitCode.OK

"""``invoke prune``: remove old releases from the hosts of a compose environment, under the deploy lock.

The steps: read every host's journal (a held lock, or an interrupted run's, exits 5: its releases may
be needed); take the lock; read again under it (a deploy that ended meanwhile counts); decide what
stays (``pipeline.prune``); on each host, in parallel, remove each other version's images and release
folder under the ``prune`` deadline; measure the disk before and after; append a ``pruned`` line per
version removed; release the lock. ``--dry-run`` stops after the decision and prints it.

Ways out: a signal or a deadline stops a host between commands (what was removed until then is
journaled), a host that fails is reported with exit 1 while the others go on, and the lock is
always released.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.config import PipelineConfig
from pipeline.disk import DiskUsage, disk_usage, distinct, free_kib, human_bytes, parse_disk
from pipeline.engine.cancel import Call
from pipeline.engine.values import Release, UnitState
from pipeline.errors import ExitCode, StageError, failure_text
from pipeline.executor import Executor
from pipeline.helmconfig import HelmEnvironment
from pipeline.journal import PRUNED, Entry
from pipeline.prune import PRUNE, VersionPlan, candidates, check_keep, kept_versions
from pipeline.targets import composeprune as cp

if TYPE_CHECKING:
    from pipeline.engine.run import Engine
    from pipeline.operate import Say
    from pipeline.targets.compose import ComposeTarget, Host


@dataclass
class HostPrune:
    """One host's decision and, once run, what happened."""

    unit: str
    keep: list[tuple[str, str]]  # version, why
    remove: list[VersionPlan]
    before: list[DiskUsage] = field(default_factory=list)
    after: list[DiskUsage] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stayed: list[tuple[str, str]] = field(default_factory=list)  # version, why (found while removing)
    error: str = ""


def prune(
    config: PipelineConfig, name: str, executor: Executor, say: Say, keep: int | str | None, dry_run: bool
) -> ExitCode:
    """Remove what no rollback needs from every host; print what went, what stayed and the space freed."""
    from pipeline.operate import engine_of, redacting

    env = config.environment(name)
    if isinstance(env, HelmEnvironment):
        return _helm(env, name, say)
    count = check_keep(keep, env.prune.keep)
    with (
        redacting(config, name, say) as (say, redactor),
        engine_of(config, name, executor, None, say, redactor) as engine,
    ):
        states = engine.read()
        engine.refuse_locks(states)
        if dry_run:
            say(f"prune {name}: dry run, nothing is removed (keep {count} besides the serving release)")
            for host in _survey(engine, states, count):
                for line in _plan_lines(host):
                    say(line)
            return ExitCode.OK
        hosts = _locked_prune(engine, states, count)
    for host in hosts:
        for line in _result_lines(host):
            say(line)
    failed = [h.unit for h in hosts if h.error]
    removed = sum(len(h.removed) for h in hosts)
    say(f"prune {name}: " + (f"FAILED on {', '.join(failed)}" if failed else f"OK, {removed} removed"))
    return ExitCode.ROLLED_BACK if failed else ExitCode.OK  # 1: a host failed, its removals journaled


def _locked_prune(engine: Engine, states: Sequence[UnitState], count: int) -> list[HostPrune]:
    """Lock, decide again under the lock, remove on every host, journal, unlock."""
    from pipeline.engine import fleet
    from pipeline.engine.cancel import signals_to

    serving = next((s.serving.version for s in states if s.serving), "none")
    run = engine.new_run(Release(serving, None), states, event=PRUNE)
    hosts: list[HostPrune] = []
    with signals_to(engine.cancel):
        engine.lock_all(run)
        try:
            if engine.cancel.requested:
                raise StageError("prune", f"{engine.cancel.reason} before anything was removed")
            hosts = _survey(engine, engine.read(), count)
            fleet.each([h.unit for h in hosts], lambda unit: _remove(engine, _of(hosts, unit)))
            _journal(engine, hosts)
        except StageError as exc:  # before any removal: a signal, or a host that cannot be read
            hosts = [HostPrune(unit, [], [], error=str(exc)) for unit in run.states]
        finally:
            engine.cancel.reset()
            engine.unlock_all(run)
    return hosts


def _of(hosts: Sequence[HostPrune], unit: str) -> HostPrune:
    return next(h for h in hosts if h.unit == unit)


def _target(engine: Engine) -> ComposeTarget:
    from pipeline.targets.compose import ComposeTarget

    assert isinstance(engine.target, ComposeTarget)
    return engine.target


def _survey(engine: Engine, states: Sequence[UnitState], count: int) -> list[HostPrune]:
    """Each host's inventory and disk, read in parallel, and what goes and stays on it."""
    from pipeline.engine import fleet

    target = _target(engine)
    kept = kept_versions({s.name: s.journal for s in states}, count)
    found: dict[str, HostPrune] = {}
    guard = threading.Lock()

    def survey(unit: str) -> None:
        host = target.hosts[unit]
        call = Call("read", unit, engine.policy.deadlines.read, engine.cancel, shielded=True)
        stock = cp.parse_inventory(target._run(host, cp.inventory(host.project), call))
        before = parse_disk(host.project.path, target._run(host, disk_usage(host.project.path), call))
        journal = next(s.journal for s in states if s.name == unit)
        keep, remove = [], []
        for version in candidates(journal, stock.folders):
            plan = stock.plan(version, host.project)
            busy = [i for i in plan.images if i in stock.used]
            if version in kept:
                keep.append((version, kept[version]))
            elif busy:
                keep.append((version, f"a container uses {', '.join(busy)}"))
            elif plan.images or plan.folder:
                remove.append(plan)
        if stock.unreadable:
            keep.append(
                ("?", f"image names unreadable from {', '.join(stock.unreadable)}: their images stay")
            )
        with guard:
            found[unit] = HostPrune(unit, keep, remove, before)

    failures = fleet.each([s.name for s in states], survey)
    if failures:
        unit, exc = next(iter(failures.items()))
        raise StageError("prune", f"{unit}: cannot read what the host has: {exc}; nothing was removed", unit)
    return [found[s.name] for s in states]


def _remove(engine: Engine, host: HostPrune) -> None:
    """Remove each version's images, then its folder; a failure stops this host (never the others).

    A signal stops between versions, never within one, so a version is either kept whole or
    journaled as pruned; the host's deadline holds throughout.
    """
    target = _target(engine)
    remote = target.hosts[host.unit]
    call = Call("prune", host.unit, engine.policy.deadlines.prune, engine.cancel)
    try:
        for plan in host.remove:
            call.check()
            step = Call("prune", host.unit, call.seconds, call.cancel, shielded=True, started=call.started)
            _remove_version(target, remote, plan, step, host)
    except Exception as exc:
        host.error = failure_text(exc)
    shielded = Call("read", host.unit, engine.policy.deadlines.read, engine.cancel, shielded=True)
    try:
        result = target._attempt(remote, disk_usage(remote.project.path), shielded)
        host.after = parse_disk(remote.project.path, result.stdout) if result.ok else []
    except StageError:
        host.after = []  # the space freed is then not known; what was removed is


def _remove_version(
    target: ComposeTarget, remote: Host, plan: VersionPlan, call: Call, host: HostPrune
) -> None:
    """One version's images, then its folder; once any part is gone the version counts as removed."""
    touched = False
    try:
        for image in plan.images:
            result = target._attempt(remote, cp.remove_image(image), call)
            if result.ok or cp.gone(result.stderr):
                touched = touched or result.ok
                continue
            if cp.in_use(result.stderr) and not touched:
                host.stayed.append((plan.version, f"docker refused to remove {image}: a container uses it"))
                return
            words = " / ".join(result.stderr.strip().splitlines()[-2:])
            raise StageError(
                "prune", f"docker image rm {image} exited {result.returncode}: {words}", host.unit
            )
        if plan.folder:
            touched = True  # `rm -rf` stopped midway leaves a folder no rollback can use
            target._run(remote, cp.remove_folder(plan.folder), call, stage="prune")
    finally:
        if touched:
            host.removed.append(plan.version)


def _journal(engine: Engine, hosts: Sequence[HostPrune]) -> None:
    """A ``pruned`` line per version removed, on its host; a journal not written is the host's error."""
    for host in hosts:
        if not host.removed:
            continue
        reason = f"removed {', '.join(host.removed)}"
        entries = [_line(engine, host.unit, version, reason) for version in host.removed]
        try:
            engine.target.record(host.unit, entries, engine.call("record", host.unit, shielded=True))
        except Exception as exc:
            host.error = host.error or f"the journal was not written: {failure_text(exc)}"


def _line(engine: Engine, unit: str, version: str, reason: str) -> Entry:
    """The journal line of a version removed from a unit: never serving, so no rollback goes there."""
    c = engine.context
    return Entry(
        event=PRUNE, version=version, commit=None, previous_version=None, db_before=None, db_after=None,
        result=PRUNED, reason=reason, who=c.who, at=c.now(), run_url=c.run_url, host=unit, run=c.run_id,
    )  # fmt: skip


def _disk_words(usages: Sequence[DiskUsage]) -> str:
    return ", ".join(f"{u.mounted_on} {u.used_percent}% used" for u in distinct(usages)) or "unknown"


def _plan_lines(host: HostPrune) -> list[str]:
    lines = [f"{host.unit}: disk {_disk_words(host.before)}"]
    lines += [f"  keep    {version:<14} {why}" for version, why in host.keep]
    lines += [f"  remove  {plan.version:<14} {plan.words()}" for plan in host.remove]
    if not host.remove:
        lines.append("  nothing to remove")
    return lines


def _result_lines(host: HostPrune) -> list[str]:
    freed = free_kib(host.after) - free_kib(host.before) if host.before and host.after else None
    space = f"; freed {human_bytes(max(freed, 0))}" if freed is not None else ""
    moved = f" ({_disk_words(host.before)} -> {_disk_words(host.after)})" if host.after else ""
    done = ", ".join(host.removed) or "nothing"
    lines = [f"{host.unit}: removed {done}{space}{moved}"]
    lines += [f"  kept    {version:<14} {why}" for version, why in host.keep + host.stayed]
    if host.error:
        lines.append(f"  FAILED: {host.error}")
    return lines


def _helm(env: HelmEnvironment, name: str, say: Say) -> ExitCode:
    """Helm keeps its own bounded history: nothing of ours accumulates on the cluster's disks."""
    say(
        f"prune {name}: nothing to prune on a Helm release: helm keeps at most history_max="
        f"{env.history_max} revisions of {env.release} (pipeline.environments.{name}.history_max), "
        "a failed migration Job kept for inspection deletes itself a day after it ended, and images "
        "on the nodes are the kubelet's to collect"
    )
    return ExitCode.OK

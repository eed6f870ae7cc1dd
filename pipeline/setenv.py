"""``invoke setenv``: change the variables file (``.env``) on an environment's compose hosts, safely.

The runbooks' procedure, with the care of a deploy: under the deploy lock (operation ``setenv``),
host by host as the environment's strategy says, the old file is backed up, the new one written
atomically, only the services whose configuration changed are recreated (never built) and the health
checks run; if a step fails, a deadline passes or a signal arrives, the old file is put back on every
host that was changed, the same services are recreated and checked again. Values are secrets: every
one (given or found in the file) goes to the redactor before anything is said, and the journal, the
report and the notification name keys only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import PipelineConfig
from pipeline.envfile import Changes, Edited, changes_of, edit, parse, parse_assignments, values_of
from pipeline.errors import ExitCode, InputError, StageError, failure_text
from pipeline.executor import Executor
from pipeline.files import read_text
from pipeline.helmconfig import HelmEnvironment
from pipeline.http import HttpClient
from pipeline.journal import APPLIED, FAILED, REVERTED, Entry
from pipeline.operate import Say, engine_of, redacting
from pipeline.setenvreport import UNCHANGED, UNTOUCHED, HostChange, SetenvReport

if TYPE_CHECKING:
    from pipeline.engine.cancel import Call
    from pipeline.engine.run import Engine
    from pipeline.engine.values import UnitState
    from pipeline.secrets import Redactor
    from pipeline.targets.composesetenv import EnvFiles


@dataclass(frozen=True)
class SetenvRequest:
    """What the caller asked for."""

    environment: str
    sets: tuple[str, ...] = ()
    unsets: tuple[str, ...] = ()
    from_file: str | None = None
    dry_run: bool = False


def request_changes(request: SetenvRequest) -> Changes:
    """The flags and the ``--from-file`` as one change, validated (exit 2 before anything is read)."""
    pairs: list[tuple[str, str]] = []
    if request.from_file:
        text = read_text(Path(request.from_file), f"--from-file {request.from_file}", limit=256 * 1024)
        pairs = parse_assignments(text, request.from_file)
    return changes_of(request.sets, request.unsets, pairs)


def setenv(
    config: PipelineConfig, request: SetenvRequest, executor: Executor, http: HttpClient, say: Say
) -> ExitCode:
    """Change the variables file on every host of the environment; the run's exit code."""
    from pipeline.notify import build_notifiers

    name = request.environment
    env = config.environment(name)
    if isinstance(env, HelmEnvironment):
        raise InputError(
            f"setenv: {name} is a Helm environment: its values live in the chart's values files "
            f"({', '.join(env.values) or 'pipeline.environments.' + name + '.values'}); change them and "
            "deploy a release"
        )
    changes = request_changes(request)
    with redacting(config, name, say) as (say, redactor):
        for value in changes.values():
            redactor.add(value)
        notifiers = build_notifiers(
            env.notify, os.environ, http, f"pipeline.environments.{name}.notify", redactor
        )
        with engine_of(config, name, executor, http, say, redactor) as engine:
            states = engine.read()
            engine.refuse_locks(states)
            files = _files(engine)
            hosts = [_host(files, s.name, s.serving, name) for s in states]
            if request.dry_run:
                _dry_run(engine, files, hosts, changes, redactor, say)
                if notifiers:
                    say("notify: " + ", ".join(n.name for n in notifiers))
                return ExitCode.OK
            report = SetenvReport(name, hosts)
            _run(engine, files, report, changes, redactor, states)
        _tell(report, notifiers, engine.context.run_url, redactor, say)
    return report.exit_code


def _files(engine: Engine) -> EnvFiles:
    from pipeline.targets.compose import ComposeTarget
    from pipeline.targets.composesetenv import EnvFiles

    assert isinstance(engine.target, ComposeTarget)
    return EnvFiles(engine.target)


def _host(files: EnvFiles, unit: str, serving: Entry | None, name: str) -> HostChange:
    """A host's part, from the release its journal says it serves."""
    if serving is None:
        raise InputError(
            f"{unit}: no release is recorded as serving: deploy one first (`invoke deploy --env {name}`); "
            "nothing was changed"
        )
    return HostChange(unit, serving.version, serving.commit, files.path(unit), backups=files.backups(unit))


# -- reading --------------------------------------------------------------------------------------


def _read(
    engine: Engine, files: EnvFiles, hosts: Sequence[HostChange], changes: Changes, redactor: Redactor
) -> dict[str, tuple[str | None, Edited, dict[str, str]]]:
    """Each host's file (every value in it becomes a secret), the file changed, and the services'
    hashes now; a host that cannot be read stops the run before any change (exit 2)."""
    from pipeline.engine import fleet

    found: dict[str, tuple[str | None, Edited, dict[str, str]]] = {}

    def read(host: HostChange) -> None:
        call = engine.call("read", host.unit, shielded=True)
        old = files.read(host.unit, call)
        for value in values_of(parse(old or "")):
            redactor.add(value)
        edited = edit(old or "", changes)
        host.diff = edited.diff
        before = files.hashes(host.unit, host.version, call) if not edited.diff.empty else {}
        found[host.unit] = (old, edited, before)

    by_unit = {h.unit: h for h in hosts}
    failures = fleet.each(list(by_unit), lambda unit: read(by_unit[unit]))
    if failures:
        unit, exc = next(iter(failures.items()))
        if isinstance(exc, InputError):
            raise exc
        raise InputError(f"cannot read the variables file on {unit}: {exc}; nothing was changed")
    return found


def _dry_run(
    engine: Engine,
    files: EnvFiles,
    hosts: Sequence[HostChange],
    changes: Changes,
    redactor: Redactor,
    say: Say,
) -> None:
    """What would change on each host, by key name, the services it would recreate and the commands."""
    from pipeline.targets.composesetenv import affected

    found = _read(engine, files, hosts, changes, redactor)
    say("dry run: nothing is changed on any host, and no notification is sent")
    for host in hosts:
        _, edited, before = found[host.unit]
        say(f"host {host.unit}: serving {host.version}; {host.path}: {host.diff.describe()}")
        if host.diff.empty:
            continue
        call = engine.call("read", host.unit, shielded=True)
        after = files.hashes(host.unit, host.version, call, text=edited.text)
        services = sorted({*affected(before, after), *_reading(files, host, call)})
        say(f"  services to recreate: {', '.join(services) or 'none'}")
        for line in files.describe(host.unit, host.version, services):
            say(line)
        if services:
            say(f"  health   [{host.unit}] the environment's health checks, expecting {host.version}")
        say(f"  revert   [{host.unit}] on failure: the old file back, the same services recreated, checked")


def _reading(files: EnvFiles, host: HostChange, call: Call) -> list[str]:
    """Services that load the whole file (``env_file:``); none known with a compose too old to say."""
    try:
        return files.reading(host.unit, host.version, call)
    except StageError:
        return []


# -- changing -------------------------------------------------------------------------------------


def _run(
    engine: Engine,
    files: EnvFiles,
    report: SetenvReport,
    changes: Changes,
    redactor: Redactor,
    states: Sequence[UnitState],
) -> None:
    """Lock, read, change host by host, put back on failure, journal, unlock."""
    from pipeline.engine.cancel import signals_to
    from pipeline.engine.values import Release

    first = report.hosts[0]
    run = engine.new_run(Release(first.version, first.commit), states, "setenv")
    with signals_to(engine.cancel):
        engine.lock_all(run)
        try:
            if engine.cancel.requested:
                report.outcome, report.reason = "interrupted", f"{engine.cancel.reason}; nothing was changed"
                return
            found = _read(engine, files, report.hosts, changes, redactor)
            _change_all(engine, files, report, found)
            _journal(engine, files, report)
        finally:
            engine.cancel.reset()
            engine.unlock_all(run)
            report.warnings += [f"{s.host}: {s.detail}" for s in run.report.stages if s.status == "failed"]


def _change_all(
    engine: Engine,
    files: EnvFiles,
    report: SetenvReport,
    found: dict[str, tuple[str | None, Edited, dict[str, str]]],
) -> None:
    """Batch after batch (the strategy's); on the first failure or a signal, every changed host is
    put back."""
    from pipeline.engine import fleet

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    hosts = {h.unit: h for h in report.hosts}
    failures: dict[str, BaseException] = {}
    try:
        for batch in fleet.batches(list(hosts), engine.policy):
            if engine.cancel.requested:
                break
            engine.context.say(f"-> setenv [{', '.join(batch)}]")
            body = lambda unit: _change(engine, files, hosts[unit], found[unit], stamp)  # noqa: E731
            failures = fleet.each(batch, body)
            if failures:
                break
    except Exception as bug:  # our own bug between hosts: what was changed is still put back
        failures = {"setenv": bug}
    for unit, exc in failures.items():
        if unit in hosts:
            hosts[unit].why = failure_text(exc)
    if all(h.result in (APPLIED, UNCHANGED) for h in hosts.values()):
        report.outcome = "applied" if any(h.result == APPLIED for h in hosts.values()) else "unchanged"
        return
    failed = "; ".join(f"{u}: {failure_text(e)}" for u, e in failures.items())
    report.reason = failed or str(engine.cancel.reason)
    for host in hosts.values():
        if not host.touched and host.result != UNCHANGED:
            host.result = UNTOUCHED
    touched = [h for h in hosts.values() if h.touched]
    if not touched and not failures:
        report.outcome, report.reason = "interrupted", f"{engine.cancel.reason}; nothing was changed"
        return
    engine.context.say(
        f"-> putting the old file back [{', '.join(h.unit for h in touched)}] ({report.reason})"
    )
    _put_back_all(engine, files, touched, found)
    report.outcome = "reverted" if all(h.result == REVERTED for h in touched) else "revert_failed"


def _change(
    engine: Engine,
    files: EnvFiles,
    host: HostChange,
    found: tuple[str | None, Edited, dict[str, str]],
    stamp: str,
) -> None:
    """Back up and write the file, recreate the services it changes, check their health."""
    from pipeline.targets.composesetenv import affected

    _, edited, before = found
    if edited.diff.empty:
        host.result = UNCHANGED
        return
    call = engine.call("deploy", host.unit)
    call.check()
    host.touched = True
    host.backup = files.write(host.unit, edited.text, stamp, call)
    host.services = affected(before, files.hashes(host.unit, host.version, call))
    if host.services:
        host.recreating = True
        files.recreate(host.unit, host.version, host.services, call)
        _healthy(engine, host, shielded=False)
    host.result = APPLIED


def _healthy(engine: Engine, host: HostChange, shielded: bool) -> None:
    """The environment's health checks on the host; StageError naming what failed."""
    results = engine.target.health(host.unit, host.version, engine.call("health", host.unit, shielded))
    bad = [r for r in results if not r.ok]
    if bad:
        raise StageError("health", "; ".join(f"{r.check}: {r.detail}" for r in bad), host.unit)


def _put_back_all(
    engine: Engine,
    files: EnvFiles,
    touched: Sequence[HostChange],
    found: dict[str, tuple[str | None, Edited, dict[str, str]]],
) -> None:
    """The old file on every changed host, the same services recreated and checked (shielded: a
    second signal does not stop it; its deadlines still hold)."""
    from pipeline.engine import fleet

    hosts = {h.unit: h for h in touched}

    def put_back(unit: str) -> None:
        host = hosts[unit]
        call = engine.call("restore", unit, shielded=True)
        files.put_back(unit, found[unit][0], call)
        if host.recreating:
            files.recreate(unit, host.version, host.services, call)
            _healthy(engine, host, shielded=True)
        host.result = REVERTED

    for unit, exc in fleet.each(list(hosts), put_back).items():
        hosts[unit].result, hosts[unit].revert_why = FAILED, failure_text(exc)


# -- telling --------------------------------------------------------------------------------------


def journal_entry(engine: Engine, host: HostChange) -> Entry:
    """The host's journal line: keys by name, the result, the release that still serves."""
    context = engine.context
    return Entry(
        event="setenv", version=host.version, commit=host.commit, previous_version=None, db_before=None,
        db_after=None, result=host.result, reason=host.revert_why or host.why, who=context.who,
        at=context.now(), run_url=context.run_url, host=host.unit, run=context.run_id,
        keys_set=",".join(host.diff.set_keys), keys_unset=",".join(host.diff.removed),
    )  # fmt: skip


def _journal(engine: Engine, files: EnvFiles, report: SetenvReport) -> None:
    """A line on every host that was changed; one that cannot be written is a warning."""
    from pipeline.engine import fleet

    hosts = {h.unit: h for h in report.hosts if h.touched}

    def write(unit: str) -> None:
        entry = journal_entry(engine, hosts[unit])
        files.record(unit, entry, engine.call("record", unit, shielded=True))

    for unit, exc in fleet.each(list(hosts), write).items():
        report.warnings.append(f"{unit}: the journal was not written: {failure_text(exc)}")


def _tell(
    report: SetenvReport, notifiers: Sequence[object], run_url: str, redactor: Redactor, say: Say
) -> None:
    """The report, then the notification (a failing channel is a warning, never a new outcome)."""
    from pipeline.notify import Notification, send_all
    from pipeline.setenvreport import NOTIFIED

    say(report.render_text())
    if not notifiers or report.outcome not in NOTIFIED:
        return
    versions = sorted({h.version for h in report.hosts})
    note = Notification(
        environment=report.environment, version=", ".join(versions), outcome=NOTIFIED[report.outcome],
        summary=report.summary(), details=tuple(report.details()), run_url=run_url, report=report.to_data(),
    )  # fmt: skip
    for channel, error in send_all(notifiers, note, redactor):  # type: ignore[arg-type]
        if error:
            say(f"warning: notify {channel} failed: {error}")

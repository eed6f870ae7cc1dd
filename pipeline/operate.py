"""On-call tasks over the units' own records: status, history, unlock, rollback, and stages on their own.

Each calls the engine's entry points (``read``, ``rollback``, ``migrate``, ``check``, ``unlock_held``);
none of them reaches into the engine's state. What each prints, and the message of an error that
escapes, goes through the environment's redactor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING

from pipeline import disk
from pipeline.config import PipelineConfig
from pipeline.engine.values import Release, UnitState
from pipeline.errors import ExitCode, InputError, PipelineError
from pipeline.executor import Executor
from pipeline.http import HttpClient
from pipeline.journal import IN_PROGRESS, Entry
from pipeline.terminal import printable

if TYPE_CHECKING:
    from pipeline.engine.run import Engine
    from pipeline.runoutput import RunOutput
    from pipeline.secrets import Redactor

Say = Callable[[str], None]


@contextmanager
def redacting(config: PipelineConfig, name: str, say: Say) -> Iterator[tuple[Say, Redactor]]:
    """``say`` without the environment's secrets or a host's control characters, and the redactor;
    an error escapes without the secrets too."""
    import os

    from pipeline.secrets import redactor_for

    redactor = redactor_for(config.environment(name), os.environ)
    _mask(redactor)
    try:
        yield (lambda line: say(printable(redactor.redact(line)))), redactor
    except PipelineError as exc:
        redactor.redact_error(exc)
        raise


def _mask(redactor: Redactor) -> None:
    """In GitHub Actions, the secrets masked before anything is printed: on stderr, so that the
    output of ``--json`` stays JSON."""
    import os
    import sys

    from pipeline.workflow import in_github_actions, mask_commands

    if in_github_actions(os.environ):
        for command in mask_commands(redactor.known()):
            print(command, file=sys.stderr, flush=True)


@contextmanager
def running(
    config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say, task: str
) -> Iterator[tuple[Engine, RunOutput, Redactor]]:
    """A task that changes units (``rollback``, ``migrate``): its job summary checked writable
    first, the engine with live progress or log groups, and the redactor."""
    import os

    from pipeline.outputs import check_writable, outputs_of
    from pipeline.runoutput import RunOutput

    check_writable(outputs_of(None, os.environ))
    with redacting(config, name, say) as (say, redactor):
        out = RunOutput(say, os.environ, redact=redactor.redact)
        try:
            with out, engine_of(config, name, out.executor(executor), http, out.say, redactor) as engine:
                engine.context.activity = out.activity
                yield engine, out, redactor
        except PipelineError as exc:
            out.refused(f"{task} {name}", redactor.redact_error(exc))
            raise


@contextmanager
def engine_of(
    config: PipelineConfig,
    name: str,
    executor: Executor,
    http: HttpClient | None,
    say: Say,
    redactor: Redactor,
) -> Iterator[Engine]:
    """The environment's engine over its target, connected (no lock taken): ``say`` comes from
    ``redacting``, whose redactor the target applies to what the hosts send."""
    from pipeline.engine.run import Engine
    from pipeline.http import UrllibClient
    from pipeline.orchestrate import new_context
    from pipeline.targets.connect import connected

    env = config.environment(name)
    with connected(env, name, executor, http or UrllibClient(), redactor) as (target, policy):
        yield Engine(name, target, policy, new_context(say))


def serving(states: Sequence[UnitState]) -> Release:
    """The one release every unit serves, or an input error saying they differ."""
    versions = {s.serving.version if s.serving else None for s in states}
    if len(versions) != 1 or None in versions:
        raise InputError(f"the hosts do not serve one known release: {sorted(map(str, versions))}")
    first = states[0].serving
    assert first is not None
    return Release(first.version, first.commit)


HISTORY_MAX = 1000  # entries per host `history --limit` accepts
DAMAGED_SHOWN = 5  # damaged lines listed per host in text (all of them in JSON)


def _field(value: object) -> str:
    """A value read from a host, on one line and without control characters."""
    return printable(str(value), keep_lines=False)


def damaged_lines(state: UnitState) -> list[str]:
    """The text lines about a unit's damaged journal lines, newest last."""
    lines = [f"  DAMAGED journal {d.where()}: {_field(d.reason)} (ignored)" for d in state.damaged_lines]
    more = len(lines) - DAMAGED_SHOWN
    shown = lines[-DAMAGED_SHOWN:] if more > 0 else lines
    head = [f"  DAMAGED journal: {more} more damaged lines (`--json` lists them all)"] if more > 0 else []
    cut = ["  journal: longer than what is read of it; only its end was read"] if state.cut else []
    return cut + head + shown


def render_status(name: str, states: Sequence[UnitState]) -> list[str]:
    """The text of ``invoke status``: per unit, what it serves, its last entry, lock and damage."""
    lines = []
    for state in states:
        serving = _field(state.serving.version) if state.serving else "nothing recorded"
        lines.append(f"{_field(state.name)}: serving {serving}")
        lines += _helm_lines(state)
        if state.damaged:
            lines.append(f"  JOURNAL UNREADABLE: {_field(state.damaged)}")
        last = state.journal[-1] if state.journal else None
        if last is not None:
            words = (last.event, last.version, last.result, "by", last.who, "at", last.at)
            lines.append("  last: " + " ".join(_field(w) for w in words) + _emergency(last))
        if state.lock is not None:
            lines.append(f"  LOCKED by {state.lock.describe()}")
            if state.interrupted():
                lines.append(
                    f"  INTERRUPTED: run {_field(state.lock.run)} never recorded its outcome; "
                    f"`invoke rollback --env {name}` finishes its rollback"
                )
        lines += damaged_lines(state)
        lines += disk.status_lines(state.facts, name)
    return lines


def _helm_lines(state: UnitState) -> list[str]:
    """A Helm release's revision, chart and pods, as ``status`` shows them."""
    helm = state.facts.get("helm")
    if "helm" not in state.facts:
        return []
    if not helm:
        return ["  helm: no release installed"]
    words = [f"revision {helm['revision']}", str(helm["status"]), f"chart {helm['chart']}"]
    words.append(f"app version {helm['app_version']}" if helm.get("app_version") else "")
    lines = ["  helm: " + ", ".join(_field(w) for w in words if w)]
    for pod in state.facts.get("pods") or []:
        reason = f" {pod['reason']}" if pod.get("reason") else ""
        images = ", ".join(pod.get("images") or [])
        lines.append(
            f"  pod {_field(pod['name'])}: {_field(pod['phase'])} ready {_field(pod['ready'])} "
            f"restarts {_field(pod['restarts'])}{_field(reason)} ({_field(images)})"
        )
    return lines


def _damaged_data(state: UnitState) -> list[dict[str, object]]:
    return [{"line": d.line, "reason": d.reason} for d in state.damaged_lines]


def status_data(name: str, states: Sequence[UnitState], now: float | None = None) -> dict[str, object]:
    """``invoke status --json``: the same facts and words as the text."""
    hosts = []
    for state in states:
        lock = state.lock
        locked: dict[str, object] | None = None
        if lock is not None:
            age = lock.age(now)
            locked = {**asdict(lock), "age_seconds": None if age is None else int(age)}
        mine = state.interrupted()
        interrupted = None
        if lock is not None and mine:
            interrupted = {"run": lock.run, "version": mine[-1].version, "phase": mine[-1].phase}
        hosts.append(
            {
                "host": state.name,
                "serving": state.serving.version if state.serving else None,
                "last": asdict(state.journal[-1]) if state.journal else None,
                "locked": locked,
                "interrupted": interrupted,
                "journal_unreadable": state.damaged or None,
                "journal_cut": state.cut,
                "damaged": _damaged_data(state),
                **(
                    {"helm": state.facts.get("helm"), "pods": state.facts.get("pods")}
                    if "helm" in state.facts
                    else {}
                ),
                **disk.status_data(state.facts),
            }
        )
    return {"environment": name, "hosts": hosts}


def status(
    config: PipelineConfig, name: str, executor: Executor, say: Say, as_json: bool = False
) -> ExitCode:
    """What each unit serves, its last journal entry, who holds the lock and for how long; a compose
    host's disk usage too (one more round trip, over the same connection)."""
    from pipeline.environments import ComposeEnvironment
    from pipeline.targets.compose import ComposeTarget

    with (
        redacting(config, name, say) as (say, redactor),
        engine_of(config, name, executor, None, say, redactor) as engine,
    ):
        states = engine.read(strict=False)
        env = config.environment(name)
        if isinstance(env, ComposeEnvironment):
            target = engine.target
            assert isinstance(target, ComposeTarget)
            disk.read_disks(target, states, env.deadlines.read, env.disk.warn_percent)
        if as_json:
            say(json.dumps(status_data(name, states), indent=2))
        else:
            for line in render_status(name, states):
                say(line)
    return ExitCode.OK


def shown_entries(state: UnitState, limit: int) -> list[Entry]:
    """The newest ``limit`` entries of a unit (a run's in_progress records only while it has no outcome)."""
    ended = {e.run for e in state.journal if e.run and e.result != IN_PROGRESS}
    shown = [e for e in state.journal if e.result != IN_PROGRESS or e.run not in ended]
    return shown[-limit:]


def render_history(states: Sequence[UnitState], limit: int) -> list[str]:
    """The text of ``invoke history``: per unit, its newest entries, then its damaged lines."""
    lines = []
    for state in states:
        lines.append(f"{_field(state.name)}:")
        for e in shown_entries(state, limit):
            moves = [r for r in (e.db_before, e.db_after, e.db_end) if r is not None]
            steps = [r for i, r in enumerate(moves) if i == 0 or r != moves[i - 1]]
            db = f" db {'->'.join(steps)}" if steps else ""
            why = f" ({_field(e.reason)})" if e.reason else ""
            phase = f" {_field(e.phase)}" if e.result == IN_PROGRESS and e.phase else ""
            at, event, version, result, who = (_field(v) for v in (e.at, e.event, e.version, e.result, e.who))
            rev = f" rev {_field(e.revision)}" if e.revision else ""
            keys = [
                f"set {e.keys_set}" if e.keys_set else "",
                f"unset {e.keys_unset}" if e.keys_unset else "",
            ]
            rev += f" [{_field(' '.join(k for k in keys if k))}]" if any(keys) else ""
            line = f"  {at} {event:<8} {version:<12} {result:<11} {who}{db}{rev}{phase}{why}"
            lines.append(line + _emergency(e))
        lines += _helm_only(state, limit)
        lines += damaged_lines(state)
    return lines


def _emergency(entry: Entry) -> str:
    """`` EMERGENCY (reason)`` after the line of an emergency deploy's record; else nothing."""
    return f" EMERGENCY ({_field(entry.emergency)})" if entry.emergency else ""


def _helm_only(state: UnitState, limit: int) -> list[str]:
    """Helm revisions the ledger does not name (made outside the pipeline, or by a run killed early),
    among the newest ``limit``; when only the ledger's end was read, only those newer than it."""
    recorded = {e.revision for e in state.journal if e.revision}
    oldest = min((int(r) for r in recorded), default=0) if state.cut else 0
    lines = []
    for r in (state.facts.get("helm_history") or [])[-limit:]:
        if str(r["revision"]) not in recorded and r["revision"] > oldest:
            words = (r["updated"][:19], r["status"], r["app_version"] or "?", r["description"])
            lines.append(
                f"  helm revision {r['revision']} not in the ledger: " + " ".join(_field(w) for w in words)
            )
    return lines


def history_data(name: str, states: Sequence[UnitState], limit: int) -> dict[str, object]:
    """``invoke history --json``: the same entries as the text, as the journal writes them."""
    hosts = [
        {
            "host": state.name,
            "entries": [asdict(e) for e in shown_entries(state, limit)],
            "journal_cut": state.cut,
            "damaged": _damaged_data(state),
            **({"helm_history": state.facts.get("helm_history")} if state.facts else {}),
        }
        for state in states
    ]
    return {"environment": name, "limit": limit, "hosts": hosts}


def check_limit(limit: int | str) -> int:
    """``--limit`` as a number from 1 to HISTORY_MAX, else an input error (before any host is asked)."""
    text = str(limit).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= HISTORY_MAX):
        raise InputError(
            f"--limit must be a whole number from 1 to {HISTORY_MAX}, got {printable(repr(text))}"
        )
    return int(text)


def history(
    config: PipelineConfig, name: str, executor: Executor, say: Say, limit: int | str, as_json: bool = False
) -> ExitCode:
    """The newest journal entries of every unit, and the lines of its journal that are damaged."""
    limit = check_limit(limit)
    with (
        redacting(config, name, say) as (say, redactor),
        engine_of(config, name, executor, None, say, redactor) as engine,
    ):
        states = engine.read()
        if as_json:
            say(json.dumps(history_data(name, states, limit), indent=2))
        else:
            for line in render_history(states, limit):
                say(line)
    return ExitCode.OK


def unlock(config: PipelineConfig, name: str, executor: Executor, say: Say) -> ExitCode:
    """Release a lock left by a cancelled run, saying who held it and since when."""
    with (
        redacting(config, name, say) as (say, redactor),
        engine_of(config, name, executor, None, say, redactor) as engine,
    ):
        states = engine.read(strict=False)
        engine.unlock_held(states)
        for state in states:
            if state.lock is None:
                say(f"{state.name}: not locked")
                continue
            say(f"{state.name}: released the lock held by {state.lock.describe()}")
            if state.interrupted():
                say(f"  its run {state.lock.run} never recorded an outcome: see `invoke status --env {name}`")
    return ExitCode.OK


def health(config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say) -> ExitCode:
    """The health checks against what is deployed; exit 1 when one fails."""
    with (
        redacting(config, name, say) as (say, redactor),
        engine_of(config, name, executor, http, say, redactor) as engine,
    ):
        states = engine.read()
        results = engine.check(serving(states).version, states)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        say(f"{mark} {result.host}: {result.check}: {result.detail} ({result.attempts} tries)")
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.ROLLED_BACK


def migrate(config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say) -> ExitCode:
    """Run the migrations of the release that is deployed, under the deploy lock."""
    if config.environment(name).migrate is None:
        raise InputError(f"pipeline.environments.{name}.migrate is not configured")
    from pipeline.runoutput import publish

    with running(config, name, executor, http, say, "migrate") as (engine, out, redactor):
        states = engine.read()
        engine.refuse_locks(states)
        report = redactor.redact_data(engine.migrate(serving(states), states))
        out.end_group()
        out.say(report.render_text())
        publish(out, report, redactor.redact, "migrate")
    return report.exit_code


def rollback(
    config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say, to: str | None
) -> ExitCode:
    """Finish an interrupted run, or go back to the last release healthy on every unit (or ``to``)."""
    from pipeline.engine.recovery import prepare_rollback
    from pipeline.prune import refuse_pruned

    prefix = config.checklist.tag_prefix
    wanted = to[len(prefix) :] if to and prefix and to.startswith(prefix) else to
    from pipeline.runoutput import publish

    with running(config, name, executor, http, say, "rollback") as (engine, out, redactor):
        states = engine.read()
        journals = {s.name: s.journal for s in states}
        refuse_pruned(journals, {s.name: wanted for s in states}, name)  # before it says what it would do
        run, reason = prepare_rollback(engine, states, wanted)
        refuse_pruned(journals, {u: e.version if e else None for u, e in run.previous.items()}, name)
        report = redactor.redact_data(engine.rollback(run, reason))
        out.end_group()
        out.say(report.render_text())
        publish(out, report, redactor.redact, "rollback")
    if report.debug_log:
        from pipeline.orchestrate import redact_file

        redact_file(report.debug_log, redactor)
    return report.exit_code


def notify(
    config: PipelineConfig, name: str, executor: Executor, http: HttpClient, say: Say, message: str | None
) -> ExitCode:
    """Send a message (default: what each unit serves) to the environment's channels."""
    import os

    from pipeline.notify import Notification, build_notifiers, send_all

    env = config.environment(name)
    with redacting(config, name, say) as (say, redactor):
        key = f"pipeline.environments.{name}.notify"
        notifiers = build_notifiers(env.notify, os.environ, http, key, redactor)
        if not notifiers:
            raise InputError(f"{key} has no channel")
        with engine_of(config, name, executor, http, say, redactor) as engine:
            states = engine.read()
        lines = [f"{s.name}: {s.serving.version if s.serving else 'nothing'}" for s in states]
        versions = {s.serving.version for s in states if s.serving}
        version = versions.pop() if len(versions) == 1 else "mixed versions"
        text = message or "serving: " + "; ".join(lines)
        note = Notification(name, version, "message", text, tuple(lines))
        failed = [f"{channel}: {error}" for channel, error in send_all(notifiers, note, redactor) if error]
        for line in failed:
            say(f"notify failed: {line}")
        if not failed:
            say(f"notified {', '.join(n.name for n in notifiers)}")
    return ExitCode.ROLLED_BACK if failed else ExitCode.OK  # a stage (notify) failed

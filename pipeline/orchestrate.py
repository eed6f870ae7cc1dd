"""``invoke deploy``: from flags and configuration to a finished run, a report and a notification."""

from __future__ import annotations

import getpass
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from pipeline.checklist import CheckResult, run_checks, run_stage_commands
from pipeline.config import Environment, PipelineConfig
from pipeline.engine.run import Context
from pipeline.engine.values import Release
from pipeline.environments import ComposeEnvironment
from pipeline.errors import ChecklistFailed, ConfigError, ExitCode, InputError, PipelineError
from pipeline.executor import Command, Executor
from pipeline.files import read_optional
from pipeline.helmconfig import HelmEnvironment
from pipeline.http import HttpClient
from pipeline.outputs import check_writable, outputs_of, write
from pipeline.runoutput import RunOutput
from pipeline.runreport import RunReport
from pipeline.secrets import Redactor
from pipeline.versions import parse_version

STAGES = ("preflight", "lint", "test", "migrate", "health", "notify")


@dataclass(frozen=True)
class DeployRequest:
    """What the caller asked for."""

    environment: str
    version: str | None = None
    skip: tuple[str, ...] = ()
    dry_run: bool = False
    report_file: str | None = None
    lock_wait: float = 0.0
    emergency: str = ""  # the reason of an emergency deploy (``--emergency --reason``); "" otherwise


def validate_skip(skip: Sequence[str]) -> tuple[str, ...]:
    """``--skip`` names stages that may be skipped."""
    for stage in skip:
        if stage not in STAGES:
            raise InputError(f"--skip: {stage!r} is not one of {', '.join(STAGES)}")
    return tuple(skip)


def resolve_release(
    executor: Executor,
    root: Path,
    config: PipelineConfig,
    env: Environment,
    version: str | None,
    key: str = "pipeline.environments.<env>",
) -> Release:
    """The version and commit to deploy: ``--version`` names a release tag, else VERSION at HEAD."""
    prefix = config.checklist.tag_prefix
    if version:
        bare = version[len(prefix) :] if prefix and version.startswith(prefix) else version
        parsed = str(parse_version(bare, "--version"))
        ref = f"{prefix}{parsed}"
    else:
        text = read_optional(root / config.checklist.version_file, config.checklist.version_file, root=root)
        if text is None:
            raise InputError(f"{config.checklist.version_file}: file not found; pass --version")
        parsed, ref = str(parse_version(text, config.checklist.version_file)), "HEAD"
    found = executor.run(Command(("git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"), str(root)))
    if not found.ok:
        raise InputError(f"--version: no tag {ref} in this repository (git fetch --tags?)")
    commit = found.stdout.strip()
    if isinstance(env, HelmEnvironment):
        return Release(parsed, commit)
    compose_text = _file_at(executor, root, commit, env.compose_file, f"{key}.compose_file")
    return Release(parsed, commit if env.source == "git" else None, compose_text)


def export_files(
    executor: Executor, root: Path, env: HelmEnvironment, commit: str, key: str, into: Path
) -> None:
    """The chart (a folder of the repository) and the values files as of the release's commit, into
    ``into``: a release deploys its own chart, never the working tree's."""
    import tarfile

    paths = [*([env.chart] if env.local_chart else []), *env.values]
    for path, what in [
        *(([(env.chart, "chart")]) if env.local_chart else []),
        *((v, "values") for v in env.values),
    ]:
        kind = "Chart.yaml" if what == "chart" else ""
        probe = f"{commit}:./{path}/{kind}" if kind else f"{commit}:./{path}"
        if not executor.run(Command(("git", "cat-file", "-e", probe), str(root))).ok:
            shown = f"{path}/Chart.yaml" if kind else path
            raise ConfigError(f"{key}.{what}: {shown} is not in the release (commit {commit[:10]})")
    if not paths:
        return
    archive = into / "release.tar"
    made = executor.run(
        Command(("git", "archive", "--format=tar", "-o", str(archive), commit, "--", *paths), str(root))
    )
    if not made.ok:
        raise InputError(f"git archive of the release's chart failed: {made.stderr.strip()}")
    with tarfile.open(archive) as tar:  # our own `git archive`; the filter where Python has it
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into / "files", filter="data")
        else:  # pragma: no cover - Python before 3.10.12/3.11.4
            tar.extractall(into / "files")
    archive.unlink()


def _file_at(executor: Executor, root: Path, commit: str, path: str, key: str) -> str:
    shown = executor.run(Command(("git", "show", f"{commit}:./{path}"), str(root)))
    if not shown.ok:
        raise ConfigError(f"{key}: {path} is not in the release (commit {commit[:10]})")
    return shown.stdout


def check_services(env: Environment, name: str, compose_text: str) -> None:
    """Services named by migrate and health checks exist in the release's compose file."""
    import yaml

    if isinstance(env, HelmEnvironment):
        return
    try:
        data = yaml.safe_load(compose_text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{env.compose_file}: not valid YAML ({exc})") from None
    services = sorted((data.get("services") or {}) if isinstance(data, dict) else {})
    named = [("migrate.service", env.migrate.service)] if env.migrate else []
    named += [(f"health[{i}].service", c.service) for i, c in enumerate(env.health) if c.service]
    named += [("backup.service", env.backup.service)] if env.backup and env.backup.service else []
    for key, service in named:
        if service not in services:
            raise ConfigError(
                f"pipeline.environments.{name}.{key}: {service!r} is not a service of "
                f"{env.compose_file} (services: {', '.join(services) or 'none'})"
            )


def without_skipped(env: Environment, skip: Sequence[str]) -> Environment:
    """The environment with skipped stages switched off."""
    changes: dict[str, object] = {}
    if "migrate" in skip:
        changes["migrate"] = None
    if "health" in skip:
        changes["health"] = ()
    return msgspec.structs.replace(env, **changes) if changes else env


def local_stages(
    executor: Executor,
    root: Path,
    config: PipelineConfig,
    env: Environment,
    request: DeployRequest,
    redact: Callable[[str], str] = str,
) -> list[CheckResult]:
    """Preflight, lint and test on the runner; any failure stops the deploy before it touches a host
    (an emergency deploy waives the failures of the items a hotfix cannot meet yet).

    ``redact`` is applied to what the lint and test commands printed."""
    results = []
    if env.preflight and "preflight" not in request.skip:
        results += run_checks(executor, root, config.checklist)
    if not request.dry_run:
        for stage in ("lint", "test"):
            if stage not in request.skip:
                commands = getattr(config, stage)
                results.append(run_stage_commands(executor, root, stage, commands, redact=redact))
    message = "the checks before a deploy failed"
    if request.emergency:
        from pipeline.emergency import WAIVABLE, waive

        results = waive(results)
        message += f" (an emergency waives only {', '.join(WAIVABLE)})"
    if any(r.failed for r in results):
        raise ChecklistFailed(message, tuple(results))
    return results


def who(env: Mapping[str, str]) -> str:
    """Who runs the deploy: the GitHub actor in CI, else the local user."""
    if env.get("GITHUB_ACTOR"):
        return env["GITHUB_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def new_context(say: Callable[[str], None]) -> Context:
    """Who runs, the CI run's URL, and a debug log for the traceback of an internal error."""
    import socket
    import tempfile
    import uuid

    run_id = uuid.uuid4().hex[:12]
    debug_log = os.path.join(tempfile.gettempdir(), f"pipeline-{run_id}.log")
    return Context(
        who=who(os.environ), run_url=run_url(os.environ), say=say, debug_log=debug_log,
        runner=socket.gethostname(), run_id=run_id,
    )  # fmt: skip


def run_url(env: Mapping[str, str]) -> str:
    """The CI run's URL, when there is one."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    if all(env.get(k) for k in keys):
        return f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return ""


def deploy(
    executor: Executor,
    http: HttpClient,
    root: Path,
    config: PipelineConfig,
    request: DeployRequest,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
    sleep: Callable[[float], None] | None = None,
) -> tuple[ExitCode, RunReport | None]:
    """The whole pipeline for one environment; returns the exit code and the run report.

    Secrets (notify credentials, a password in the repository URL) are redacted from every line
    printed or written, and from the message of an error that escapes.
    """
    redactor = Redactor()
    check_writable(outputs_of(request.report_file, os.environ))
    out = RunOutput(lambda line: say(redactor.redact(line)), os.environ, sys.stdout, redactor.redact)
    try:
        with out:
            return _deploy(executor, http, root, config, request, out, sleep, redactor)
    except PipelineError as exc:
        redactor.redact_error(exc)
        out.refused(f"deploy {request.environment}", exc)
        raise


def _deploy(
    executor: Executor,
    http: HttpClient,
    root: Path,
    config: PipelineConfig,
    request: DeployRequest,
    out: RunOutput,
    sleep: Callable[[float], None] | None,
    redactor: Redactor,
) -> tuple[ExitCode, RunReport | None]:
    from pipeline.notify import build_notifiers
    from pipeline.secrets import redactor_for

    say = out.say
    env = without_skipped(config.environment(request.environment), request.skip)
    key = f"pipeline.environments.{request.environment}"
    redactor_for(env, os.environ, redactor)
    notifiers = (
        []
        if "notify" in request.skip
        else build_notifiers(env.notify, os.environ, http, f"{key}.notify", redactor)
    )
    out.mask(redactor.known())
    release = resolve_release(executor, root, config, env, request.version, key)
    check_services(env, request.environment, release.compose_text)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pipeline-release-") as folder:
        if isinstance(env, HelmEnvironment):
            _import_in_background("kubernetes.config")  # 0.2-0.5 s, beside the local stages
            assert release.commit is not None
            export_files(executor, root, env, release.commit, key, Path(folder))
            release = replace(release, files=str(Path(folder) / "files"))
        with out.watching("checks", "runner"):
            checked = local_stages(out.executor(executor), root, config, env, request, redactor.redact)
        if request.emergency:
            from pipeline import emergency

            emergency.announce(request, release.version, checked, say)
        done = _run_engine(executor, http, env, request, release, out, sleep, redactor, notifiers)
    if done is None:
        return ExitCode.OK, None
    report, context = done
    if request.emergency:
        from pipeline import emergency

        emergency.mark(executor, root, config, request, release, report, checked, context, redactor.redact)
    # Redacted before it is rendered: a renderer may cut (an excerpt) or escape (a table's `|`) a
    # secret into a form the redactor no longer finds.
    report = redactor.redact_data(report)
    if notifiers:
        from pipeline.notifyrun import tell

        report.notified = tell(
            notifiers, executor, root, config, release, report, tagged=bool(request.version),
            who=context.who, run_url=context.run_url, redactor=redactor, sleep=sleep,
        )  # fmt: skip
    say(report.render_text())
    for channel, error in report.notified:
        if error:
            say(f"warning: notify {channel} failed: {error}")
    out.annotate(report)
    _write_outputs(report, request, redactor, say)
    return report.exit_code, report


def _import_in_background(module: str) -> None:
    """Start importing a module in a thread: the local stages mostly wait on git and lint, and the
    import lock makes the engine's own import wait for this one to finish (never twice)."""
    import importlib
    import threading

    def load() -> None:
        with suppress(Exception):  # the engine's own import reports what is wrong
            importlib.import_module(module)

    threading.Thread(target=load, name=f"import {module}", daemon=True).start()


def _run_engine(
    executor: Executor,
    http: HttpClient,
    env: Environment,
    request: DeployRequest,
    release: Release,
    out: RunOutput,
    sleep: Callable[[float], None] | None,
    redactor: Redactor,
    notifiers: Sequence[object],
) -> tuple[RunReport, Context] | None:
    """Read the units, then the plan (``--dry-run``: None) or the deploy's report."""
    from pipeline.engine.plan import render_plan
    from pipeline.engine.run import Engine
    from pipeline.targets.connect import connected

    say = out.say
    context = new_context(say)
    context.emergency = request.emergency
    context.activity = out.activity
    executor = out.executor(executor)
    with connected(env, request.environment, executor, http, redactor, sleep or time.sleep) as (
        target,
        policy,
    ):
        engine = Engine(request.environment, target, policy, context)
        started = time.monotonic()
        states = engine.wait_for_locks(request.lock_wait) if request.lock_wait else engine.read()
        read_seconds = time.monotonic() - started
        engine.refuse_locks(states)
        if request.dry_run:
            where = "the release" if isinstance(env, HelmEnvironment) else "any host"
            say(f"dry run: nothing is changed on {where}, and no notification is sent")
            revisions = {}
            if isinstance(env, ComposeEnvironment) and env.migrate and env.migrate.run == "exec":
                # Read-only, through the release each database's host serves now.
                for unit in target.databases():
                    serving = next(s.serving for s in states if s.name == unit)
                    if serving is not None:
                        with suppress(PipelineError):
                            call = engine.call("read", unit, shielded=True)
                            revisions[unit] = target.revision(
                                unit, Release(serving.version, serving.commit), call
                            )
            plan = render_plan(request.environment, target, policy, release, states, revisions)
            say(redactor.redact("\n".join(plan)))
            if notifiers:
                say("notify: " + ", ".join(getattr(n, "name", "?") for n in notifiers))
            return None
        report = engine.deploy(release, states)
        out.end_group()
        report.timings["read_hosts"] = round(read_seconds, 3)
    return report, context


def _write_outputs(
    report: RunReport, request: DeployRequest, redactor: Redactor, say: Callable[[str], None]
) -> None:
    """The report file and the job summary; a failure to write is a warning, not a new outcome."""
    files = outputs_of(request.report_file, os.environ)
    texts = {"--report": report.to_json() + "\n", "$GITHUB_STEP_SUMMARY": report.render_markdown()}
    for what, path in files.items():
        warning = write(what, path, redactor.redact(texts[what]), append=what.startswith("$"))
        if warning:
            say(warning)
    if report.debug_log:
        redact_file(report.debug_log, redactor)


def redact_file(path: str, redactor: Redactor) -> None:
    """Rewrite a file we wrote (the debug log's traceback) without the secrets it may hold."""
    with suppress(OSError):
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        Path(path).write_text(redactor.redact(text), encoding="utf-8")

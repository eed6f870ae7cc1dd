"""The Invoke tasks. A project's ``tasks.py`` needs one line: ``from pipeline.tasks import ns``.

Only invoke and the small config module are imported here, so ``invoke --list`` stays fast;
each task imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from pipeline import interrupts, invokeguard
from pipeline.defaults import DEFAULTS
from pipeline.errors import ChecklistFailed, ExitCode, InputError, PipelineError
from pipeline.terminal import printable

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.executor import Executor
    from pipeline.http import HttpClient


invokeguard.install()


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Our errors become one line on stderr and their exit code; never a traceback.

    A signal before anything changed exits 130 (SIGINT) or 143 (SIGTERM); a bug outside the engine
    (which rolls back on its own) leaves its traceback in a file and exits 70.
    """
    try:
        with interrupts.handled():
            yield
    except ChecklistFailed as exc:
        if exc.results:
            from pipeline import report

            print(report.render_text("checks", exc.results), file=sys.stderr)  # type: ignore[arg-type]
        raise Exit(f"error: {_shown(exc)}", code=int(exc.exit_code)) from None
    except PipelineError as exc:
        raise Exit(f"error: {_shown(exc)}", code=int(exc.exit_code)) from None
    except Exit:
        raise
    except interrupts.Interrupted as exc:
        raise Exit(f"interrupted by {exc}: nothing was changed", code=exc.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted by SIGINT: nothing was changed", code=int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:
        raise Exit(_internal_error(exc), code=int(ExitCode.INTERNAL_ERROR)) from None


def _shown(exc: Exception) -> str:
    """An error's message as printed: credentials in any URL hidden, control characters escaped."""
    from pipeline.secrets import Redactor

    return printable(Redactor().redact(str(exc)))


def _internal_error(exc: Exception) -> str:
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile("w", prefix="pipeline-crash-", suffix=".log", delete=False) as log:
        traceback.print_exception(exc, file=log)
    return (
        f"error: internal error ({type(exc).__name__}), a bug in invoke-pipeline: the traceback is in "
        f"{log.name}; nothing was changed unless a report above says otherwise"
    )


def _required(task_name: str, **values: str | None) -> None:
    """A required flag that was not given: exit 2 with the task's usage line."""
    for name, value in values.items():
        if value is None or value == "":
            line = invokeguard.usage(invokeguard.program_name(), task_name, ns.tasks[task_name].body)
            raise InputError(f"{task_name}: --{name} is required\n{line}")


def _say(line: str) -> None:
    """A line on stdout, flushed, with a host's control characters escaped."""
    print(printable(line), flush=True)


def _exit_with(code: int) -> None:
    """The operation's exit code as the task's exit status (0: the task returns)."""
    if code:
        raise Exit(code=int(code))


def _project(c: Context) -> Path:
    """The project's directory: where tasks.py (and invoke.yaml) live, else the current one."""
    prefix = getattr(c.config, "_project_prefix", None)
    return Path(prefix) if prefix else Path.cwd()


def _config(c: Context) -> PipelineConfig:
    """The validated configuration of every level, ``INVOKE_PIPELINE_*`` variables included."""
    from pipeline.config import build_config
    from pipeline.configlayers import Layers

    files = list(invokeguard.layers(c.config))
    project = getattr(c.config, "_project_path", None)
    layers = Layers(DEFAULTS, files[-1][0] if files else invokeguard.shown(project or "invoke.yaml"))
    for name, section in files:
        layers.add(name, section)
    programmatic = c.config.get("pipeline")  # set by code (or by Invoke, were the guard not installed)
    if programmatic:
        layers.add(layers.default_source, programmatic)
    return build_config(layers, os.environ)


@task(
    help={
        "with-tests": "Also run the configured lint and test commands.",
        "json": "Print a machine-readable JSON report instead of text.",
    }
)
def preflight(c: Context, with_tests: bool = False, json: bool = False) -> None:
    """Run the pre-deployment checklist: every item with its verdict; exit 3 if any fails."""
    with _reported_errors():
        from pipeline import report
        from pipeline.checklist import run_checklist
        from pipeline.executor import LocalExecutor

        config = _config(c)
        if report.in_github_actions(os.environ):
            from pipeline.outputs import check_writable, outputs_of

            check_writable(outputs_of(None, os.environ))
        results = run_checklist(LocalExecutor(), _project(c), config, with_tests)
        if json:
            print(report.render_json("preflight", results))
        else:
            from pipeline.terminal import colour_wanted, coloured_verdicts

            text = printable(
                report.render_text("preflight", results)
            )  # a commit or changelog line may hold ESC
            print(coloured_verdicts(text) if colour_wanted(sys.stdout, os.environ) else text)
        if report.in_github_actions(os.environ):
            stream = sys.stderr if json else sys.stdout
            for line in report.github_annotations("preflight", results):
                print(line, file=stream)
            summary = os.environ.get("GITHUB_STEP_SUMMARY")
            if summary:
                from pipeline.outputs import write

                warning = write(
                    "$GITHUB_STEP_SUMMARY", summary, report.github_summary("preflight", results), True
                )
                if warning:
                    print(warning, file=sys.stderr)
        code = report.exit_code(results)
        _exit_with(code)


@task(
    help={
        "bump": "major, minor, patch or auto (from the commits); omit to tag VERSION as it is.",
        "pre": "Make a pre-release of the bumped version, e.g. --pre rc gives 1.3.0-rc.1.",
        "push": "Push the release commit and the tag to the configured remote.",
        "dry-run": "Print every change and command, and touch nothing.",
        "with-tests": "Run the configured lint and test commands first.",
    }
)
def release(
    c: Context,
    bump: str | None = None,
    pre: str | None = None,
    push: bool = False,
    dry_run: bool = False,
    with_tests: bool = False,
) -> None:
    """Release: write VERSION and CHANGELOG.md, commit, tag (annotated) and optionally push."""
    with _reported_errors():
        from dataclasses import replace
        from datetime import date

        from pipeline.executor import LocalExecutor
        from pipeline.release import apply_release, plan_release, validate_request

        request = replace(validate_request(bump, pre), push=push, with_tests=with_tests)
        config = _config(c)
        executor = LocalExecutor()
        plan, _ = plan_release(executor, _project(c), config, request, date.today())
        if dry_run:
            print("dry run: nothing is written, committed, tagged or pushed")
            print(plan.describe())
            return
        if plan.already and not plan.commands:
            print(plan.describe())
            return
        interrupts.touched()  # from here a signal waits: a release is made whole, or not at all
        apply_release(executor, _project(c), plan)
        print(plan.describe().replace("run   ", "ran   "))
        if interrupts.deferred():
            print(
                f"note: {interrupts.signal_name(interrupts.deferred())} arrived while the release was made;"
                " it was finished first"
            )
        print(f"released {plan.tag}" if not plan.already else f"pushed {plan.tag}")


def _stage(c: Context, stage: str) -> None:
    with _reported_errors():
        from pipeline.checklist import run_stage_commands
        from pipeline.executor import LocalExecutor
        from pipeline.secrets import redactor_for

        config = _config(c)
        commands: tuple[str, ...] = getattr(config, stage)
        redact = redactor_for(config, os.environ).redact

        def echo(line: str, is_err: bool) -> None:
            print(redact(line), file=sys.stderr if is_err else sys.stdout, flush=True)

        result = run_stage_commands(LocalExecutor(), _project(c), stage, commands, redact=redact, echo=echo)
        print(f"{stage}: {result.reason}")
        if result.failed:
            raise Exit(code=3)


@task
def lint(c: Context) -> None:
    """Run the configured lint commands (pipeline.lint), streaming their output."""
    _stage(c, "lint")


@task
def test(c: Context) -> None:
    """Run the configured test commands (pipeline.test), streaming their output."""
    _stage(c, "test")


def _seams() -> tuple[Executor, HttpClient]:
    from pipeline.executor import LocalExecutor
    from pipeline.http import UrllibClient

    return LocalExecutor(), UrllibClient()


@task(
    positional=[],
    iterable=["skip"],
    help={
        "env": "The environment (a key of pipeline.environments).",
        "version": "The release to deploy (1.2.0 or v1.2.0: a tag); default VERSION at HEAD.",
        "skip": "A stage to skip: preflight, lint, test, migrate, health or notify (repeatable).",
        "dry-run": "Print every command on every host, and the rollback plan; change nothing.",
        "report": "Write the run report as JSON to this file.",
        "lock-wait": "Wait up to this many seconds for another deploy's lock (default: refuse at once).",
        "emergency": "A hotfix that cannot wait: waive the checklist items it cannot meet yet (+ --reason).",
        "reason": "Why this emergency deploy cannot wait (one line, at most 200 characters).",
    },
)
def deploy(
    c: Context,
    env: str,
    version: str | None = None,
    skip: list[str] | None = None,
    dry_run: bool = False,
    report: str | None = None,
    lock_wait: float = 0.0,
    emergency: bool = False,
    reason: str | None = None,
) -> None:
    """Deploy: preflight, lint, test, deploy, migrate, health-check, notify; roll back on failure."""
    with _reported_errors():
        _required("deploy", env=env)
        from pipeline.orchestrate import DeployRequest, validate_skip
        from pipeline.orchestrate import deploy as run_deploy

        if not 0 <= lock_wait <= 86400:
            from pipeline.errors import InputError

            raise InputError(f"--lock-wait: {lock_wait:g} must be between 0 and 86400 seconds")
        from pipeline.emergency import check_skip, reason_of

        why, skipped = reason_of(emergency, reason), validate_skip(skip or [])
        check_skip(why, skipped)
        request = DeployRequest(env, version, skipped, dry_run, report, lock_wait, why)
        executor, http = _seams()
        code, _ = run_deploy(executor, http, _project(c), _config(c), request, _say)
        _exit_with(code)


@task(positional=[], help={"env": "The environment.", "json": "Print JSON instead of text."})
def status(c: Context, env: str, json: bool = False) -> None:
    """What each host serves, its last deploy, who holds the lock, and its disk usage."""
    with _reported_errors():
        _required("status", env=env)
        from pipeline import operate

        operate.status(_config(c), env, _seams()[0], print, as_json=json)


@task(
    positional=[],
    help={
        "env": "The environment.",
        "limit": "How many entries per host, 1 to 1000 (default 20).",
        "json": "Print JSON instead of text.",
    },
)
def history(c: Context, env: str, limit: str = "20", json: bool = False) -> None:
    """The release journal of each host: deploys and rollbacks, newest last."""
    with _reported_errors():
        _required("history", env=env)
        from pipeline import operate

        operate.history(_config(c), env, _seams()[0], print, operate.check_limit(limit), as_json=json)


@task(
    positional=[],
    help={
        "env": "The environment.",
        "service": "Only this compose service, or this Helm workload or container.",
        "tail": "Lines per container from the end, 0 to 10000 (default 100; with --since, all since).",
        "since": "Only lines since: a duration (30s, 10m, 2h, 1h30m) or an RFC 3339 time.",
        "follow": "Keep printing new lines until Ctrl-C.",
        "timestamps": "Prefix each line with the time it was logged.",
    },
)
def logs(
    c: Context,
    env: str,
    service: str | None = None,
    tail: str | None = None,
    since: str | None = None,
    follow: bool = False,
    timestamps: bool = False,
) -> None:
    """The logs of every host or pod at once, each line prefixed with where it came from."""
    with _reported_errors():
        _required("logs", env=env)
        from pipeline import logs as view

        request = view.request_of(service, tail, since, follow, timestamps)
        code = view.show_logs(_config(c), env, _seams()[0], request)
        if code:
            raise Exit(code=code)


@task(positional=[], help={"env": "The environment."})
def unlock(c: Context, env: str) -> None:
    """Release a deploy lock left by a cancelled run, showing who held it and since when."""
    with _reported_errors():
        _required("unlock", env=env)
        from pipeline import operate

        operate.unlock(_config(c), env, _seams()[0], print)


@task(positional=[], help={"env": "The environment."})
def health(c: Context, env: str) -> None:
    """Run the health checks against what is deployed (exit 1 when one fails)."""
    with _reported_errors():
        _required("health", env=env)
        from pipeline import operate

        executor, http = _seams()
        code = operate.health(_config(c), env, executor, http, print)
        _exit_with(code)


@task(positional=[], help={"env": "The environment."})
def migrate(c: Context, env: str) -> None:
    """Run the migrations of the deployed release, under the deploy lock."""
    with _reported_errors():
        _required("migrate", env=env)
        from pipeline import operate

        executor, http = _seams()
        code = operate.migrate(_config(c), env, executor, http, print)
        _exit_with(code)


@task(
    positional=[],
    help={
        "env": "The environment.",
        "to": "The version to go back to (default: the last healthy everywhere).",
    },
)
def rollback(c: Context, env: str, to: str | None = None) -> None:
    """Finish an interrupted deploy, or go back to the last release healthy on every host (or --to)."""
    with _reported_errors():
        _required("rollback", env=env)
        from pipeline import operate

        executor, http = _seams()
        code = operate.rollback(_config(c), env, executor, http, print, to)
        _exit_with(code)


@task(
    positional=[],
    help={
        "env": "The environment.",
        "keep": "Releases healthy on every host kept besides the serving one (default: prune.keep).",
        "dry-run": "List what would be removed and what stays and why; remove nothing.",
    },
)
def prune(c: Context, env: str, keep: str | None = None, dry_run: bool = False) -> None:
    """Remove old images and release files from the hosts, never what a rollback may need."""
    with _reported_errors():
        _required("prune", env=env)
        from pipeline import pruning

        code = pruning.prune(_config(c), env, _seams()[0], _say, keep, dry_run)
        _exit_with(code)


@task(
    positional=[],
    help={"env": "The environment.", "message": "The text to send (default: what each host serves)."},
)
def notify(c: Context, env: str, message: str | None = None) -> None:
    """Send a message to the environment's notify channels (Slack, Telegram, webhook)."""
    with _reported_errors():
        _required("notify", env=env)
        from pipeline import operate

        executor, http = _seams()
        code = operate.notify(_config(c), env, executor, http, print, message)
        _exit_with(code)


@task(
    positional=[],
    iterable=["set", "unset"],
    help={
        "env": "The environment.",
        "set": "KEY=VALUE to write in the hosts' variables file (repeatable); the value is a secret.",
        "unset": "KEY to remove from it (repeatable).",
        "from-file": "A local file of KEY=VALUE lines to set (comments and blank lines allowed).",
        "dry-run": "Print which keys would change on each host, the services, the commands; change nothing.",
    },
)
def setenv(
    c: Context,
    env: str,
    set: list[str] | None = None,
    unset: list[str] | None = None,
    from_file: str | None = None,
    dry_run: bool = False,
) -> None:
    """Change the hosts' .env: back up, write, recreate what changed, check health; put it back on failure."""
    with _reported_errors():
        _required("setenv", env=env)
        from pipeline.setenv import SetenvRequest
        from pipeline.setenv import setenv as run_setenv

        request = SetenvRequest(env, tuple(set or ()), tuple(unset or ()), from_file, dry_run)
        executor, http = _seams()
        code = run_setenv(_config(c), request, executor, http, _say)
        _exit_with(code)


@task(positional=[], help={"env": "The environment.", "list": "List the backups kept on each database host."})
def backup(c: Context, env: str, list_: bool = False) -> None:
    """Back up the environment's databases now, under the deploy lock (or --list the backups kept)."""
    with _reported_errors():
        _required("backup", env=env)
        from pipeline import backupops

        code = backupops.backup(_config(c), env, _seams()[0], _say, list_only=list_)
        _exit_with(code)


@task(
    positional=[],
    help={
        "env": "The environment.",
        "from": "The backup to load, e.g. 20261201T041500Z-2.0.0-0003.sql.gz (see backup --list).",
        "dry-run": "Print the commands, and touch nothing.",
    },
)
def restore(c: Context, env: str, from_: str | None = None, dry_run: bool = False) -> None:
    """Load a database backup (--from NAME) under the deploy lock; exit 4 when the restore fails."""
    with _reported_errors():
        _required("restore", env=env, **{"from": from_})
        from pipeline import backupops

        code = backupops.restore(_config(c), env, _seams()[0], _say, from_, dry_run)
        _exit_with(code)


ns = Collection(
    preflight,
    release,
    lint,
    test,
    deploy,
    migrate,
    health,
    notify,
    rollback,
    status,
    history,
    unlock,
    setenv,
    logs,
    prune,
    backup,
    restore,
)

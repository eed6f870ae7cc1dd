"""The Invoke tasks. A project's ``tasks.py`` needs one line: ``from pipeline.tasks import ns``.

Only invoke and the small config module are imported here, so ``invoke --list`` stays fast;
each task imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from pipeline.defaults import DEFAULTS
from pipeline.errors import ChecklistFailed, PipelineError

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Our errors become one line on stderr and their exit code; never a traceback."""
    try:
        yield
    except ChecklistFailed as exc:
        if exc.results:
            from pipeline import report

            print(report.render_text("release", exc.results), file=sys.stderr)  # type: ignore[arg-type]
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None
    except PipelineError as exc:
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None


def _project(c: Context) -> Path:
    """The project's directory: where tasks.py (and invoke.yaml) live, else the current one."""
    prefix = getattr(c.config, "_project_prefix", None)
    return Path(prefix) if prefix else Path.cwd()


def _config(c: Context) -> PipelineConfig:
    from pipeline.config import load_config

    source = getattr(c.config, "_project_path", None) or "invoke.yaml"
    with suppress(ValueError):  # another drive on Windows
        source = os.path.relpath(source)
    return load_config(c.config.get("pipeline"), source=source)


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
        results = run_checklist(LocalExecutor(), _project(c), config, with_tests)
        print(
            report.render_json("preflight", results)
            if json
            else report.render_text("preflight", results)
        )
        if report.in_github_actions(os.environ):
            stream = sys.stderr if json else sys.stdout
            for line in report.github_annotations("preflight", results):
                print(line, file=stream)
            summary = os.environ.get("GITHUB_STEP_SUMMARY")
            if summary:
                with open(summary, "a", encoding="utf-8") as handle:
                    handle.write(report.github_summary("preflight", results))
        code = report.exit_code(results)
        if code:
            raise Exit(code=int(code))


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
        apply_release(executor, _project(c), plan)
        print(plan.describe().replace("run   ", "ran   "))
        print(f"released {plan.tag}" if not plan.already else f"pushed {plan.tag}")


def _stage(c: Context, stage: str) -> None:
    with _reported_errors():
        from pipeline.checklist import run_stage_commands
        from pipeline.executor import LocalExecutor

        config = _config(c)
        commands: tuple[str, ...] = getattr(config, stage)
        result = run_stage_commands(LocalExecutor(), _project(c), stage, commands, capture=False)
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


ns = Collection(preflight, release, lint, test)
ns.configure({"pipeline": DEFAULTS})

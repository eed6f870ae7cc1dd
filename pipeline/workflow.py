"""GitHub Actions workflow commands: masks for secrets, log groups, and annotations of a run.

Pure builders: each returns the lines to print (see
https://docs.github.com/actions/reference/workflow-commands-for-github-actions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pipeline.secrets import MIN_LENGTH

if TYPE_CHECKING:
    from pipeline.runreport import RunReport

# An annotation's message is cut: the job summary and the log hold the whole story.
MESSAGE_LIMIT = 4000


def in_github_actions(env: Mapping[str, str]) -> bool:
    """Whether we run inside a GitHub Actions job."""
    return env.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    """A command's message: ``%``, CR and LF escaped, so it stays one line and reads back as given."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's property value (``title=``): as data, and ``:`` and ``,`` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def mask_commands(values: Iterable[str]) -> list[str]:
    """``::add-mask::`` for each line of each secret value, longest first.

    Every line of a multi-line secret is masked on its own (the runner masks line by line), and no
    command carries a newline, which would print what follows it in clear. Empty, blank and short
    lines (which would mask every ``}`` of the log) are left out, as the redactor leaves them.
    """
    lines = {line for value in values for line in value.splitlines()}
    kept = sorted((line for line in lines if len(line.strip()) >= MIN_LENGTH), key=lambda v: (-len(v), v))
    return [f"::add-mask::{escape_data(line)}" for line in kept]


def group(title: str) -> str:
    """Open a log group (groups do not nest: open the next only after ``endgroup``)."""
    return f"::group::{escape_data(' '.join(title.split()))}"


def endgroup() -> str:
    """Close the open log group."""
    return "::endgroup::"


def annotation(level: str, title: str, message: str) -> str:
    """``::error`` / ``::warning`` / ``::notice`` with a title; the message cut to MESSAGE_LIMIT."""
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    return f"::{level} title={escape_property(title)}::{escape_data(message)}"


def run_annotations(report: RunReport, task: str = "deploy") -> list[str]:
    """The run's failures as errors (each failed stage, a failed rollback), its rollback as a warning."""
    where = f"{task} {report.environment}"
    found = [
        annotation("error", f"{where}: {stage.name} failed", stage.detail or report.summary())
        for stage in report.stages
        if stage.status == "failed"
    ]
    failed_parts = [p for p in report.rollback if p.status == "failed"]
    for part in failed_parts:
        found.append(annotation("error", f"{where}: rollback {part.name} failed on {part.host}", part.detail))
    if not found and report.outcome not in ("deployed", "noop", "restored", "migrated", "rolled_back"):
        found.append(annotation("error", f"{where}: {report.outcome or 'failed'}", report.summary()))
    if report.rollback and not failed_parts:
        parts = "; ".join(f"{p.name} {p.host}: ok" for p in report.rollback)
        found.append(annotation("warning", f"{where}: rolled back", f"{report.summary()}\n{parts}"))
    elif report.rollback:
        found.append(annotation("error", f"{where}: the rollback failed", report.summary()))
    return found


def refusal_annotations(title: str, exc: BaseException) -> list[str]:
    """A task that stopped before its run (bad input, a held lock, failed checks) as errors: one per
    failed check when the checks failed, else one with the error's message."""
    from pipeline.checklist import CheckResult
    from pipeline.report import github_annotations

    results = [r for r in getattr(exc, "results", ()) if isinstance(r, CheckResult)]
    if results:
        return github_annotations(title, results)
    return [annotation("error", title, str(exc))]

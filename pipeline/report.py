"""Render checklist results: for people, as JSON, and as GitHub Actions annotations and summary."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pipeline.checklist import CheckResult
from pipeline.errors import ExitCode
from pipeline.workflow import escape_data, escape_property
from pipeline.workflow import in_github_actions as in_github_actions  # where the tasks find it

_MARK = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}
# The verdict in JSON and the job summary: the text's own word.
_WORD = {"pass": "ok", "fail": "fail", "skip": "skip"}


def exit_code(results: Sequence[CheckResult]) -> ExitCode:
    """0 when nothing failed, else the checklist's exit code."""
    return ExitCode.CHECKLIST_FAILED if any(r.failed for r in results) else ExitCode.OK


def summary_line(title: str, results: Sequence[CheckResult]) -> str:
    """``preflight: 5 passed, 1 failed, 1 skipped``."""
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    return f"{title}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"


def render_text(title: str, results: Sequence[CheckResult]) -> str:
    """One line per check with its verdict and reason; particulars indented beneath failures."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        lines.append(f"{_MARK[r.status]} {r.name.ljust(width)}  {r.reason}")
        if r.status == "fail":
            lines.extend(f"       {d}" for d in r.details)
    lines.append(summary_line(title, results))
    return "\n".join(lines)


def render_json(title: str, results: Sequence[CheckResult]) -> str:
    """The machine-readable report."""
    return json.dumps(
        {
            "task": title,
            "ok": not any(r.failed for r in results),
            "exit_code": int(exit_code(results)),
            "checks": [
                {
                    "name": r.name,
                    "status": _WORD[r.status],
                    "reason": r.reason,
                    "details": list(r.details),
                    "locations": [
                        {"file": loc.file, "line": loc.line, "message": loc.message} for loc in r.locations
                    ],
                }
                for r in results
            ],
        },
        indent=2,
    )


def github_annotations(title: str, results: Sequence[CheckResult]) -> list[str]:
    """``::error`` workflow commands, one per failure location (or per failed check)."""
    commands = []
    for r in results:
        if not r.failed:
            continue
        heading = escape_property(f"{title}: {r.name}")
        if r.locations:
            for loc in r.locations:
                where = f"file={escape_property(loc.file)},line={loc.line},"
                commands.append(f"::error {where}title={heading}::{escape_data(loc.message)}")
        else:
            message = "\n".join((r.reason, *r.details))
            commands.append(f"::error title={heading}::{escape_data(message)}")
    return commands


def github_summary(title: str, results: Sequence[CheckResult]) -> str:
    """A Markdown table for ``$GITHUB_STEP_SUMMARY``."""
    rows = [
        f"### {summary_line(title, results)}",
        "",
        "| check | verdict | reason |",
        "|---|---|---|",
    ]
    for r in results:
        reason = r.reason.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {r.name} | {_WORD[r.status]} | {reason} |")
    return "\n".join(rows) + "\n"

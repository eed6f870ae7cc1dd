"""The run drawn as a Mermaid gantt chart: a section per unit, a bar per stage, the rollback apart.

GitHub renders a ``mermaid`` block in a job summary. Times are milliseconds since the run started
(``dateFormat x``); a failed bar is ``crit``, the rollback's bars are in their own section per unit.
Names from hosts and stages are made safe for the gantt grammar, which ends a task's name at ``:``,
a comment at ``#`` or ``%``, a statement at ``;``, and reads a leading keyword as a directive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.runreport import RunReport, StageResult

# What the gantt grammar treats as syntax inside a name, and what would end the Markdown fence.
_SYNTAX = re.compile(r"[:#;%`\x00-\x1f\x7f-\x9f]+")
# Words the grammar reads as a directive when a line starts with them (case-insensitively).
KEYWORDS = (
    "gantt", "title", "section", "dateformat", "axisformat", "tickinterval", "includes", "excludes",
    "todaymarker", "weekday", "inclusiveenddates", "topaxis", "accdescr", "acctitle", "click", "call",
    "href",
)  # fmt: skip
NAME_LIMIT = 60
TAGS = {"ok": "done", "failed": "crit"}  # a unit stopped for another's failure: a plain bar


@dataclass(frozen=True)
class Bar:
    """One bar: its section, name, how it ended, start and end in milliseconds since the run began."""

    section: str
    name: str
    status: str
    start: int
    end: int


def safe_name(text: str) -> str:
    """A name the gantt grammar reads as plain text: syntax characters become spaces, a leading
    keyword or date gets a prefix, nothing is empty, long names are cut."""
    name = " ".join(_SYNTAX.sub(" ", text).split())[:NAME_LIMIT].strip() or "-"
    lowered = name.lower()
    if lowered.startswith(KEYWORDS) or re.match(r"\d{4}-\d\d-\d\d", name):
        name = f"- {name}"
    return name


def bars(report: RunReport) -> list[Bar]:
    """Every stage on every unit, then every rollback part, in the order they ran; a step the engine
    does not time (a journal or a lock that failed at the end) is drawn at the end of the run."""
    steps = [("", s) for s in report.stages] + [("rollback ", p) for p in report.rollback]
    found = [bar for prefix, stage in steps if _timed(stage) for bar in _stage_bars(stage, prefix)]
    end = max((b.end for b in found), default=0)
    found += [
        Bar(prefix + (stage.host or "all"), stage.name, stage.status, end, end)
        for prefix, stage in steps
        if not _timed(stage)
    ]
    return found


def _timed(stage: StageResult) -> bool:
    return bool(stage.spans or stage.start or stage.seconds)


def _stage_bars(stage: StageResult, prefix: str) -> list[Bar]:
    if stage.spans:
        return [
            Bar(prefix + s.host, stage.name, s.status, _ms(s.start), _ms(s.start + s.seconds))
            for s in stage.spans
        ]
    where = stage.host or "all"
    return [Bar(prefix + where, stage.name, stage.status, _ms(stage.start), _ms(stage.start + stage.seconds))]


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def render_gantt(report: RunReport) -> list[str]:
    """The lines of the ``mermaid`` block (without the fence); [] when nothing ran."""
    found = bars(report)
    if not found:
        return []
    outcome = report.outcome.replace("_", " ")
    lines = [
        "gantt",
        f"    title {safe_name(f'{report.environment} {report.version} {outcome}')}",
        "    dateFormat x",
        "    axisFormat %M:%S",
    ]
    sections: dict[str, list[Bar]] = {}
    for bar in found:
        sections.setdefault(bar.section, []).append(bar)
    for section, members in sections.items():
        lines.append(f"    section {safe_name(section)}")
        for bar in members:
            tag = "active" if section.startswith("rollback ") and bar.status == "ok" else TAGS.get(bar.status)
            # A bar at least a millisecond long: an empty one is not drawn.
            times = f"{bar.start}, {max(bar.end, bar.start + 1)}"
            lines.append(f"    {safe_name(bar.name)} :{tag + ', ' if tag else ''}{times}")
    return lines

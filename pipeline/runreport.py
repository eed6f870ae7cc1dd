"""The run report of a deploy: stages, health verdicts, failure evidence and the rollback.

Rendered for people (stdout), as JSON (``--report FILE``), as a GitHub job summary, and handed to
the notify stage. Every rendering goes through the run's redactor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.errors import ExitCode
from pipeline.health import HealthResult

OUTCOMES = {
    "deployed": ExitCode.OK,
    "noop": ExitCode.OK,
    "restored": ExitCode.OK,  # `invoke rollback` brought the release back
    "migrated": ExitCode.OK,
    "rolled_back": ExitCode.ROLLED_BACK,
    "cancelled": ExitCode.ROLLED_BACK,
    "migrate_failed": ExitCode.ROLLED_BACK,
    "rollback_failed": ExitCode.ROLLBACK_FAILED,
    "record_failed": ExitCode.ROLLBACK_FAILED,
}


@dataclass(frozen=True)
class Span:
    """A stage on one unit: when it began (seconds since the run started), how long, how it ended."""

    host: str
    start: float
    seconds: float
    status: str  # ok | failed | cancelled


@dataclass
class StageResult:
    """One stage (or rollback part): its verdict, how long it took and what it said."""

    name: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    detail: str = ""
    host: str = ""
    start: float = 0.0  # seconds since the run started
    spans: list[Span] = field(default_factory=list)  # each unit's part of a stage over several


@dataclass(frozen=True)
class Evidence:
    """Something captured from a host before the rollback could destroy it."""

    host: str
    kind: str  # logs | containers | health
    text: str


@dataclass
class RunReport:
    """Everything a deploy did and saw."""

    environment: str
    version: str
    commit: str | None
    previous: dict[str, str | None] = field(default_factory=dict)
    outcome: str = ""
    reason: str = ""
    stages: list[StageResult] = field(default_factory=list)
    health: list[HealthResult] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    rollback: list[StageResult] = field(default_factory=list)
    db_before: str | None = None
    db_after: str | None = None
    db_end: str | None = None
    databases: dict[str, dict[str, str | None]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # each unit's fate
    backups: dict[str, str] = field(default_factory=dict)  # the backup taken before migrating, by unit
    run: str = ""
    who: str = ""
    debug_log: str = ""
    notified: list[tuple[str, str | None]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    emergency: str = ""  # the reason of an emergency deploy (``--emergency --reason``)
    waived: list[str] = field(default_factory=list)  # checklist items an emergency let fail

    @property
    def exit_code(self) -> ExitCode:
        """The documented exit code of the outcome (130/143 for a signal before any change)."""
        if self.outcome == "interrupted":
            return ExitCode.TERMINATED if "SIGTERM" in self.reason else ExitCode.INTERRUPTED
        return OUTCOMES.get(self.outcome, ExitCode.ROLLBACK_FAILED)

    def summary(self) -> str:
        """One line a person reads first."""
        previous = ", ".join(sorted({v for v in self.previous.values() if v})) or "nothing"
        lines = {
            "deployed": f"{self.version} deployed to {self.environment}",
            "noop": f"{self.version} is already deployed to {self.environment}: nothing to do",
            "rolled_back": f"{self.version} failed ({self.reason}); rolled back to {previous}",
            "cancelled": f"deploy of {self.version} cancelled ({self.reason}); rolled back to {previous}",
            "interrupted": f"deploy of {self.version} interrupted: {self.reason}",
            "rollback_failed": f"{self.version} failed ({self.reason}) and the ROLLBACK FAILED: "
            "a human is needed now",
            "restored": f"{self.environment}: {self.reason}; {self.version} no longer serves",
            "migrated": f"{self.environment} migrated: {self.db_before} -> {self.db_after}",
            "migrate_failed": f"the migration of {self.environment} failed ({self.reason})",
            "record_failed": f"{self.version}: {self.reason}: the JOURNAL WAS NOT WRITTEN, "
            "a human is needed now",
        }
        line = lines.get(self.outcome, f"{self.version}: {self.outcome} {self.reason}")
        hints = self.restore_commands()
        if hints and self.outcome == "rollback_failed":
            line += (
                f"; the database was backed up before the migration: `{'`, `'.join(hints)}` brings it back"
            )
        return f"{line} (EMERGENCY: {self.emergency})" if self.emergency else line

    def restore_commands(self) -> list[str]:
        """``invoke restore`` for each database whose downgrade failed and that was backed up first."""
        failed = {s.host for s in self.rollback if s.name == "downgrade" and s.status == "failed"}
        return [
            f"invoke restore --env {self.environment} --from {name}"
            for unit, name in self.backups.items()
            if unit in failed
        ]

    def to_data(self) -> dict[str, Any]:
        """The report as plain data, for JSON."""
        data = asdict(self)
        data["exit_code"] = int(self.exit_code)
        data["summary"] = self.summary()
        return data

    def details(self) -> list[str]:
        """The lines under the summary: stages, failed checks, evidence excerpts, rollback."""
        lines = _emergency_lines(self)
        lines += [_stage_line(s) for s in self.stages]
        if self.units and any(fate != "deployed" for fate in self.units.values()):
            lines += [f"unit {name}: {fate}" for name, fate in self.units.items()]
        for name, db in self.databases.items():
            where = f" [{name}]" if len(self.databases) > 1 else ""
            moves = " -> ".join(str(db.get(k) or "?") for k in ("before", "after", "end") if k in db)
            lines.append(f"database{where}: {moves}")
        for name, backup in self.backups.items():
            lines.append(f"backup [{name}]: {backup}")
        lines += [
            f"health {r.host}: {r.check}: {r.detail}" + (f" (body: {_first(r.body)})" if r.body else "")
            for r in self.health
            if not r.ok
        ]
        if self.rollback:
            lines.append("rollback:")
            lines += ["  " + _stage_line(s) for s in self.rollback]
        for item in self.evidence:
            excerpt = item.text.strip().splitlines()[-10:]
            lines.append(f"{item.kind} from {item.host} (last {len(excerpt)} lines):")
            lines += [f"  | {ln}" for ln in excerpt]
        if self.debug_log:
            lines.append(f"traceback of the internal error: {self.debug_log}")
        return lines

    def render_text(self) -> str:
        """The human summary printed at the end of a run."""
        marker = "OK" if self.exit_code == ExitCode.OK else f"EXIT {int(self.exit_code)}"
        return "\n".join([f"deploy {self.environment}: {marker}: {self.summary()}", *self.details()])

    def render_markdown(self) -> str:
        """The GitHub job summary (``pipeline.summary``)."""
        from pipeline.summary import job_summary

        return job_summary(self)

    def to_json(self) -> str:
        """The JSON report."""
        return json.dumps(self.to_data(), indent=2, default=str)


def _emergency_lines(report: RunReport) -> list[str]:
    """Under an emergency deploy's summary (which holds its reason): the checklist items it let fail."""
    if not report.emergency:
        return []
    return [f"waived (emergency): {', '.join(report.waived) or 'nothing'}"]


def _stage_line(stage: StageResult) -> str:
    where = f" [{stage.host}]" if stage.host else ""
    return f"{stage.status:<7} {stage.name}{where} {stage.seconds:.1f}s {stage.detail}".rstrip()


def _first(body: str, limit: int = 200) -> str:
    text = " ".join(body.split())
    return text if len(text) <= limit else text[:limit] + "..."

"""What a notification says, as lines of a few kinds that every channel renders in its own markup.

A success tells the team the facts (version, environment, commit, who, the CI run) and everyone the
release notes; a failure is an incident (``pipeline.incident``); ``invoke notify`` is a message.
The lines are kept in the order they matter, so a channel that must cut keeps the top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pipeline.incident import describe, incident_of, is_incident

if TYPE_CHECKING:
    from pipeline.notify import Notification

Style = Literal["title", "alert", "field", "text", "heading", "markdown", "code", "link", "blank"]


@dataclass(frozen=True)
class Line:
    """One line of a message: its text, its kind, a label (fields, links) and a URL (links)."""

    text: str
    style: Style = "text"
    label: str = ""
    url: str = ""


BLANK = Line("", "blank")


def message_lines(notification: Notification) -> list[Line]:
    """The lines of a notification, most important first."""
    n, report = notification, notification.report
    lines = [Line(n.title, "title"), *_emergency(report)]
    if n.outcome == "message" or not report:
        lines += [Line(n.summary), *(Line(d) for d in n.details)]
        return lines + _facts(n, commit=False)
    if is_incident(n.outcome):
        return lines + _incident(n)
    lines += [Line(n.summary), *_field_lines("Waived checks", report.get("waived"), ", ")]
    lines += _facts(n)
    if n.outcome == "deployed":
        lines += [BLANK, *notes_lines(n)]
    return lines


def notes_lines(n: Notification) -> list[Line]:
    """``What's new in 2.0.0`` and the CHANGELOG section, or a line saying why there is none."""
    notes = n.notes
    if notes is None:
        return []
    heading = Line(f"What's new in {notes.version}", "heading")
    if not notes.found:
        return [heading, Line(f"No release notes: {notes.missing}.")]
    return [heading, *(Line(text, "markdown") if text.strip() else BLANK for text in notes.lines)]


def more_link(n: Notification) -> tuple[str, str]:
    """Where the rest of a cut message is: (what, URL); the CHANGELOG for notes, else the run."""
    if n.outcome == "deployed" and n.notes is not None and n.notes.url:
        return "full notes", n.notes.url
    return ("full notes" if n.outcome == "deployed" else "full report"), n.run_url


def _incident(n: Notification) -> list[Line]:
    report = n.report
    incident = incident_of(report, n.outcome)
    lines = [
        Line(incident.what_failed, "field", "What failed"),
        Line(incident.impact, "field", "Impact"),
        Line(incident.rollback, "field", "Rollback"),
        Line(incident.serving, "field", "Serving now"),
        Line(incident.human, "alert" if incident.human_needed else "field", "Human needed now"),
        *_field_lines("Backup", report.get("backups"), None),
        *_field_lines("Waived checks", report.get("waived"), ", "),
        *_facts(n),
    ]
    if incident.evidence:
        lines += [BLANK, Line("Evidence", "heading"), *(Line(e, "code") for e in incident.evidence)]
    return lines


def _emergency(report: Mapping[str, Any]) -> list[Line]:
    reason = report.get("emergency")
    if not reason:
        return []
    return [Line(f"EMERGENCY deploy: {'; '.join(describe(reason))}", "alert")]


def _field_lines(label: str, value: Any, join: str | None) -> list[Line]:
    said = describe(value)
    if not said:
        return []
    if join is not None:
        return [Line(join.join(said), "field", label)]
    return [Line(text, "field", label) for text in said]


def _facts(n: Notification, commit: bool = True) -> list[Line]:
    facts = [("Version", n.version), ("Environment", n.environment)]
    if commit:
        facts += [("Commit", n.commit[:12]), ("By", n.who)]
    lines = [Line(value, "field", label) for label, value in facts if value]
    if n.run_url:
        lines.append(Line("CI run", "link", "Run", n.run_url))
    return lines

"""The incident a failed run is, in the shape of the runbooks' incident post.

The runbooks' template asks for a short description, the impact, and what happens next; a deploy
knows more than a person typing in a hurry: which stage failed where, what the rollback did, what
serves now, the evidence, and whether someone has to act now. Built from the run report's data (a
plain mapping), so a field another feature adds (``emergency``, ``waived``, ``backups``) is read when
present and ignored when not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SUCCESS = frozenset({"deployed", "noop", "restored", "migrated", "message"})
# Outcomes after which the units may serve a broken or unknown release, or the records are wrong.
NEEDS_HUMAN = frozenset({"rollback_failed", "record_failed"})
DETAIL_LIMIT = 300  # characters of one stage's detail
EVIDENCE_LINES = 5  # last lines of each piece of evidence
EVIDENCE_PIECES = 3


@dataclass(frozen=True)
class Incident:
    """What failed, its impact, what the rollback did and what serves now, the evidence in short,
    and whether a human is needed now."""

    what_failed: str
    impact: str
    rollback: str
    serving: str
    human_needed: bool
    human: str  # why, or why not
    evidence: tuple[str, ...] = ()


def is_incident(outcome: str) -> bool:
    """Whether a run with this outcome is told as an incident."""
    return outcome not in SUCCESS


def incident_of(report: Mapping[str, Any], outcome: str) -> Incident:
    """The incident of a failed run, from its report's data (any field may be missing)."""
    version = str(report.get("version") or "the release")
    human_needed = outcome in NEEDS_HUMAN or bool(report.get("debug_log"))
    return Incident(
        what_failed=what_failed(report),
        impact=impact(report, outcome, version),
        rollback=rollback_summary(report, outcome),
        serving=serving_now(report, outcome, version),
        human_needed=human_needed,
        human=_human(report, outcome, human_needed),
        evidence=evidence(report),
    )


def what_failed(report: Mapping[str, Any]) -> str:
    """``health [web3]: GET /health answered 500``: the first failed stage, else the reason."""
    for stage in _dicts(report.get("stages")):
        if stage.get("status") == "failed":
            where = f" [{stage['host']}]" if stage.get("host") else ""
            detail = _short(str(stage.get("detail") or ""))
            return f"{stage.get('name', '?')}{where}: {detail}" if detail else f"{stage.get('name')}{where}"
    return _short(str(report.get("reason") or "unknown (the report names no failed stage)"))


def impact(report: Mapping[str, Any], outcome: str, version: str) -> str:
    """What users get because of the failure."""
    units = _units(report)
    if outcome == "interrupted":
        return "none: nothing was changed"
    if outcome == "rollback_failed":
        broken = [u for u, fate in units.items() if fate == "rollback failed"] or list(units)
        return f"UNKNOWN on {_names(broken)}: a broken, old or mixed release may serve users"
    if outcome == "record_failed":
        return "the release serves, but the journal was not written: the next deploy cannot trust it"
    if outcome == "migrate_failed":
        return "the database may be between revisions"
    return f"{version} is not live: users are served what they had before the deploy"


def rollback_summary(report: Mapping[str, Any], outcome: str) -> str:
    """``downgrade ok [db]; restore ok [web1, web2]; health FAILED [web2]: ...`` per rollback part."""
    parts: dict[str, dict[str, list[str]]] = {}
    details: list[str] = []
    for step in _dicts(report.get("rollback")):
        name, status = str(step.get("name", "?")), str(step.get("status", "?"))
        parts.setdefault(name, {}).setdefault(status, []).append(str(step.get("host") or "-"))
        if status == "failed" and step.get("detail"):
            details.append(f"{step.get('host') or name}: {_short(str(step['detail']), 150)}")
    if not parts:
        return "nothing to roll back: nothing was changed" if outcome == "interrupted" else "none ran"
    said = []
    for name, by_status in parts.items():
        for status, hosts in by_status.items():
            word = "FAILED" if status == "failed" else status
            said.append(f"{name} {word} [{', '.join(hosts)}]")
    return "; ".join(said) + (f" ({'; '.join(details)})" if details else "")


def serving_now(report: Mapping[str, Any], outcome: str, version: str) -> str:
    """``1.0.0 on web1, web2; unknown on web3``: what each unit serves after the run."""
    previous = report.get("previous")
    previous = previous if isinstance(previous, Mapping) else {}
    units = _units(report) or {u: "untouched" for u in previous}
    groups: dict[str, list[str]] = {}
    for unit, fate in units.items():
        if fate == "deployed":
            now = version
        elif fate == "rollback failed":
            now = "unknown (rollback failed)"
        else:
            now = str(previous.get(unit) or "nothing")
        groups.setdefault(now, []).append(unit)
    if not groups:
        return "unknown (the report names no unit)"
    return "; ".join(f"{now} on {_names(names)}" for now, names in groups.items())


def evidence(report: Mapping[str, Any]) -> tuple[str, ...]:
    """Failed health checks in a line each, then the last lines of the first pieces of evidence."""
    lines = []
    for result in _dicts(report.get("health")):
        if result.get("ok") is False:
            line = f"health {result.get('host', '?')}: {result.get('check', '?')}: {result.get('detail', '')}"
            lines.append(_short(line))
    for piece in _dicts(report.get("evidence"))[:EVIDENCE_PIECES]:
        text = str(piece.get("text") or "").strip().splitlines()[-EVIDENCE_LINES:]
        if text:
            lines.append(f"{piece.get('kind', 'output')} from {piece.get('host', '?')}:")
            lines += [f"  | {_short(line, 200)}" for line in text]
    if report.get("debug_log"):
        lines.append(f"traceback of the internal error: {report['debug_log']}")
    return tuple(lines)


def describe(value: Any) -> list[str]:
    """Lines for a report field of a shape this module does not own: text, a list, a mapping."""
    if value is None or value == "" or value == [] or value == {}:
        return []
    if isinstance(value, Mapping):
        return ["; ".join(f"{k}: {_flat(v)}" for k, v in value.items())]
    if isinstance(value, (list, tuple)):
        return [line for item in value for line in describe(item)]
    return [str(value)]


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_flat(v) for v in value)
    return str(value)


def _human(report: Mapping[str, Any], outcome: str, needed: bool) -> str:
    if outcome == "rollback_failed":
        return "YES: the rollback failed; check what serves, restore the backup if one was taken"
    if outcome == "record_failed":
        return "YES: set the journal right before the next deploy"
    if needed:
        return "YES: an internal error; see the traceback"
    if outcome == "interrupted":
        return "no: nothing was changed"
    return "no: the previous release serves; fix and deploy again"


def _units(report: Mapping[str, Any]) -> dict[str, str]:
    units = report.get("units")
    return {str(k): str(v) for k, v in units.items()} if isinstance(units, Mapping) else {}


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, Sequence) else []


def _names(names: Sequence[str], shown: int = 8) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _short(text: str, limit: int = DETAIL_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

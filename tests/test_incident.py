"""The incident of a failed run, read from its report's data: what failed, impact, rollback, what
serves now, evidence, and whether a human is needed now."""

from __future__ import annotations

from pipeline.health import HealthResult
from pipeline.incident import describe, incident_of, is_incident
from pipeline.runreport import Evidence, RunReport, StageResult


def rolled_back() -> RunReport:
    report = RunReport(
        "prod", "2.0.0", "c" * 40, {"web1": "1.0.0", "web2": "1.0.0", "web3": None}, "rolled_back"
    )
    report.reason = "health failed on web2"
    report.stages = [
        StageResult("deploy", "ok", 3.0),
        StageResult("health", "failed", 9.0, "web2: GET http://web2:8000/health answered 500"),
    ]
    report.health = [HealthResult("http", "web2", False, "answered 500", status=500, body="oops")]
    report.rollback = [StageResult("restore", "ok", 1.0, "", h) for h in ("web1", "web2", "web3")]
    report.evidence = [Evidence("web2", "logs", "\n".join(f"line {i}" for i in range(20)))]
    report.units = {"web1": "restored", "web2": "restored", "web3": "restored"}
    return report


def test_a_rolled_back_deploy_needs_no_human_and_says_what_serves() -> None:
    incident = incident_of(rolled_back().to_data(), "rolled_back")
    assert incident.what_failed == "health: web2: GET http://web2:8000/health answered 500"
    assert incident.impact == "2.0.0 is not live: users are served what they had before the deploy"
    assert incident.rollback == "restore ok [web1, web2, web3]"
    assert incident.serving == "1.0.0 on web1, web2; nothing on web3"
    assert (incident.human_needed, incident.human) == (
        False,
        "no: the previous release serves; fix and deploy again",
    )
    assert incident.evidence == (
        "health web2: http: answered 500",
        "logs from web2:",
        *(f"  | line {i}" for i in range(15, 20)),
    )


def test_a_failed_rollback_needs_a_human_now_and_names_where() -> None:
    report = rolled_back()
    report.outcome = "rollback_failed"
    report.rollback[1] = StageResult("restore", "failed", 1.0, "compose up exited 1", "web2")
    report.units["web2"] = "rollback failed"
    incident = incident_of(report.to_data(), "rollback_failed")
    assert incident.human_needed is True and incident.human.startswith("YES: the rollback failed")
    assert incident.impact == "UNKNOWN on web2: a broken, old or mixed release may serve users"
    assert incident.rollback == "restore ok [web1, web3]; restore FAILED [web2] (web2: compose up exited 1)"
    assert incident.serving == "1.0.0 on web1; unknown (rollback failed) on web2; nothing on web3"


def test_an_internal_error_needs_a_human_and_points_to_the_traceback() -> None:
    report = rolled_back()
    report.debug_log = "/tmp/pipeline-abc.log"
    incident = incident_of(report.to_data(), "rolled_back")
    assert incident.human_needed is True
    assert incident.evidence[-1] == "traceback of the internal error: /tmp/pipeline-abc.log"


def test_an_interrupted_run_changed_nothing() -> None:
    report = RunReport("prod", "2.0.0", None, {"web1": "1.0.0"}, "interrupted", "SIGINT")
    incident = incident_of(report.to_data(), "interrupted")
    assert (incident.what_failed, incident.impact) == ("SIGINT", "none: nothing was changed")
    assert incident.rollback == "nothing to roll back: nothing was changed"
    assert incident.serving == "1.0.0 on web1"
    assert incident.human_needed is False


def test_a_report_of_any_shape_never_breaks_the_incident() -> None:
    incident = incident_of({"stages": "garbage", "units": [1], "rollback": [None, 3]}, "failed")
    assert incident.what_failed == "unknown (the report names no failed stage)"
    assert incident.serving == "unknown (the report names no unit)"
    assert incident.rollback == "none ran"


def test_which_outcomes_are_incidents() -> None:
    assert [
        o
        for o in ("deployed", "noop", "message", "rolled_back", "cancelled", "record_failed")
        if is_incident(o)
    ] == [
        "rolled_back",
        "cancelled",
        "record_failed",
    ]


def test_fields_of_other_features_are_described_whatever_their_shape() -> None:
    assert describe("hotfix") == ["hotfix"]
    assert describe(["changelog", {"name": "version", "why": "hotfix"}]) == [
        "changelog",
        "name: version; why: hotfix",
    ]
    assert describe({"file": "a.sql.gz", "restore": ["invoke", "restore"]}) == [
        "file: a.sql.gz; restore: invoke, restore"
    ]
    assert describe(None) == describe("") == describe([]) == []

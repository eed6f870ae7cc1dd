"""The run report of a deploy: exit codes, the summary line, details and its renderings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.compose import Container
from pipeline.errors import ExitCode
from pipeline.health import HealthResult
from pipeline.runreport import Evidence, RunReport, StageResult

HEALTH_500 = HealthResult(
    "http http://web1:8000/health", "web1", False, "answered 500, expected 200", attempts=3, status=500,
    body='{"status":   "fail",\n "db": "down"}',
)  # fmt: skip
HEALTH_OK = HealthResult("http http://web2:8000/health", "web2", True, "answered 200", status=200, body="ok")


def report(outcome: str = "rolled_back", reason: str = "health failed", **fields: Any) -> RunReport:
    previous = {"web1": "1.0.0", "web2": "1.0.0", "web3": None}
    return RunReport("prod", "2.0.0", "abc", previous, outcome, reason, **fields)


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ("deployed", 0),
        ("noop", 0),
        ("rolled_back", 1),
        ("cancelled", 1),
        ("rollback_failed", 4),
        ("", 4),
        ("new", 4),
    ],
)
def test_each_outcome_has_its_documented_exit_code_and_an_unknown_one_asks_for_a_human(
    outcome: str, code: int
) -> None:
    assert report(outcome).exit_code == code
    assert isinstance(report(outcome).exit_code, ExitCode)


@pytest.mark.parametrize(
    ("outcome", "summary"),
    [
        ("deployed", "2.0.0 deployed to prod"),
        ("noop", "2.0.0 is already deployed to prod: nothing to do"),
        ("rolled_back", "2.0.0 failed (health failed); rolled back to 1.0.0"),
        ("cancelled", "deploy of 2.0.0 cancelled (health failed); rolled back to 1.0.0"),
        (
            "rollback_failed",
            "2.0.0 failed (health failed) and the ROLLBACK FAILED: a human is needed now",
        ),
        ("weird", "2.0.0: weird health failed"),
    ],
)
def test_the_summary_says_what_happened_in_one_line(outcome: str, summary: str) -> None:
    assert report(outcome).summary() == summary


def test_the_summary_lists_each_previous_version_once_sorted_or_nothing() -> None:
    mixed = RunReport("prod", "2.0.0", None, {"a": "1.1.0", "b": "1.0.0", "c": "1.1.0"}, "rolled_back", "x")
    assert mixed.summary() == "2.0.0 failed (x); rolled back to 1.0.0, 1.1.0"
    first = RunReport("prod", "2.0.0", None, {"a": None}, "rolled_back", "x")
    assert first.summary() == "2.0.0 failed (x); rolled back to nothing"


def test_details_list_stages_failed_checks_with_a_body_excerpt_and_the_rollback() -> None:
    run = report(
        stages=[StageResult("deploy", "ok", 12.34), StageResult("health", "failed", 3.0, "web1: 500")],
        health=[HEALTH_500, HEALTH_OK],
        rollback=[
            StageResult("downgrade", "ok", 1.0, host="web1"),
            StageResult("restore", "failed", 2.5, "boom", "web2"),
        ],
    )
    assert run.details() == [
        "ok      deploy 12.3s",
        "failed  health 3.0s web1: 500",
        "health web1: http http://web1:8000/health: answered 500, expected 200"
        ' (body: {"status": "fail", "db": "down"})',
        "rollback:",
        "  ok      downgrade [web1] 1.0s",
        "  failed  restore [web2] 2.5s boom",
    ]


def test_a_long_body_is_cut_to_200_characters_and_a_failed_check_without_body_has_no_excerpt() -> None:
    long = HealthResult("http x", "web1", False, "answered 500, expected 200", body="x" * 500)
    bare = HealthResult("command in web: true", "web2", False, "exited 1")
    lines = report(health=[long, bare]).details()
    assert lines == [
        f"health web1: http x: answered 500, expected 200 (body: {'x' * 200}...)",
        "health web2: command in web: true: exited 1",
    ]


def test_evidence_shows_the_last_ten_lines_of_each_capture() -> None:
    logs = "\n".join(f"line {i}" for i in range(1, 26)) + "\n\n"
    run = report(evidence=[Evidence("web1", "logs", logs), Evidence("web1", "containers", "web: running")])
    assert run.details() == [
        "logs from web1 (last 10 lines):",
        *[f"  | line {i}" for i in range(16, 26)],
        "containers from web1 (last 1 lines):",
        "  | web: running",
    ]


def test_render_text_starts_with_the_environment_the_verdict_and_the_summary() -> None:
    assert report("deployed").render_text() == "deploy prod: OK: 2.0.0 deployed to prod"
    failed = report("rollback_failed", stages=[StageResult("deploy", "ok")]).render_text().splitlines()
    assert failed[0].startswith("deploy prod: EXIT 4: 2.0.0 failed (health failed) and the ROLLBACK")
    assert failed[1:] == ["ok      deploy 0.0s"]


def test_markdown_escapes_pipes_and_newlines_so_a_detail_cannot_break_the_table() -> None:
    run = report(
        stages=[StageResult("health", "failed", 1.25, "grep a|b\nexited 1", "web1")],
        rollback=[StageResult("restore", "ok", 2.0, host="web2")],
        evidence=[Evidence("web1", "logs", "  boot\nerror | detail\n")],
    )
    lines = run.render_markdown().splitlines()
    assert lines[0] == "### deploy prod: EXIT 1: 2.0.0 failed (health failed); rolled back to 1.0.0"
    assert "| health | **failed** | 1.2 s | **failed** 1.2 s | - | - |" in lines
    assert "- **health** on web1: grep a\\|b exited 1" in lines
    assert "| restore | web2 | ok | 2.0 s |  |" in lines
    details = lines.index("<details><summary>logs from web1</summary>")
    assert lines[details + 1 :] == ["", "```", "boot", "error | detail", "```", "</details>"]


def test_markdown_keeps_only_the_last_6000_characters_of_evidence() -> None:
    text = "a" * 3000 + "b" * 6000
    markdown = report(evidence=[Evidence("web1", "logs", text)]).render_markdown()
    assert "b" * 6000 in markdown and "a" not in markdown.split("```")[1]


def test_to_data_carries_exit_code_and_summary_and_is_json() -> None:
    container = Container("web", "running", "unhealthy", "Up")
    run = report(
        health=[HealthResult("compose", "web1", False, "web: running unhealthy", containers=(container,))]
    )
    data = run.to_data()
    assert (data["exit_code"], data["summary"]) == (1, "2.0.0 failed (health failed); rolled back to 1.0.0")
    assert data["health"][0]["containers"] == (
        {"service": "web", "state": "running", "health": "unhealthy", "status": "Up"},
    )
    parsed = json.loads(run.to_json())
    assert (parsed["outcome"], parsed["exit_code"], parsed["previous"]["web3"]) == ("rolled_back", 1, None)
    assert parsed["health"][0]["containers"][0]["health"] == "unhealthy"

"""Rendering checklist results: text for people, JSON, GitHub annotations and step summary."""

from __future__ import annotations

import json

import pytest

from pipeline.checklist import CheckResult
from pipeline.errors import ExitCode
from pipeline.files import Location
from pipeline.report import (
    exit_code,
    github_annotations,
    github_summary,
    in_github_actions,
    render_json,
    render_text,
    summary_line,
)

PASSED = CheckResult("version", "pass", "1.2.0 is above the last release v1.1.0")
CHANGELOG_FAILED = CheckResult(
    "changelog",
    "fail",
    "CHANGELOG.md: 2 problem(s)",
    ("CHANGELOG.md:3: malformed heading", "CHANGELOG.md:9: no date"),
    (
        Location("CHANGELOG.md", 3, "malformed heading"),
        Location("CHANGELOG.md", 9, "no date"),
    ),
)
COMMITS_FAILED = CheckResult(
    "commits",
    "fail",
    "1 of 3 commit(s) since v1.1.0 break Conventional Commits",
    ("0123456789 'wip': unknown type `wip`",),
)
SKIPPED = CheckResult("lint", "skip", "not requested", ("never shown",))
RESULTS = [PASSED, CHANGELOG_FAILED, COMMITS_FAILED, SKIPPED]


@pytest.mark.parametrize(
    ("results", "code"),
    [
        ([], ExitCode.OK),
        ([PASSED, SKIPPED], ExitCode.OK),
        ([PASSED, COMMITS_FAILED], ExitCode.CHECKLIST_FAILED),
    ],
)
def test_exit_code_is_3_only_when_some_check_failed(results, code):
    assert exit_code(results) == code


def test_summary_line_counts_each_verdict():
    assert summary_line("preflight", RESULTS) == "preflight: 1 passed, 2 failed, 1 skipped"


def test_text_report_aligns_names_and_lists_details_only_under_failures():
    assert render_text("preflight", RESULTS) == (
        "ok   version    1.2.0 is above the last release v1.1.0\n"
        "FAIL changelog  CHANGELOG.md: 2 problem(s)\n"
        "       CHANGELOG.md:3: malformed heading\n"
        "       CHANGELOG.md:9: no date\n"
        "FAIL commits    1 of 3 commit(s) since v1.1.0 break Conventional Commits\n"
        "       0123456789 'wip': unknown type `wip`\n"
        "skip lint       not requested\n"
        "preflight: 1 passed, 2 failed, 1 skipped"
    )


def test_text_report_of_no_checks_is_just_the_summary():
    assert render_text("release", []) == "release: 0 passed, 0 failed, 0 skipped"


def test_json_report_holds_every_check_with_its_locations():
    report = json.loads(render_json("preflight", RESULTS))
    assert report["task"] == "preflight"
    assert report["ok"] is False
    assert report["exit_code"] == 3
    assert [c["name"] for c in report["checks"]] == ["version", "changelog", "commits", "lint"]
    assert report["checks"][1] == {
        "name": "changelog",
        "status": "fail",
        "reason": "CHANGELOG.md: 2 problem(s)",
        "details": ["CHANGELOG.md:3: malformed heading", "CHANGELOG.md:9: no date"],
        "locations": [
            {"file": "CHANGELOG.md", "line": 3, "message": "malformed heading"},
            {"file": "CHANGELOG.md", "line": 9, "message": "no date"},
        ],
    }
    assert report["checks"][3]["details"] == ["never shown"]


def test_json_report_of_passing_checks_is_ok_with_exit_code_0():
    report = json.loads(render_json("preflight", [PASSED]))
    assert (report["ok"], report["exit_code"]) == (True, 0)
    assert report["checks"][0]["status"] == "ok"  # the text's word: `ok   version ...`
    assert render_text("preflight", [PASSED]).startswith("ok   version")


def test_a_failure_with_locations_gives_one_annotation_per_location():
    assert github_annotations("preflight", [CHANGELOG_FAILED]) == [
        "::error file=CHANGELOG.md,line=3,title=preflight%3A changelog::malformed heading",
        "::error file=CHANGELOG.md,line=9,title=preflight%3A changelog::no date",
    ]


def test_a_failure_without_locations_gives_one_annotation_with_reason_and_details():
    assert github_annotations("preflight", [COMMITS_FAILED]) == [
        "::error title=preflight%3A commits::"
        "1 of 3 commit(s) since v1.1.0 break Conventional Commits"
        "%0A0123456789 'wip': unknown type `wip`"
    ]


def test_passing_and_skipped_checks_give_no_annotations():
    assert github_annotations("preflight", [PASSED, SKIPPED]) == []


def test_annotation_messages_escape_percent_and_line_breaks():
    result = CheckResult("x", "fail", "r", locations=(Location("a.md", 1, "100%\r\ndone: a, b"),))
    [command] = github_annotations("t", [result])
    assert command.endswith("::100%25%0D%0Adone: a, b")


def test_annotation_properties_escape_colons_and_commas_too():
    result = CheckResult("odd,name", "fail", "r", locations=(Location("docs/a,b:c%.md", 7, "m"),))
    assert github_annotations("pre:flight", [result]) == [
        "::error file=docs/a%2Cb%3Ac%25.md,line=7,title=pre%3Aflight%3A odd%2Cname::m"
    ]


def test_step_summary_is_a_markdown_table_with_pipes_escaped():
    result = CheckResult("lint", "fail", "`a | b` exited 1")
    assert github_summary("preflight", [PASSED, result]) == (
        "### preflight: 1 passed, 1 failed, 0 skipped\n"
        "\n"
        "| check | verdict | reason |\n"
        "|---|---|---|\n"
        "| version | ok | 1.2.0 is above the last release v1.1.0 |\n"
        "| lint | fail | `a \\| b` exited 1 |\n"
    )


@pytest.mark.parametrize(
    ("env", "inside"),
    [
        ({"GITHUB_ACTIONS": "true"}, True),
        ({"GITHUB_ACTIONS": "false"}, False),
        ({"CI": "true"}, False),
        ({}, False),
    ],
)
def test_github_actions_is_detected_from_its_environment_variable(env, inside):
    assert in_github_actions(env) is inside

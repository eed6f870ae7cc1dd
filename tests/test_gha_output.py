"""GitHub Actions output of a run: masks, log groups, annotations, the job summary and its timeline."""

from __future__ import annotations

import io
import re

import pytest

from pipeline import workflow
from pipeline.gantt import KEYWORDS, render_gantt, safe_name
from pipeline.runoutput import RunOutput
from pipeline.runreport import Evidence, RunReport, Span, StageResult
from pipeline.secrets import Redactor, redactor_for
from pipeline.summary import job_summary

# The gantt grammar of Mermaid (its jison lexer): a task's text is `[^#:\n;]+` and its data follows a
# `:`; `%` starts a comment anywhere; a line starting with a keyword or a date is not a task.
_TASK = re.compile(r"(?P<text>[^#:\n;%]+):(?P<data>[^#\n;%]+)")
_DATA = re.compile(r"(?:(?:done|crit|active|milestone)\s*,\s*)*(?P<start>\d+)\s*,\s*(?P<end>\d+)")
_SECTION = re.compile(r"section\s[^#:\n;%]+")
_SETTING = re.compile(r"(title|dateFormat|axisFormat)\s[^#\n;]+")


def gantt_tasks(lines: list[str]) -> list[tuple[str, str, list[str], int, int]]:
    """Parse a gantt chart as Mermaid's grammar reads it: (section, name, tags, start, end) of every
    task; an AssertionError names the first line Mermaid would reject."""
    assert lines[0] == "gantt"
    section, tasks = "", []
    for line in (raw.strip() for raw in lines[1:]):
        if _SECTION.fullmatch(line):
            section = line[len("section ") :]
            continue
        if _SETTING.fullmatch(line):
            assert "%" not in line or line.startswith("axisFormat"), line
            continue
        task = _TASK.fullmatch(line)
        assert task, f"not a task line: {line!r}"
        text = task["text"].strip()
        assert text and not text.lower().startswith(KEYWORDS), f"read as a keyword: {line!r}"
        assert not re.match(r"\d{4}-\d\d-\d\d", text), line
        data = _DATA.fullmatch(task["data"].strip())
        assert data, f"task data Mermaid cannot read: {line!r}"
        tags = [t.strip() for t in task["data"].split(",")[:-2]]
        start, end = int(data["start"]), int(data["end"])
        assert end > start, line
        tasks.append((section, text, tags, start, end))
    return tasks


def unescape(data: str) -> str:
    """A command's data as the runner reads it back."""
    return data.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def mermaid_block(markdown: str) -> list[str]:
    """The lines of the summary's mermaid block."""
    start = markdown.index("```mermaid\n") + len("```mermaid\n")
    return markdown[start : markdown.index("\n```", start)].splitlines()


def failed_run() -> RunReport:
    """Two hosts: health fails on web2 (web1's part was stopped), then the rollback on both."""
    report = RunReport("prod", "2.0.0", "c" * 40, {"web1": "1.0.0", "web2": "1.0.0"}, "rolled_back")
    report.reason = "health failed"
    report.stages = [
        StageResult(
            "deploy", "ok", 1.5, start=0.1, spans=[Span("web1", 0.1, 1.4, "ok"), Span("web2", 0.1, 1.5, "ok")]
        ),
        StageResult(
            "health", "failed", 2.0, "web2: answered 500", start=1.6,
            spans=[Span("web1", 1.6, 0.4, "cancelled"), Span("web2", 1.6, 2.0, "failed")],
        ),
    ]  # fmt: skip
    report.rollback = [
        StageResult("restore", "ok", 0.8, "", "web1", 3.7),
        StageResult("restore", "ok", 0.9, "", "web2", 3.7),
    ]
    report.units = {"web1": "restored", "web2": "restored"}
    report.databases = {"web1": {"before": "0003", "after": "0004", "end": "0003"}}
    report.evidence = [Evidence("web2", "logs", "boot\nERROR db down\n")]
    report.timings = {"wall": 4.7}
    return report


# -- masks ------------------------------------------------------------------------------------------


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own_and_blank_or_short_lines_never() -> None:
    commands = workflow.mask_commands(["-----BEGIN KEY-----\nMIIEabc\n\n  \n}\n-----END KEY-----", ""])
    assert commands == [
        "::add-mask::-----BEGIN KEY-----",
        "::add-mask::-----END KEY-----",
        "::add-mask::MIIEabc",
    ]
    assert all("\n" not in c and "\r" not in c for c in commands)


def test_a_mask_command_escapes_percent_so_the_runner_reads_back_the_exact_value() -> None:
    assert workflow.mask_commands(["pa%0Ass\r\nword"]) == ["::add-mask::pa%250Ass", "::add-mask::word"]


def test_the_secrets_of_a_url_in_the_configuration_are_masked_in_every_form_the_redactor_knows() -> None:
    config = {"repository": "https://ghp_T0kenInTheUrl@github.com/acme/app.git", "webhook_env": "HOOK"}
    redactor = redactor_for(config, {"HOOK": "http://hooks.test/hook/WebhookT0kenWebhookT0ken"})
    masked = {unescape(c.removeprefix("::add-mask::")) for c in workflow.mask_commands(redactor.known())}
    assert {"ghp_T0kenInTheUrl", "http://hooks.test/hook/WebhookT0kenWebhookT0ken"} <= masked
    assert "WebhookT0kenWebhookT0ken" in masked  # the token alone, as a log line shows it
    assert "http%3A%2F%2Fhooks.test%2Fhook%2FWebhookT0kenWebhookT0ken" in masked  # URL-encoded


def test_masks_come_first_and_only_in_github_actions() -> None:
    stream = io.StringIO()
    out = RunOutput(lambda line: stream.write(line + "\n"), {"GITHUB_ACTIONS": "true"}, stream)
    out.mask(["s3cret-value"])
    out.say("-> deploy")
    assert stream.getvalue().splitlines()[0] == "::add-mask::s3cret-value"
    plain = io.StringIO()
    quiet = RunOutput(lambda line: plain.write(line + "\n"), {}, plain)
    quiet.mask(["s3cret-value"])
    quiet.say("-> deploy")
    assert plain.getvalue() == "-> deploy\n"


# -- groups and annotations ------------------------------------------------------------------------


def test_each_stage_is_a_log_group_closed_before_the_next_and_before_the_report() -> None:
    stream = io.StringIO()
    with RunOutput(lambda line: stream.write(line + "\n"), {"GITHUB_ACTIONS": "true"}, stream) as out:
        out.say("-> deploy [web1, web2]")
        for unit in ("web1", "web2"):
            with out.activity("deploy", unit):
                pass
        out.say("-> health%\n [web1]")
        with pytest.raises(ValueError), out.activity("health", "web1"):
            raise ValueError("boom")
        out.end_group()
        out.say("deploy prod: EXIT 1")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "::group::deploy [web1, web2]"
    assert re.fullmatch(r"   web1: deploy ok \(\d+\.\d s\)", lines[1])
    assert lines[2].startswith("   web2: deploy ok")
    assert lines[3:5] == ["::endgroup::", "::group::health%25 [web1]"]
    assert lines[5].startswith("   web1: health failed (")
    assert lines[6:] == ["::endgroup::", "deploy prod: EXIT 1"]


def test_a_group_left_open_by_an_error_is_closed_on_the_way_out() -> None:
    stream = io.StringIO()
    with pytest.raises(KeyError), RunOutput(lambda line: None, {"GITHUB_ACTIONS": "true"}, stream) as out:
        out.say("-> deploy")
        raise KeyError("bug")
    assert stream.getvalue() == "::group::deploy\n::endgroup::\n"


def test_outside_github_actions_no_workflow_command_is_printed() -> None:
    stream, said = io.StringIO(), []
    with RunOutput(said.append, {"GITHUB_ACTIONS": "false"}, stream) as out:
        out.say("-> deploy")
        with out.activity("deploy", "web1"):
            pass
        out.annotate(failed_run())
    assert said == ["-> deploy"] and stream.getvalue() == ""


def test_a_failure_is_an_error_annotation_and_the_rollback_a_warning_with_escaped_text() -> None:
    report = failed_run()
    report.stages[1].detail = "web2: 50% down,\nretry: no"
    commands = workflow.run_annotations(report)
    assert commands == [
        "::error title=deploy prod%3A health failed::web2: 50%25 down,%0Aretry: no",
        "::warning title=deploy prod%3A rolled back::2.0.0 failed (health failed); rolled back to 1.0.0"
        "%0Arestore web1: ok; restore web2: ok",
    ]


def test_a_failed_rollback_is_an_error_naming_its_part_and_host() -> None:
    report = failed_run()
    report.outcome = "rollback_failed"
    report.rollback[1] = StageResult("restore", "failed", 0.9, "web2 is unreachable over ssh", "web2", 3.7)
    commands = workflow.run_annotations(report)
    assert (
        "::error title=deploy prod%3A rollback restore failed on web2::web2 is unreachable over ssh"
        in commands
    )
    assert commands[-1].startswith("::error title=deploy prod%3A the rollback failed::")
    assert not any(c.startswith("::warning") for c in commands)


def test_a_successful_run_has_no_annotation() -> None:
    report = RunReport("prod", "2.0.0", None, {"web1": "1.0.0"}, "deployed")
    report.stages = [StageResult("deploy", "ok", 1.0)]
    assert workflow.run_annotations(report) == []


# -- the summary and its timeline ----------------------------------------------------------------------


def test_the_summary_starts_with_the_outcome_then_stages_by_host_fates_databases_and_the_rollback() -> None:
    markdown = job_summary(failed_run())
    lines = markdown.splitlines()
    assert lines[0] == "### deploy prod: EXIT 1: 2.0.0 failed (health failed); rolled back to 1.0.0"
    assert lines[2] == "version 2.0.0 · commit cccccccccc · 4.7 s"
    assert "| stage | result | time | web1 | web2 |" in lines
    assert "| deploy | ok | 1.5 s | ok 1.4 s | ok 1.5 s |" in lines
    assert "| health | **failed** | 2.0 s | cancelled 0.4 s | **failed** 2.0 s |" in lines
    assert "| web2 | 1.0.0 | restored |" in lines
    assert "| web1 | 0003 | 0004 | 0003 |" in lines
    assert "| restore | web2 | ok | 0.9 s |  |" in lines
    assert lines.index("#### Stages") < lines.index("#### Hosts") < lines.index("#### Rollback: done")
    assert (
        lines.index("#### Rollback: done")
        < lines.index("#### Timeline")
        < lines.index("<details><summary>logs from web2</summary>")
    )


def test_the_timeline_has_a_section_per_host_failed_bars_crit_and_the_rollback_in_its_own_sections() -> None:
    tasks = gantt_tasks(mermaid_block(job_summary(failed_run())))
    assert tasks == [
        ("web1", "deploy", ["done"], 100, 1500),
        ("web1", "health", [], 1600, 2000),  # stopped because web2 failed
        ("web2", "deploy", ["done"], 100, 1600),
        ("web2", "health", ["crit"], 1600, 3600),
        ("rollback web1", "restore", ["active"], 3700, 4500),
        ("rollback web2", "restore", ["active"], 3700, 4600),
    ]


def test_names_from_hosts_and_stages_cannot_break_the_gantt_grammar() -> None:
    report = RunReport("prod;x", "2.0.0", None, {}, "rolled_back")
    hostile = [
        "db:5432",
        "web#1",
        "a;b",
        "50%",
        "section x",
        "click me",
        "2026-01-01",
        "Call it",
        "```",
        "é\x1b[2J",
    ]
    report.stages = [
        StageResult(
            "title: deploy", "failed", 0.0, start=0.0, spans=[Span(h, 0.0, 0.0, "failed") for h in hostile]
        )
    ]
    report.rollback = [StageResult("dateFormat YYYY", "ok", 1.0, "", "gantt", 1.0)]
    lines = render_gantt(report)
    tasks = gantt_tasks(lines)
    assert len(tasks) == len(hostile) + 1 and all(t[2] == ["crit"] for t in tasks[:-1])
    sections = [line.strip() for line in lines if line.strip().startswith("section ")]
    assert sections[0] == "section db 5432" and "section - section x" in sections
    assert all(t[4] > t[3] for t in tasks)  # even an empty bar is drawn
    assert "```" not in "\n".join(lines)


@pytest.mark.parametrize("name", ["deploy (batch 2)", "Health", "migrate"])
def test_a_plain_stage_name_is_kept_as_it_is(name: str) -> None:
    assert safe_name(name) == name


def test_a_huge_evidence_is_cut_to_keep_the_summary_within_the_limit_keeping_its_end() -> None:
    report = failed_run()
    report.evidence = [
        Evidence("web1", "logs", "start\n" + "é" * 50_000 + "\nTHE END"),
        Evidence("web2", "logs", "x" * 100),
    ]
    markdown = job_summary(report, limit=20_000)
    assert len(markdown.encode("utf-8")) <= 20_000
    assert "THE END" in markdown and "start" not in markdown and "[...]" in markdown
    assert "x" * 100 in markdown
    gantt_tasks(mermaid_block(markdown))  # the rest is whole
    small = job_summary(report, limit=1700)
    assert len(small.encode("utf-8")) <= 1700 and "_logs from web1: cut, over the size limit" in small
    assert "#### Timeline" in small  # the evidence goes first


def test_evidence_with_backticks_cannot_close_its_fence() -> None:
    report = failed_run()
    report.evidence = [Evidence("web1", "logs", "a\n```\n<b>not html</b>\n````")]
    markdown = job_summary(report)
    assert "`````\na\n```\n<b>not html</b>\n````\n`````" in markdown


def test_the_summary_of_the_default_limit_stays_under_githubs_one_mebibyte() -> None:
    report = failed_run()
    report.evidence = [Evidence(f"web{i}", "logs", "y" * 5_000_000) for i in range(3)]
    assert len(job_summary(report).encode("utf-8")) < 1024 * 1024


def test_redactor_known_lists_every_form_it_hides() -> None:
    redactor = Redactor(["s3cret-value"])
    assert "s3cret-value" in redactor.known() and "czNjcmV0LXZhbHVl" in redactor.known()  # base64


def test_an_untimed_step_after_the_stages_is_drawn_where_it_happened_not_at_the_start() -> None:
    report = failed_run()
    report.stages.append(StageResult("unlock", "failed", 0.0, "the lock stays: timeout", "web2"))
    tasks = gantt_tasks(render_gantt(report))
    assert ("web2", "unlock", ["crit"], 4600, 4601) in tasks  # after the rollback, as the engine runs it

"""The hosts' journal: one JSON line per deploy or rollback, and what it says is serving."""

from __future__ import annotations

import json

import pytest

from pipeline.journal import (
    FAILED,
    HEALTHY,
    RESTORED,
    ROLLED_BACK,
    Damaged,
    Entry,
    healthy_everywhere,
    last_serving,
    parse_journal,
    read_journal,
)


def entry(version: str, result: str = HEALTHY, event: str = "deploy", host: str = "web1") -> Entry:
    return Entry(
        event=event, version=version, commit="c0ffee" + version.replace(".", ""), previous_version=None,
        db_before="0003", db_after="0004", result=result, reason="", who="ci",
        at="2026-11-21T00:00:00Z", run_url="https://ci/runs/1", host=host,
    )  # fmt: skip


def journal(*entries: Entry) -> str:
    return "".join(e.line() for e in entries)


def test_an_entry_is_one_json_line_that_parses_back_to_the_same_entry() -> None:
    first = entry("1.0.0")
    second = Entry("rollback", "0.9.0", None, "1.0.0", None, None, RESTORED, "1.0.0 health failed", "", "")
    line = first.line()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line)["result"] == "healthy"
    assert parse_journal(line + second.line()) == [first, second]


def test_a_line_with_only_event_version_and_result_gets_empty_defaults() -> None:
    text = '{"event": "deploy", "version": "1.0.0", "result": "healthy"}\n'
    assert parse_journal(text) == [Entry("deploy", "1.0.0", None, None, None, None, HEALTHY, "", "", "")]


def test_unknown_keys_from_a_newer_pipeline_are_ignored() -> None:
    text = '{"event": "deploy", "version": "1.0.0", "result": "healthy", "duration": 3}\n'
    assert [e.version for e in parse_journal(text)] == ["1.0.0"]


def test_torn_lines_and_foreign_json_are_skipped_not_fatal() -> None:
    good = entry("1.0.0")
    text = "\n".join(
        [
            good.line().strip(),
            '{"event": "deploy", "version": "2.0.0", "res',  # a write cut short
            "[1, 2, 3]",
            "42",
            '"text"',
            '{"event": "deploy", "version": "3.0.0"}',  # no result
            "",
            "garbage",
            entry("1.1.0").line(),
        ]
    )
    assert [e.version for e in parse_journal(text)] == ["1.0.0", "1.1.0"]


def test_an_empty_journal_has_no_entries() -> None:
    assert parse_journal("") == []


@pytest.mark.parametrize(
    ("result", "serving"), [(HEALTHY, True), (RESTORED, True), (ROLLED_BACK, False), (FAILED, False)]
)
def test_only_healthy_and_restored_entries_leave_a_release_serving(result: str, serving: bool) -> None:
    assert entry("1.0.0", result).serving is serving


def test_last_serving_is_the_newest_healthy_or_restored_entry() -> None:
    restored = entry("1.0.0", RESTORED, event="rollback")
    entries = [entry("0.9.0"), entry("1.0.0"), entry("2.0.0", ROLLED_BACK), restored, entry("2.0.1", FAILED)]
    assert last_serving(entries) is restored
    assert last_serving(entries[:2]) == entry("1.0.0")


def test_last_serving_is_none_when_nothing_was_ever_healthy() -> None:
    assert last_serving([]) is None
    assert last_serving([entry("1.0.0", ROLLED_BACK), entry("1.0.1", FAILED)]) is None


def test_healthy_everywhere_is_the_newest_version_every_host_served_healthy() -> None:
    web1 = [entry("1.0.0"), entry("1.1.0"), entry("1.2.0")]
    web2 = [entry("1.0.0"), entry("1.1.0"), entry("1.2.0", ROLLED_BACK), entry("1.1.0", RESTORED)]
    assert healthy_everywhere([web1, web2]) == "1.1.0"


def test_a_restore_counts_as_serving_on_that_host() -> None:
    web1 = [entry("1.0.0"), entry("2.0.0")]
    web2 = [entry("2.0.0", ROLLED_BACK), entry("1.0.0", RESTORED, event="rollback")]
    assert healthy_everywhere([web1, web2]) == "1.0.0"


def test_healthy_everywhere_is_none_when_a_host_never_served_a_release_healthy() -> None:
    web1 = [entry("1.0.0")]
    assert healthy_everywhere([web1, [entry("1.0.0", FAILED)]]) is None
    assert healthy_everywhere([web1, []]) is None


def test_healthy_everywhere_is_none_when_the_hosts_share_no_healthy_version() -> None:
    assert healthy_everywhere([[entry("1.0.0")], [entry("2.0.0")]]) is None


def test_healthy_everywhere_of_no_hosts_is_none_and_of_one_host_its_last_serving() -> None:
    assert healthy_everywhere([]) is None
    assert healthy_everywhere([[entry("1.0.0"), entry("2.0.0"), entry("3.0.0", FAILED)]]) == "2.0.0"


GOOD = '{"event": "deploy", "version": "1.0.0", "result": "healthy"'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("garbage", "not JSON (a torn write or a foreign line)"),
        ('{"event": "deploy", "version": "2.0.0", "res', "not JSON (a torn write or a foreign line)"),
        ("1" * 5000, "not JSON (a torn write or a foreign line)"),  # past the integer digit limit
        ("[1, 2]", "not a JSON object but an array"),
        ("null", "not a JSON object but null"),
        ("NaN", "not a JSON object but a number"),
        (
            '{"event": "deploy", "version": 3, "result": "healthy"}',
            "version: a number where a string belongs",
        ),
        (
            '{"event": "deploy", "version": NaN, "result": "healthy"}',
            "version: a number where a string belongs",
        ),
        (GOOD + ', "at": null}', "at: null where a string belongs"),
        (GOOD + ', "who": {"name": "x"}}', "who: an object where a string belongs"),
        (GOOD + ', "reason": ["x"]}', "reason: an array where a string belongs"),
        (GOOD + ', "db_after": 1e999}', "db_after: a number where a string belongs"),
        (GOOD + ', "touched": "yes"}', "touched: a string where true or false belongs"),
        (GOOD + ', "reason": "' + "x" * 5000 + '"}', "reason: longer than 4096 characters"),
        ('{"event": "deploy", "version": "../../etc", "result": "healthy"}', "version: not a version"),
        (GOOD + ', "previous_version": "-rf"}', "previous_version: not a version"),
        (GOOD + ', "commit": "--upload-pack=touch /tmp/x"}', "commit: not a commit id"),
        (GOOD + ', "db_before": "0003; rm -rf /"}', "db_before: not a database revision"),
        ('{"event": "deploy", "version": "3.0.0"}', "no result"),
    ],
)
def test_a_line_that_is_no_record_is_reported_damaged_with_its_line_number(line: str, reason: str) -> None:
    text = entry("1.0.0").line() + line + "\n" + entry("1.1.0").line()
    entries, damaged = read_journal(text)
    assert [e.version for e in entries] == ["1.0.0", "1.1.0"]
    assert damaged == [Damaged(2, reason)]
    assert damaged[0].where() == "line 2"


def test_blank_lines_are_neither_records_nor_damage_and_do_not_shift_line_numbers() -> None:
    text = entry("1.0.0").line() + "\n  \n" + "garbage\n\n"
    assert read_journal(text) == ([entry("1.0.0")], [Damaged(4, "not JSON (a torn write or a foreign line)")])


def test_lines_of_the_end_of_a_journal_are_numbered_from_the_end() -> None:
    text = "garbage\n" + entry("1.0.0").line() + "[]\n" + entry("1.1.0").line() + "\n"
    _, damaged = read_journal(text, from_end=True)
    assert [(d.line, d.where()) for d in damaged] == [
        (-4, "line 4 from the end"),
        (-2, "line 2 from the end"),
    ]


def test_a_damaged_newer_healthy_line_is_never_the_release_that_serves_or_a_rollback_target() -> None:
    hostile = GOOD.replace("1.0.0", "../../../tmp/x") + "}\n"
    entries, damaged = read_journal(entry("1.0.0").line() + entry("2.0.0").line() + hostile)
    assert last_serving(entries) == entry("2.0.0")
    assert healthy_everywhere([entries]) == "2.0.0"
    assert len(damaged) == 1

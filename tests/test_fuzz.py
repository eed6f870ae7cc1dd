"""Properties over arbitrary input: the parsers fail only with the project's own errors."""

from __future__ import annotations

import json
import re
from datetime import date

import semver
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.changelog import parse_changelog, release_changelog
from pipeline.commits import Commit, judge, parse_log
from pipeline.config import CONVENTIONAL_TYPES, PipelineConfig, load_config
from pipeline.engine.values import parse_lock
from pipeline.errors import ConfigError, InputError
from pipeline.journal import read_journal
from pipeline.operate import history_data, render_history, render_status, status_data
from pipeline.targets.hostfiles import parse_state
from pipeline.versions import parse_version, release_tags

small = settings(max_examples=100, deadline=None)

# Line fragments that reach the parsers' branches far more often than uniform text would.
CHANGELOG_LINES = st.one_of(
    st.sampled_from(
        [
            "## [Unreleased]",
            "## [1.0.0] - 2024-01-02",
            "## [1.0.0]",
            "## [v2.0.0] - 2024-01-02",
            "## [1.1.0] - 2024-13-01",
            "## [0.9.0] - 2023-12-01 [YANKED]",
            "## nonsense",
            "##",
            "### Added",
            "```",
            "- a change",
            "",
            "[unreleased]: https://github.com/o/r/compare/v1.0.0...HEAD",
            "[1.0.0]: https://github.com/o/r/compare/v0.9.0...v1.0.0",
        ]
    ),
    st.text(max_size=30),
)
CHANGELOG_TEXT = st.one_of(st.text(), st.lists(CHANGELOG_LINES, max_size=25).map("\n".join))


@small
@given(CHANGELOG_TEXT)
def test_parse_changelog_never_raises_and_problem_lines_are_in_the_file(text):
    log = parse_changelog(text)
    assert all(0 <= p.line <= len(log.lines) for p in log.problems)
    assert [s.line for s in log.sections] == sorted(s.line for s in log.sections)
    assert bool(log.sections) or bool(log.problems)


VERSION_TEXT = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\Av?[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[0-9A-Za-z.-]{0,8})?\s{0,2}\Z"),
)


@small
@given(VERSION_TEXT)
def test_parse_version_raises_only_input_error_and_returns_exactly_the_text(text):
    try:
        version = parse_version(text)
    except InputError as exc:
        assert str(exc).startswith("VERSION: ")
    else:
        assert str(version) == text.removesuffix("\n").removesuffix("\r")


IDENTIFIER = st.from_regex(r"\A(0|[1-9][0-9]{0,3}|[0-9]{0,2}[A-Za-z-][0-9A-Za-z-]{0,5})\Z")
BUILD_ID = st.from_regex(r"\A[0-9A-Za-z-]{1,6}\Z")
VERSIONS = st.builds(
    semver.Version,
    major=st.integers(0, 10**6),
    minor=st.integers(0, 10**6),
    patch=st.integers(0, 10**6),
    prerelease=st.none() | st.lists(IDENTIFIER, min_size=1, max_size=3).map(".".join),
    build=st.none() | st.lists(BUILD_ID, min_size=1, max_size=3).map(".".join),
)


@small
@given(VERSIONS, st.sampled_from(["", "\n", "\r\n"]))
def test_any_semantic_version_parses_back_to_itself(version, ending):
    parsed = parse_version(str(version) + ending)
    assert str(parsed) == str(version)


@small
@given(st.lists(st.tuples(st.one_of(VERSIONS.map(str), st.text(max_size=12)), st.text(max_size=4))))
def test_release_tags_are_exactly_the_prefixed_versions_highest_first(pairs):
    tags = [("v" + name, commit) for name, commit in pairs]
    found = release_tags(tags, "v")
    assert [t.version for t in found] == sorted((t.version for t in found), reverse=True)
    assert all(t.name == f"v{t.version}" and (t.name, t.commit) in tags for t in found)


@small
@given(st.text(), st.integers(0, 5), st.booleans(), st.booleans())
def test_judge_never_raises_and_a_verdict_is_either_a_bump_or_a_problem(message, parents, merges, reverts):
    verdict = judge(Commit("0" * 40, parents, message), CONVENTIONAL_TYPES, merges, reverts)
    assert verdict.ok == (verdict.problem is None)
    if verdict.ok:
        assert verdict.bump in {"major", "minor", "patch", None}
    else:
        assert verdict.bump is None


@small
@given(st.text())
def test_parse_log_never_raises_on_arbitrary_output(output):
    for commit in parse_log(output):
        assert commit.parents >= 0
        assert "\0" not in commit.message


SHAS = st.from_regex(r"\A[0-9a-f]{40}\Z")
MESSAGES = (
    st.text(st.characters(blacklist_characters="\0\x1f", blacklist_categories=("Cs",)), min_size=1)
    .map(lambda m: m.strip("\n"))
    .filter(bool)
)


@small
@given(st.lists(st.tuples(SHAS, st.lists(SHAS, max_size=3), MESSAGES), max_size=5))
def test_parse_log_reads_back_what_git_log_writes(commits):
    output = "".join(f"{sha}\x1f{' '.join(p)}\x1f{msg}\n\0" for sha, p, msg in commits)
    assert parse_log(output) == [Commit(sha, len(p), msg) for sha, p, msg in commits]


KEYS = st.one_of(
    st.sampled_from(
        [
            "checklist",
            "release",
            "lint",
            "test",
            "branches",
            "tag_prefix",
            "types",
            "remote",
            "commit_message",
            "tag_message",
            "require_clean",
            "convention",
            "commits_from",
        ]
    ),
    st.text(max_size=8),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
DATA = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@small
@given(st.one_of(DATA, st.dictionaries(KEYS, DATA, max_size=4)))
def test_load_config_raises_only_config_error_naming_the_source(raw):
    try:
        config = load_config(raw, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml: pipeline")
    else:
        assert isinstance(config, PipelineConfig)


# Text inside a changelog line: no line breaks of any kind (those are covered by explicit tests
# in test_changelog.py), and nothing that starts a heading, link or fence.
WORDS = st.text(st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs")), min_size=1, max_size=20)
SEMVERS = st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)).map(
    lambda t: "{}.{}.{}".format(*t)
)
DATES = st.dates(date(2000, 1, 1), date(2099, 12, 31))


@small
@given(
    released=st.lists(st.tuples(SEMVERS, DATES), unique_by=lambda r: r[0], max_size=4),
    unreleased=st.lists(WORDS.map(lambda w: "- " + w), max_size=4),
    new=SEMVERS,
    day=DATES,
    with_links=st.booleans(),
)
def test_a_released_changelog_reparses_with_the_new_section_and_no_problems(
    released, unreleased, new, day, with_links
):
    if any(v == new for v, _ in released):
        new = "99.0.0"
    lines = ["# Changelog", "", "## [Unreleased]", "", *unreleased, ""]
    for version, when in released:
        lines += [f"## [{version}] - {when.isoformat()}", "", "- released", ""]
    if with_links:
        lines += ["[unreleased]: https://github.com/o/r/compare/v0.0.1...HEAD"]
    text = "\n".join(lines) + "\n"
    before = parse_changelog(text)
    assert before.problems == ()

    after = parse_changelog(release_changelog(text, new, day))

    assert after.problems == ()
    section = after.section(new)
    assert section is not None
    assert section.date == day.isoformat()
    assert section.body == before.unreleased.body
    assert not after.unreleased.has_content
    for old in before.sections[1:]:
        assert after.section(old.name).body == old.body
    if with_links:
        assert after.links["unreleased"][1] == f"https://github.com/o/r/compare/v{new}...HEAD"
        assert after.links[new][1] == f"https://github.com/o/r/compare/v0.0.1...v{new}"


# Journal lines and locks read back from a host: JSON values of the right and wrong types under the
# record's keys, torn lines, section markers and control characters.
ENTRY_KEYS = st.sampled_from(
    ["event", "version", "result", "commit", "previous_version", "db_before", "db_after", "db_end", "who",
     "at", "reason", "run", "phase", "touched", "host", "hosts", "run_url", "operation", "runner"]
)  # fmt: skip
HOST_TEXT = st.one_of(
    st.sampled_from(
        ["healthy", "in_progress", "1.0.0", "a" * 40, "0003", "r1", "\x1b[2J", "\r\b\x9b", "\udc80"]
    ),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), HOST_TEXT, st.just(2**70)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOST_TEXT, inner, max_size=3),
    max_leaves=8,
)
RECORDS = st.dictionaries(ENTRY_KEYS, JSON_VALUES | HOST_TEXT, max_size=10).map(
    lambda d: json.dumps(d, allow_nan=True)
)
HOST_LINES = st.one_of(
    RECORDS,
    RECORDS.map(lambda line: line[: len(line) // 2]),
    st.sampled_from(["", "held", "free", "NaN", "1" * 5000, "[" * 3000, "--pipeline-section-lock"]),
    st.sampled_from(["--pipeline-section-journal", "--pipeline-section-commit", "--pipeline-section-size"]),
    st.text(max_size=40),
)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


hostile = settings(max_examples=100, deadline=None)


@small
@given(st.lists(HOST_LINES.filter(lambda line: "\n" not in line and "\r" not in line), max_size=12))
def test_every_journal_line_is_an_entry_or_a_damaged_line_and_never_an_exception(lines):
    entries, damaged = read_journal("\n".join(lines))
    assert len(entries) + len(damaged) == len([line for line in lines if line.strip()])
    assert all(isinstance(e.version, str) and isinstance(e.touched, bool) for e in entries)
    assert all(0 < d.line <= len(lines) for d in damaged)


@hostile
@given(st.lists(HOST_LINES, max_size=12), st.booleans(), st.sampled_from([0, 1, 71, 255]))
def test_whatever_a_host_sends_back_parses_and_prints_without_control_characters(lines, marked, code):
    out = "\n".join(["--pipeline-section-journal"] * marked + lines)
    state = parse_state("web1", code, out, out[-300:])
    text = "\n".join(render_status("prod", [state]) + render_history([state], 20))
    assert not CONTROL.search(text)
    assert not CONTROL.search(json.dumps(status_data("prod", [state])))
    assert not CONTROL.search(json.dumps(history_data("prod", [state], 20)))


@hostile
@given(st.one_of(RECORDS, JSON_VALUES.map(json.dumps), st.text(max_size=60)))
def test_any_lock_content_is_a_held_lock_that_prints_safely_and_only_ours_can_be_taken_over(text):
    lock = parse_lock(text)
    assert all(
        isinstance(getattr(lock, k), str) for k in ("who", "at", "version", "run", "run_url", "operation")
    )
    assert (lock.renewed, lock.lease) == (None, None)  # a heartbeat is never read from the text
    assert not CONTROL.search(lock.describe())
    if lock.damaged:
        assert lock.run == ""

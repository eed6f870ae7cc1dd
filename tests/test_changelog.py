"""Keep a Changelog text: sections, problems by line, and moving [Unreleased] into a release."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.changelog import Problem, Section, parse_changelog, release_changelog
from pipeline.errors import InputError

EXPECTED = "expected `## [Unreleased]` or `## [1.2.3] - YYYY-MM-DD`"

CHANGELOG = """\
# Changelog

All notable changes to this project are documented here.

## [Unreleased]

### Added
- a new flag

## [1.0.0] - 2024-01-02

### Fixed
- a crash

## [0.9.0] - 2023-12-01 [YANKED]

- a bad release

[unreleased]: https://github.com/o/r/compare/v1.0.0...HEAD
[1.0.0]: https://github.com/o/r/compare/v0.9.0...v1.0.0
[0.9.0]: https://github.com/o/r/releases/tag/v0.9.0
"""


def test_a_well_formed_changelog_has_its_sections_in_file_order_and_no_problems():
    log = parse_changelog(CHANGELOG)
    assert log.problems == ()
    assert [(s.name, s.line, s.date) for s in log.sections] == [
        ("Unreleased", 5, None),
        ("1.0.0", 10, "2024-01-02"),
        ("0.9.0", 15, "2023-12-01"),
    ]


def test_section_bodies_run_to_the_next_heading_and_the_last_stops_at_the_link_references():
    log = parse_changelog(CHANGELOG)
    assert log.sections[0].body == ("", "### Added", "- a new flag", "")
    assert log.sections[2].body == ("", "- a bad release", "")


def test_link_references_at_the_bottom_are_keyed_by_lowercase_name_with_their_line():
    assert parse_changelog(CHANGELOG).links == {
        "unreleased": (19, "https://github.com/o/r/compare/v1.0.0...HEAD"),
        "1.0.0": (20, "https://github.com/o/r/compare/v0.9.0...v1.0.0"),
        "0.9.0": (21, "https://github.com/o/r/releases/tag/v0.9.0"),
    }


def test_sections_are_found_by_name_ignoring_case():
    log = parse_changelog("## [unreleased]\n\n## [1.0.0] - 2024-01-02\n")
    assert log.unreleased is not None
    assert log.unreleased.name == "Unreleased"
    assert log.section("UNRELEASED") is log.unreleased
    assert log.section("1.0.0").date == "2024-01-02"
    assert log.section("2.0.0") is None


def test_a_changelog_without_unreleased_has_none():
    assert parse_changelog("## [1.0.0] - 2024-01-02\n").unreleased is None


@pytest.mark.parametrize(
    ("heading", "message"),
    [
        ("## 1.0.0 - 2024-01-02", f"malformed heading `## 1.0.0 - 2024-01-02`: {EXPECTED}"),
        (
            "## [1.0.0] \u2013 2024-01-02",
            f"malformed heading `## [1.0.0] \u2013 2024-01-02`: {EXPECTED}",
        ),
        (
            "## [1.0.0] - 2024-01-02 extra",
            f"malformed heading `## [1.0.0] - 2024-01-02 extra`: {EXPECTED}",
        ),
        ("##", f"malformed heading `## `: {EXPECTED}"),
        (
            "## [v1.0.0] - 2024-01-02",
            f"`v1.0.0` is not a semantic version (drop the 'v'): {EXPECTED}",
        ),
        ("## [1.0] - 2024-01-02", f"`1.0` is not a semantic version: {EXPECTED}"),
        ("## [1.0.0]", "the section for 1.0.0 has no date: write `## [1.0.0] - YYYY-MM-DD`"),
        ("## [1.0.0] - 2024-13-01", "`2024-13-01` is not a date in the form YYYY-MM-DD"),
        ("## [1.0.0] - 2024-02-30", "`2024-02-30` is not a date in the form YYYY-MM-DD"),
        ("## [1.0.0] - 20240102", "`20240102` is not a date in the form YYYY-MM-DD"),
        ("## [1.0.0] - 02/01/2024", "`02/01/2024` is not a date in the form YYYY-MM-DD"),
        ("## [Unreleased] - 2024-01-02", "the [Unreleased] section takes no date"),
    ],
)
def test_a_bad_heading_is_a_problem_on_its_own_line(heading, message):
    text = f"# Changelog\n\n## [Unreleased]\n\n{heading}\n\n- x\n"
    log = parse_changelog(text)
    assert log.problems == (Problem(5, message),)
    assert [s.name for s in log.sections] == ["Unreleased"]


def test_every_problem_is_reported_not_just_the_first():
    text = "## [v1.0.0] - 2024-01-02\n\n## [0.9.0]\n\n## [0.8.0] - 2024-1-1\n"
    assert [p.line for p in parse_changelog(text).problems] == [1, 3, 5]


def test_a_duplicated_version_names_the_line_where_it_first_appeared():
    text = "## [1.0.0] - 2024-01-02\n\n- a\n\n## [1.0.0] - 2024-01-03\n"
    assert parse_changelog(text).problems == (Problem(5, "[1.0.0] appears again (first on line 1)"),)


def test_a_second_unreleased_section_in_another_case_is_a_duplicate():
    text = "## [Unreleased]\n\n## [unreleased]\n"
    assert parse_changelog(text).problems == (Problem(3, "[Unreleased] appears again (first on line 1)"),)


@pytest.mark.parametrize("text", ["", "\n", "   \n\n\t\n"])
def test_an_empty_file_is_one_problem_for_the_whole_file(text):
    assert parse_changelog(text).problems == (Problem(0, "the file is empty"),)


def test_a_file_without_sections_is_one_problem_for_the_whole_file():
    log = parse_changelog("# Changelog\n\nNothing here yet.\n")
    assert log.problems == (Problem(0, "has no `## [version] - YYYY-MM-DD` or `## [Unreleased]` section"),)


def test_headings_inside_code_fences_are_ignored():
    text = (
        "## [Unreleased]\n\n"
        "```markdown\n## not a heading\n## [1.0.0]\n[unreleased]: https://x/y\n```\n\n"
        "## [1.0.0] - 2024-01-02\n"
    )
    log = parse_changelog(text)
    assert log.problems == ()
    assert [(s.name, s.line) for s in log.sections] == [("Unreleased", 1), ("1.0.0", 9)]
    assert log.links == {}


def test_level_three_headings_are_subsections_not_sections():
    log = parse_changelog("## [Unreleased]\n\n### Added\n### [2.0.0]\n#### deep\n")
    assert log.problems == ()
    assert len(log.sections) == 1
    assert log.sections[0].body == ("", "### Added", "### [2.0.0]", "#### deep")


def test_a_yanked_release_is_an_ordinary_dated_section():
    log = parse_changelog("## [0.9.0] - 2023-12-01 [YANKED]\n")
    assert log.problems == ()
    assert (log.sections[0].name, log.sections[0].date) == ("0.9.0", "2023-12-01")


@pytest.mark.parametrize(
    ("body", "has_content"),
    [
        ((), False),
        (("", "  ", ""), False),
        (("### Added", "", "### Fixed"), False),
        (("### Added", "- a new flag"), True),
        (("plain words",), True),
    ],
)
def test_a_section_has_content_only_beyond_sub_headings_and_blank_lines(body, has_content):
    assert Section("Unreleased", 1, None, body, 1 + len(body)).has_content is has_content


def test_an_empty_unreleased_section_before_the_links_has_no_content():
    log = parse_changelog("## [Unreleased]\n\n[unreleased]: https://x/compare/v1.0.0...HEAD\n")
    assert log.unreleased.body == ("",)
    assert not log.unreleased.has_content


# -- release_changelog ----------------------------------------------------------------------


def test_releasing_moves_unreleased_into_a_dated_section_and_updates_the_comparison_links():
    assert (
        release_changelog(CHANGELOG, "1.1.0", date(2024, 3, 4))
        == """\
# Changelog

All notable changes to this project are documented here.

## [Unreleased]

## [1.1.0] - 2024-03-04

### Added
- a new flag

## [1.0.0] - 2024-01-02

### Fixed
- a crash

## [0.9.0] - 2023-12-01 [YANKED]

- a bad release

[unreleased]: https://github.com/o/r/compare/v1.1.0...HEAD
[1.1.0]: https://github.com/o/r/compare/v1.0.0...v1.1.0
[1.0.0]: https://github.com/o/r/compare/v0.9.0...v1.0.0
[0.9.0]: https://github.com/o/r/releases/tag/v0.9.0
"""
    )


def test_releasing_a_changelog_without_links_only_adds_the_heading():
    text = "# Changelog\n\n## [Unreleased]\n\n- x\n\n## [1.0.0] - 2024-01-02\n\n- y\n"
    assert release_changelog(text, "1.1.0", date(2024, 3, 4)) == (
        "# Changelog\n\n## [Unreleased]\n\n## [1.1.0] - 2024-03-04\n\n- x\n\n## [1.0.0] - 2024-01-02\n\n- y\n"
    )


@pytest.mark.parametrize("ending", ["", "\n", "\n\n"])
def test_releasing_keeps_the_file_ending_as_it_was(ending):
    text = "## [Unreleased]\n\n- x" + ending
    out = release_changelog(text, "0.1.0", date(2024, 1, 1))
    assert out == "## [Unreleased]\n\n## [0.1.0] - 2024-01-01\n\n- x" + ending


def test_releasing_uses_the_tag_prefix_in_the_links_and_keeps_the_link_name_as_written():
    text = (
        "## [Unreleased]\n\n- x\n\n## [1.0.0] - 2024-01-02\n\n"
        "[Unreleased]: https://gitlab.com/o/r/-/compare/release-1.0.0...main\n"
    )
    out = release_changelog(text, "2.0.0", date(2024, 5, 6), tag_prefix="release-")
    assert out.splitlines()[-2:] == [
        "[Unreleased]: https://gitlab.com/o/r/-/compare/release-2.0.0...main",
        "[2.0.0]: https://gitlab.com/o/r/-/compare/release-1.0.0...release-2.0.0",
    ]


def test_a_non_comparison_unreleased_link_is_left_alone():
    text = "## [Unreleased]\n\n- x\n\n[unreleased]: https://github.com/o/r/commits/main\n"
    out = release_changelog(text, "1.0.0", date(2024, 1, 1))
    assert out.splitlines()[-1] == "[unreleased]: https://github.com/o/r/commits/main"
    assert "[1.0.0]:" not in out


def test_links_written_above_the_sections_are_updated_in_place():
    text = "[unreleased]: https://x/compare/v1.0.0...HEAD\n\n## [Unreleased]\n\n- x\n"
    assert release_changelog(text, "1.1.0", date(2024, 1, 1)) == (
        "[unreleased]: https://x/compare/v1.1.0...HEAD\n"
        "[1.1.0]: https://x/compare/v1.0.0...v1.1.0\n\n"
        "## [Unreleased]\n\n## [1.1.0] - 2024-01-01\n\n- x\n"
    )


def test_released_changelog_parses_cleanly_with_an_empty_unreleased_section():
    log = parse_changelog(release_changelog(CHANGELOG, "1.1.0", date(2024, 3, 4)))
    assert log.problems == ()
    assert not log.unreleased.has_content
    assert log.section("1.1.0").body == ("", "### Added", "- a new flag", "")
    assert log.links["1.1.0"] == (22, "https://github.com/o/r/compare/v1.0.0...v1.1.0")


def test_releasing_without_an_unreleased_section_is_an_input_error():
    with pytest.raises(InputError, match="no \\[Unreleased\\] section"):
        release_changelog("## [1.0.0] - 2024-01-02\n", "1.1.0", date(2024, 1, 1))


# -- line endings and unusual tag prefixes ---------------------------------------------------


def test_releasing_a_crlf_changelog_keeps_its_crlf_line_endings():
    text = "## [Unreleased]\r\n\r\n- x\r\n"
    out = release_changelog(text, "1.0.0", date(2024, 1, 1))
    assert out == "## [Unreleased]\r\n\r\n## [1.0.0] - 2024-01-01\r\n\r\n- x\r\n"


def test_releasing_keeps_unusual_line_separators_inside_a_line():
    text = "## [Unreleased]\n\n- a\u2028b\n"
    out = release_changelog(text, "1.0.0", date(2024, 1, 1))
    assert out == "## [Unreleased]\n\n## [1.0.0] - 2024-01-01\n\n- a\u2028b\n"


def test_problem_lines_count_newlines_only():
    text = "## [Unreleased]\n\n- a\u2028b\n\n## [1.0.0]\n"
    assert [p.line for p in parse_changelog(text).problems] == [5]


def test_releasing_with_a_tag_prefix_containing_a_slash_updates_the_links():
    text = "## [Unreleased]\n\n- x\n\n[unreleased]: https://github.com/o/r/compare/release/1.0.0...HEAD\n"
    out = release_changelog(text, "1.1.0", date(2024, 1, 1), tag_prefix="release/")
    assert out.splitlines()[-2:] == [
        "[unreleased]: https://github.com/o/r/compare/release/1.1.0...HEAD",
        "[1.1.0]: https://github.com/o/r/compare/release/1.0.0...release/1.1.0",
    ]


COMMITIZEN_STYLE = "## Unreleased\n\n" + "".join(
    f"## v1.{n}.0 (2024-01-{n + 1:02d})\n\n### Feat\n\n- thing {n}\n\n" for n in range(9, -1, -1)
)
RELEASE_PLEASE_STYLE = "# Changelog\n\n" + "".join(
    f"## [1.{n}.0](https://github.com/a/b/compare/v1.{n - 1}.0...v1.{n}.0) (2024-02-0{n})\n\n- x\n\n"
    for n in range(5, 0, -1)
)


@pytest.mark.parametrize(
    ("text", "line", "count", "first"),
    [
        (COMMITIZEN_STYLE, 1, 11, "`## Unreleased`"),
        (
            RELEASE_PLEASE_STYLE,
            3,
            5,
            "`## [1.5.0](https://github.com/a/b/compare/v1.4.0...v1.5.0) (2024-02-05)`",
        ),
        ("## 1.2.0\n\n## 1.1.0\n\n## 1.0.0\n", 1, 3, "`## 1.2.0`"),
    ],
)
def test_a_changelog_in_another_format_is_one_problem_saying_so(text, line, count, first):
    problems = parse_changelog(text).problems
    assert len(problems) == 1
    assert problems[0].line == line
    assert problems[0].message.startswith(
        f"not in Keep a Changelog format: {count} `##` headings, such as {first[:64]}"
    )
    assert "convert the file as keepachangelog.com shows" in problems[0].message


def test_a_few_stray_headings_in_a_keep_a_changelog_file_are_reported_line_by_line():
    text = (
        "## [Unreleased]\n\n## 1.2.0\n\n## [1.1.0] - 2024-01-02\n\n## [1.0.0] - 2024-01-01\n\n"
        "## Notes\n\n## Upgrading\n"
    )
    assert [p.line for p in parse_changelog(text).problems] == [3, 9, 11]

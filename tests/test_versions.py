"""VERSION text, release tags and the next version: pure functions over text and values."""

from __future__ import annotations

import pytest
import semver

from pipeline.errors import ExitCode, InputError
from pipeline.versions import ReleaseTag, next_version, parse_version, release_tags

V = semver.Version.parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", semver.Version(1, 2, 3)),
        ("1.2.3\n", semver.Version(1, 2, 3)),
        ("1.2.3\r\n", semver.Version(1, 2, 3)),
        ("0.0.0", semver.Version(0, 0, 0)),
        ("2.0.0-rc.1\n", semver.Version(2, 0, 0, prerelease="rc.1")),
        ("1.0.0-alpha.beta-1.0", semver.Version(1, 0, 0, prerelease="alpha.beta-1.0")),
        ("1.2.3+build.5", semver.Version(1, 2, 3, build="build.5")),
        ("1.2.3-rc.1+sha.0a1b2c\n", semver.Version(1, 2, 3, prerelease="rc.1", build="sha.0a1b2c")),
    ],
)
def test_a_semantic_version_with_at_most_one_final_newline_parses(text, expected):
    parsed = parse_version(text)
    assert parsed == expected
    assert str(parsed) == str(expected)  # == ignores build metadata; the text does not


def test_an_empty_file_is_rejected_naming_the_file():
    with pytest.raises(InputError) as caught:
        parse_version("\n", "app/VERSION")
    assert str(caught.value) == "app/VERSION: the file is empty; write a version such as 1.0.0"
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_version_with_v_prefix_is_rejected_naming_the_file_and_the_fix():
    with pytest.raises(InputError, match=r"^app/VERSION: 'v1\.2\.3' has a 'v' prefix; write 1\.2\.3$"):
        parse_version("v1.2.3\n", "app/VERSION")


def test_two_lines_are_rejected_even_when_both_are_versions():
    with pytest.raises(InputError, match=r"^VERSION: holds more than one line; write only the version$"):
        parse_version("1.2.3\n1.2.4\n")


@pytest.mark.parametrize("text", [" 1.2.3", "1.2.3 ", "\t1.2.3\n", "1.2.3\t", "1 .2.3"])
def test_spaces_and_tabs_around_or_inside_the_version_are_rejected(text):
    with pytest.raises(InputError, match=r"^VERSION: .* contains spaces; write only the version$"):
        parse_version(text)


@pytest.mark.parametrize(
    "text",
    [
        "1.2",
        "1.2.3.4",
        "latest",
        "01.2.3",  # leading zero in MAJOR
        "1.02.3",
        "1.2.03",
        "1.2.3-rc.01",  # leading zero in a numeric pre-release identifier
        "1.2.3-",
        "1.2.3+",
        "\uff11.2.3",  # a full-width digit: Unicode says digit, semver says ASCII
        "1.\u0662.3",  # an Arabic-Indic digit
        "1.2.3\x00",
    ],
)
def test_text_that_is_not_a_semantic_version_is_rejected_naming_the_file(text):
    with pytest.raises(InputError) as caught:
        parse_version(text, "pkg/VERSION")
    message = str(caught.value)
    assert message.startswith("pkg/VERSION: ")
    assert message.endswith("is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.0 or 2.0.0-rc.1)")


def test_a_blank_line_after_the_version_counts_as_a_second_line():
    with pytest.raises(InputError, match="more than one line"):
        parse_version("1.2.3\n\n")


def test_a_very_long_garbage_version_is_shortened_in_the_message():
    with pytest.raises(InputError) as caught:
        parse_version("x" * 500)
    assert f"'{'x' * 40}...' is not a semantic version" in str(caught.value)
    assert len(str(caught.value)) < 200


# -- release tags ---------------------------------------------------------------------------


def test_release_tags_keep_only_prefix_plus_semver_highest_first():
    tags = [
        ("v0.9.0", "c9"),
        ("v1.0.0", "c10"),
        ("nightly", "cn"),
        ("v1.0", "cx"),
        ("vv1.1.0", "cvv"),
        ("1.2.0", "cbare"),
        ("v1.0.1", "c101"),
    ]
    assert release_tags(tags, "v") == [
        ReleaseTag("v1.0.1", V("1.0.1"), "c101"),
        ReleaseTag("v1.0.0", V("1.0.0"), "c10"),
        ReleaseTag("v0.9.0", V("0.9.0"), "c9"),
    ]


def test_release_tags_are_ordered_by_semver_precedence_not_by_text():
    tags = [(f"v{v}", v) for v in ("1.0.0", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-rc.1", "0.10.0", "0.9.0")]
    assert [t.name for t in release_tags(tags, "v")] == [
        "v1.0.0",
        "v1.0.0-rc.10",
        "v1.0.0-rc.2",
        "v1.0.0-rc.1",
        "v0.10.0",
        "v0.9.0",
    ]


def test_pre_releases_sort_by_identifier_precedence():
    tags = [(f"v1.0.0-{p}", p) for p in ("beta", "alpha.1", "alpha", "rc.1", "beta.2")]
    assert [t.commit for t in release_tags(tags, "v")] == [
        "rc.1",
        "beta.2",
        "beta",
        "alpha.1",
        "alpha",
    ]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", ["2.0.0", "1.0.0"]),
        ("release-", ["release-3.0.0"]),
        ("app/v", ["app/v4.0.0"]),
    ],
)
def test_release_tags_use_exactly_the_configured_prefix(prefix, expected):
    tags = [
        ("v5.0.0", "a"),
        ("2.0.0", "b"),
        ("release-3.0.0", "c"),
        ("app/v4.0.0", "d"),
        ("1.0.0", "e"),
    ]
    assert [t.name for t in release_tags(tags, prefix)] == expected


def test_release_tags_of_nothing_is_empty():
    assert release_tags([], "v") == []


# -- next version ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "bump", "expected"),
    [
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "patch", "1.2.4"),
        ("0.9.9", "minor", "0.10.0"),
        (None, "major", "1.0.0"),
        (None, "minor", "0.1.0"),
        (None, "patch", "0.0.1"),
    ],
)
def test_next_version_bumps_the_last_final_release(last, bump, expected):
    assert str(next_version(V(last) if last else None, bump)) == expected


def test_first_pre_release_of_a_bump_is_rc_1():
    assert str(next_version(V("1.2.3"), "minor", "rc")) == "1.3.0-rc.1"


def test_pre_release_counts_past_the_highest_existing_tag_of_the_same_target():
    existing = [V("1.3.0-rc.1"), V("1.3.0-rc.2"), V("1.3.0-rc.10"), V("1.2.3")]
    assert str(next_version(V("1.2.3"), "minor", "rc", existing)) == "1.3.0-rc.11"


def test_pre_releases_of_other_targets_or_labels_do_not_count():
    existing = [V("1.4.0-rc.7"), V("1.3.0-beta.9"), V("1.3.0-rcx.5"), V("1.3.0-rc")]
    assert str(next_version(V("1.2.3"), "minor", "rc", existing)) == "1.3.0-rc.1"


def test_a_pre_release_label_other_than_rc_counts_its_own_tags():
    existing = [V("2.0.0-beta.1"), V("2.0.0-rc.4")]
    assert str(next_version(V("1.2.3"), "major", "beta", existing)) == "2.0.0-beta.2"


def test_an_empty_pre_label_means_a_final_release():
    assert str(next_version(V("1.2.3"), "patch", "", [V("1.2.4-rc.1")])) == "1.2.4"


def test_existing_tags_can_be_any_iterable_even_a_generator():
    existing = (V(f"1.0.0-rc.{n}") for n in (1, 2))
    assert str(next_version(None, "major", "rc", existing)) == "1.0.0-rc.3"


@pytest.mark.parametrize("pre", ["01", "rc!", "r c", "é"])
def test_a_pre_label_that_makes_no_semantic_version_is_refused(pre):
    with pytest.raises(InputError, match=r"^--pre: .* does not make a semantic version"):
        next_version(semver.Version(1, 0, 0), "minor", pre)

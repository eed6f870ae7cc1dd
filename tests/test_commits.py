"""Conventional Commits 1.0.0: judging messages, the bump they call for, and reading git log."""

from __future__ import annotations

import pytest

from pipeline.commits import Commit, Verdict, bump_for, judge, parse_log
from pipeline.config import CONVENTIONAL_TYPES

SHA = "0123456789abcdef0123456789abcdef01234567"
ALLOWED = ", ".join(CONVENTIONAL_TYPES)


def verdict(message: str, parents: int = 1, **allow: bool) -> Verdict:
    return judge(Commit(SHA, parents, message), CONVENTIONAL_TYPES, **allow)


@pytest.mark.parametrize(
    ("message", "bump"),
    [
        ("feat: add a flag", "minor"),
        ("fix(api): handle empty input", "patch"),
        ("docs: explain the lock", "patch"),
        ("chore(deps): bump ruff", "patch"),
        ("revert: undo the flag", "patch"),
        ("feat!: drop python 3.9", "major"),
        ("fix(scope)!: rename the flag", "major"),
        ("feat(api-v2): add endpoint", "minor"),
        ("fix: a\n\nBREAKING CHANGE: the flag is gone", "major"),
        ("fix: a\n\nBREAKING-CHANGE: the flag is gone", "major"),
        ("docs: a\n\nSome body.\n\nRefs: #12\nBREAKING CHANGE: moved docs", "major"),
        ("feat: a\n\nA body paragraph.\n\nAnother paragraph.\n", "minor"),
        ("feat: subject mentions BREAKING CHANGE: but only in the subject", "minor"),
        ("fix: a\n\nbreaking change: lowercase is not the footer", "patch"),
        ("fix: a\n\nBREAKING CHANGE:", "patch"),  # a footer needs a value
    ],
)
def test_a_conventional_commit_passes_with_the_bump_it_calls_for(message, bump):
    result = verdict(message)
    assert result.ok
    assert result.problem is None
    assert result.bump == bump


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("", "the message is empty"),
        ("\n\n", "the message is empty"),
        ("wip: stuff", f"unknown type `wip` (allowed: {ALLOWED})"),
        ("Feat: add a flag", f"unknown type `Feat`; write `feat` (allowed: {ALLOWED})"),
        ("FIX: a crash", f"unknown type `FIX`; write `fix` (allowed: {ALLOWED})"),
        ("add a flag", "the subject is not `type(scope): description`"),
        ("feat add a flag", "the subject is not `type(scope): description`"),
        ("feat(api) : x", "the subject is not `type(scope): description`"),
        ("feat!(api): x", "the subject is not `type(scope): description`"),
        ("feat:x", "the type must be followed by `: ` (a colon and one space)"),
        ("feat:\tx", "the type must be followed by `: ` (a colon and one space)"),
        ("feat:", "the description after `: ` is empty"),
        ("feat(): x", "the scope in parentheses is empty"),
        ("feat( ): x", "the scope in parentheses is empty"),
        ("feat: x\nno blank line", "the body must be separated from the subject by a blank line"),
        ("fixup! feat: x", "a fixup/squash commit: squash it before it lands"),
        ("squash! feat: x", "a fixup/squash commit: squash it before it lands"),
        ("amend! feat: x", "a fixup/squash commit: squash it before it lands"),
    ],
)
def test_a_message_breaking_the_convention_fails_with_a_reason(message, problem):
    result = verdict(message)
    assert not result.ok
    assert result.problem == problem
    assert result.bump is None


def test_an_empty_description_after_colon_and_space_is_named_as_such():
    assert verdict("feat: ").problem == "the description after `: ` is empty"


def test_configured_types_replace_the_defaults():
    commit = Commit(SHA, 1, "feat: x")
    assert judge(commit, ("fix",)).problem == "unknown type `feat` (allowed: fix)"
    assert judge(Commit(SHA, 1, "deploy: x"), ("deploy",)).bump == "patch"


MERGES = [
    "Merge branch 'feature/x'",
    "Merge branch 'feature/x' into main",
    "Merge pull request #1 from a/b",
    "Merge remote-tracking branch 'origin/main'",
    "Merge tag 'v1.0.0'",
    "Merge 3f2a9c1d into 8b7e6a5f",  # the merge commit GitHub makes for a pull request
]


@pytest.mark.parametrize("subject", MERGES)
def test_a_git_merge_commit_passes_without_a_bump_when_merges_are_allowed(subject):
    result = verdict(subject + "\n\nConflicts resolved.", parents=2)
    assert result.ok
    assert result.bump is None


@pytest.mark.parametrize("subject", MERGES)
def test_a_git_merge_commit_fails_when_merges_are_not_allowed(subject):
    result = verdict(subject, parents=2, allow_merges=False)
    assert result.problem == "the subject is not `type(scope): description`"


@pytest.mark.parametrize("subject", MERGES)
def test_a_merge_subject_on_a_commit_with_one_parent_is_not_a_merge(subject):
    assert verdict(subject, parents=1).problem == "the subject is not `type(scope): description`"


def test_an_octopus_merge_as_git_writes_it_passes_when_merges_are_allowed():
    assert verdict("Merge branches 'a' and 'b'", parents=3).ok


def test_a_conventional_merge_commit_is_judged_as_any_other_commit():
    assert verdict("feat: merge the api work", parents=2, allow_merges=False).bump == "minor"


@pytest.mark.parametrize(
    "message",
    [
        'Revert "feat: add a flag"',
        f'Revert "feat: add a flag"\n\nThis reverts commit {SHA}.\n',
        'Revert "Revert "feat: add a flag""',
        'Revert "feat: add a flag" (#123)',
        'Revert "fix(hooks): remove magic constants (#1815)" (#1820)',
        'Reapply "feat: add a flag"',
    ],
)
def test_a_git_or_github_revert_passes_as_a_patch_when_reverts_are_allowed(message):
    result = verdict(message)
    assert result.ok
    assert result.bump == "patch"


@pytest.mark.parametrize(
    "message",
    ['Revert part of "feat: x"', 'Revert "feat: x" (see #123)', "Revert removal of escape in toml"],
)
def test_a_subject_that_only_starts_like_a_revert_is_judged_as_an_ordinary_subject(message):
    assert verdict(message).problem == "the subject is not `type(scope): description`"


def test_a_git_revert_fails_when_reverts_are_not_allowed():
    result = verdict('Revert "feat: add a flag"', allow_reverts=False)
    assert result.problem == "the subject is not `type(scope): description`"


def test_a_conventional_revert_passes_even_when_git_reverts_are_not_allowed():
    assert verdict("revert: add a flag", allow_reverts=False).bump == "patch"


def test_commit_subject_is_the_stripped_first_line_and_short_is_ten_characters():
    commit = Commit(SHA, 1, "  feat: x  \n\nbody")
    assert commit.subject == "feat: x"
    assert commit.short == "0123456789"


# -- bump_for -------------------------------------------------------------------------------


def _with_bumps(*bumps: str | None) -> list[Verdict]:
    return [Verdict(Commit(SHA, 1, "x"), bump=b) for b in bumps]


@pytest.mark.parametrize(
    ("bumps", "expected"),
    [
        ((), "patch"),
        ((None,), "patch"),
        (("patch", "patch"), "patch"),
        (("patch", "minor", "patch"), "minor"),
        (("minor", "major", "patch"), "major"),
        ((None, "minor"), "minor"),
    ],
)
def test_bump_for_takes_the_largest_bump_and_defaults_to_patch(bumps, expected):
    assert bump_for(_with_bumps(*bumps)) == expected


def test_bump_for_ignores_failed_commits():
    verdicts = [Verdict(Commit(SHA, 1, "x"), problem="bad"), *_with_bumps("minor")]
    assert bump_for(verdicts) == "minor"


# -- parse_log ------------------------------------------------------------------------------

# What `git log -z --format=%H%x1f%P%x1f%B` printed for a small repository: a merge, a commit
# with a multi-paragraph body and a footer, and the root commit (no parents).
GIT_LOG = (
    "a" * 40
    + "\x1f"
    + "b" * 40
    + " "
    + "c" * 40
    + "\x1fMerge branch 'f'\n\x00"
    + "b" * 40
    + "\x1f"
    + "d" * 40
    + "\x1ffix: z\n\x00"
    + "c" * 40
    + "\x1f"
    + "d" * 40
    + "\x1ffeat(api): add x\n\nBody line one.\n\n"
    "Second paragraph.\n\nBREAKING CHANGE: drops y\n\x00" + "d" * 40 + "\x1f\x1fchore: init\n\x00"
)


def test_parse_log_reads_hash_parent_count_and_full_message_of_each_record():
    assert parse_log(GIT_LOG) == [
        Commit("a" * 40, 2, "Merge branch 'f'"),
        Commit("b" * 40, 1, "fix: z"),
        Commit(
            "c" * 40,
            1,
            "feat(api): add x\n\nBody line one.\n\nSecond paragraph.\n\nBREAKING CHANGE: drops y",
        ),
        Commit("d" * 40, 0, "chore: init"),
    ]


def test_parsed_log_judges_to_the_expected_verdicts():
    verdicts = [judge(c, CONVENTIONAL_TYPES) for c in parse_log(GIT_LOG)]
    assert [(v.ok, v.bump) for v in verdicts] == [
        (True, None),
        (True, "patch"),
        (True, "major"),
        (True, "patch"),
    ]
    assert bump_for(verdicts) == "major"


@pytest.mark.parametrize("output", ["", "\x00", "\n", "\x00\n\x00"])
def test_parse_log_of_no_commits_is_empty(output):
    assert parse_log(output) == []


def test_parse_log_tolerates_a_newline_after_each_separator():
    output = f"{SHA}\x1f\x1ffeat: a\n\x00\n{SHA}\x1f\x1ffix: b\n\x00\n"
    assert [c.message for c in parse_log(output)] == ["feat: a", "fix: b"]


def test_a_unit_separator_inside_a_message_stays_in_the_message():
    assert parse_log(f"{SHA}\x1f\x1ffeat: a\x1fb\n")[0].message == "feat: a\x1fb"


# -- real histories -------------------------------------------------------------------------


def test_real_commits_from_two_projects_get_the_verdict_the_spec_gives():
    import json
    from pathlib import Path

    data = json.loads(Path(__file__).with_name("data").joinpath("real_commits.json").read_text("utf-8"))
    rows = data["commits"]
    assert len(rows) > 250
    subjects = [r["message"].split("\n", 1)[0] for r in rows]
    assert sum(s.startswith('Revert "') and s.endswith(")") for s in subjects) >= 3  # squash-merged
    wrong = []
    for row in rows:
        result = judge(Commit(row["sha"], row["parents"], row["message"]), CONVENTIONAL_TYPES)
        got = f"ok:{result.bump or 'none'}" if result.ok else "fail"
        if got != row["expected"]:
            wrong.append(
                f"{row['repo']} {row['sha'][:10]} {row['message'][:60]!r}: {got}, not {row['expected']}"
            )
    assert wrong == []

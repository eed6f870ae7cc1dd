"""`invoke release` on real repositories: version, CHANGELOG, commit, tag, push and re-runs."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest
import semver
from gitrepos import Repo, beta_channel, invoke

from pipeline.errors import InputError
from pipeline.release import validate_request
from pipeline.versions import next_version

TODAY = date.today().isoformat()


def snapshot(repo: Repo) -> tuple[str, ...]:
    """Everything a release could change: files, refs, HEAD and the index."""
    return (
        repo.path.joinpath("VERSION").read_text(),
        repo.path.joinpath("CHANGELOG.md").read_text(),
        repo.git("show-ref"),
        repo.head(),
        repo.git("status", "--porcelain"),
    )


@pytest.fixture
def remote(repo: Repo, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo.git("remote", "add", "origin", str(bare))
    repo.git("push", "-q", "origin", "main", "v1.0.0")
    return bare


def test_release_without_bump_tags_the_hand_bumped_version(repo: Repo) -> None:
    run = invoke(repo.path, "release")
    assert run.code == 0, run.stderr
    assert repo.git("log", "-1", "--format=%s") == "chore(release): v1.1.0"
    assert repo.git("describe", "--exact-match", "HEAD") == "v1.1.0"
    assert repo.git("cat-file", "-t", "v1.1.0") == "tag"  # annotated
    assert repo.git("tag", "-l", "--format=%(contents)", "v1.1.0") == (
        "Release v1.1.0\n\n### Added\n- Something new.\n"
    )
    changelog = repo.path.joinpath("CHANGELOG.md").read_text()
    assert f"## [Unreleased]\n\n## [1.1.0] - {TODAY}\n\n### Added\n- Something new.\n" in changelog
    assert "[unreleased]: https://github.com/acme/app/compare/v1.1.0...HEAD\n" in changelog
    assert "[1.1.0]: https://github.com/acme/app/compare/v1.0.0...v1.1.0\n" in changelog
    assert repo.git("status", "--porcelain") == ""
    assert invoke(repo.path, "preflight").code == 0


def test_a_version_and_changelog_bumped_by_hand_is_only_tagged(repo: Repo) -> None:
    text = repo.path.joinpath("CHANGELOG.md").read_text()
    repo.write(
        "CHANGELOG.md",
        text.replace("## [Unreleased]\n", "## [Unreleased]\n\n## [1.1.0] - 2026-05-05\n"),
    )
    repo.commit("docs: changelog for 1.1.0")
    head = repo.head()
    assert invoke(repo.path, "release").code == 0
    assert repo.head() == head
    assert repo.git("rev-list", "-n1", "v1.1.0") == head


@pytest.mark.parametrize(
    ("commit", "bump", "expected"),
    [
        ("fix: a bug", "auto", "1.0.1"),
        ("feat: a feature", "auto", "1.1.0"),
        ("feat!: drop the old API", "auto", "2.0.0"),
        ("fix: x\n\nBREAKING CHANGE: config moved", "auto", "2.0.0"),
        ("fix: a bug", "minor", "1.1.0"),
        ("fix: a bug", "major", "2.0.0"),
    ],
)
def test_bump_computes_the_next_version(repo: Repo, commit: str, bump: str, expected: str) -> None:
    # Start from VERSION at the last release so that only the commits decide.
    repo.git("reset", "-q", "--soft", "v1.0.0")
    repo.write("VERSION", "1.0.0\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "chore: configure")
    repo.commit(commit)
    run = invoke(repo.path, "release", "--bump", bump)
    assert run.code == 0, run.stderr
    assert repo.path.joinpath("VERSION").read_text() == f"{expected}\n"
    assert repo.git("describe", "--exact-match", "HEAD") == f"v{expected}"


def test_pre_releases_count_up_and_the_final_release_follows(repo: Repo) -> None:
    assert invoke(repo.path, "release", "--bump", "minor", "--pre", "rc").code == 0
    assert repo.tags() == ["v1.0.0", "v1.1.0-rc.1"]
    repo.commit("fix: found in rc.1")
    repo.write(
        "CHANGELOG.md",
        repo.path.joinpath("CHANGELOG.md")
        .read_text()
        .replace("## [Unreleased]\n", "## [Unreleased]\n\n### Fixed\n- In rc.1.\n"),
    )
    repo.commit("docs: changelog")
    assert invoke(repo.path, "release", "--bump", "minor", "--pre", "rc").code == 0
    assert "v1.1.0-rc.2" in repo.tags()
    repo.write(
        "CHANGELOG.md",
        repo.path.joinpath("CHANGELOG.md")
        .read_text()
        .replace("## [Unreleased]\n", "## [Unreleased]\n\n### Changed\n- Final.\n"),
    )
    repo.commit("docs: final changelog")
    assert invoke(repo.path, "release", "--bump", "auto").code == 0
    assert repo.git("describe", "--exact-match", "HEAD") == "v1.1.0"  # feat since v1.0.0


def test_a_rerun_on_a_tagged_head_is_a_no_op_that_exits_0(repo: Repo) -> None:
    assert invoke(repo.path, "release").code == 0
    before = snapshot(repo)
    run = invoke(repo.path, "release", "--bump", "minor")
    assert run.code == 0
    assert run.stdout.strip() == "HEAD is already released as v1.1.0: nothing to do"
    assert snapshot(repo) == before


def test_a_tag_on_another_commit_is_an_error_that_changes_nothing(repo: Repo) -> None:
    repo.tag("v1.1.0", "HEAD~1")
    repo.commit("fix: after the tag")
    repo.write("VERSION", "1.1.0\n")
    before = snapshot(repo)
    run = invoke(repo.path, "release")
    assert run.code == 3
    assert "1.1.0 is not above the last release v1.1.0" in run.stderr
    assert snapshot(repo) == before


def test_dry_run_prints_every_change_and_touches_nothing(repo: Repo, remote: Path) -> None:
    before = snapshot(repo)
    run = invoke(repo.path, "release", "--push", "--dry-run")
    assert run.code == 0, run.stderr
    assert snapshot(repo) == before
    assert "+## [1.1.0] - " in run.stdout
    assert "run   git commit --quiet -m 'chore(release): v1.1.0' -- CHANGELOG.md" in run.stdout
    assert "run   git tag --annotate --cleanup=verbatim --file=- v1.1.0" in run.stdout
    assert "run   git push --atomic origin HEAD:refs/heads/main refs/tags/v1.1.0" in run.stdout
    assert (
        "v1.1.0"
        not in subprocess.run(
            ["git", "-C", str(remote), "tag"], capture_output=True, text=True, check=True
        ).stdout
    )


def test_push_sends_the_commit_and_the_tag_and_a_rerun_is_safe(repo: Repo, remote: Path) -> None:
    assert invoke(repo.path, "release", "--push").code == 0
    remote_git = ["git", "-C", str(remote)]
    tags = subprocess.run([*remote_git, "tag"], capture_output=True, text=True, check=True).stdout.split()
    assert tags == ["v1.0.0", "v1.1.0"]
    main = subprocess.run([*remote_git, "rev-parse", "main"], capture_output=True, text=True, check=True)
    assert main.stdout.strip() == repo.head()
    assert invoke(repo.path, "release", "--push").code == 0


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda r: r.write("stray.txt", "x"), 3, "FAIL clean"),
        (lambda r: r.commit("Update stuff"), 3, "FAIL commits"),
        (lambda r: r.git("checkout", "-q", "-b", "topic"), 3, "FAIL branch"),
    ],
)
def test_release_refuses_when_the_checks_fail_and_changes_nothing(
    repo: Repo, change: object, code: int, message: str
) -> None:
    change(repo)  # type: ignore[operator]
    before = snapshot(repo)
    run = invoke(repo.path, "release", "--bump", "minor")
    assert run.code == code
    assert message in run.stderr
    assert snapshot(repo) == before


def test_an_empty_unreleased_section_refuses_the_release(repo: Repo) -> None:
    text = repo.path.joinpath("CHANGELOG.md").read_text().replace("### Added\n- Something new.\n", "")
    repo.write("CHANGELOG.md", text)
    repo.commit("docs: empty")
    run = invoke(repo.path, "release")
    assert run.code == 3
    assert "CHANGELOG.md: [Unreleased] is missing or empty" in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bump", "huge"), "error: --bump: 'huge' is not one of major, minor, patch, auto"),
        (
            ("--bump", "minor", "--pre", "rc;x"),
            "error: --pre: 'rc;x' must be letters, digits and hyphens only",
        ),
        (
            ("--bump", "minor", "--pre", "01"),
            "error: --pre: '01' is a number with a leading zero, which semver forbids in a pre-release",
        ),
        (("--pre", "rc"), "error: --pre needs --bump"),
        (("--bump", "patch"), "error: VERSION says 1.1.0, above the 1.0.1 that --bump patch gives"),
    ],
)
def test_bad_flags_exit_2_and_change_nothing(repo: Repo, args: tuple[str, ...], message: str) -> None:
    before = snapshot(repo)
    run = invoke(repo.path, "release", *args)
    assert run.code == 2
    assert run.stderr.startswith(message)
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    ("pre", "problem"),
    [
        ("01", "a number with a leading zero"),
        ("007", "a number with a leading zero"),
        ("rc.1", "letters, digits and hyphens only"),
        ("", "letters, digits and hyphens only"),
        ("0", None),
        ("10", None),
        ("rc", None),
        ("beta-2", None),
        ("x-", None),
    ],
)
def test_pre_accepts_exactly_one_semver_pre_release_identifier(pre: str, problem: str | None) -> None:
    if problem is None:
        assert validate_request("minor", pre).pre == pre
        assert semver.Version.is_valid(str(next_version(semver.Version(1, 0, 0), "minor", pre)))
    else:
        with pytest.raises(InputError, match=problem):
            validate_request("minor", pre)


def test_a_rejected_commit_restores_the_files(repo: Repo) -> None:
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = snapshot(repo)
    run = invoke(repo.path, "release")
    assert run.code == 2
    assert "hook says no" in run.stderr
    assert snapshot(repo) == before


def test_an_unknown_remote_fails_the_push_without_a_partial_release(repo: Repo) -> None:
    before = snapshot(repo)
    run = invoke(repo.path, "release", "--push")
    assert run.code == 2
    assert "remote `origin` is not configured" in run.stderr
    assert snapshot(repo) == before


def test_a_rejected_push_leaves_a_complete_local_release_and_says_how_to_finish(
    repo: Repo, remote: Path
) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    run = invoke(repo.path, "release", "--push")
    assert run.code == 4  # a human finishes it: the release exists locally
    assert "v1.1.0 is released locally but the push failed" in run.stderr
    assert "re-run `invoke release --push`" in run.stderr
    assert repo.git("describe", "--exact-match", "HEAD") == "v1.1.0"
    hook.unlink()
    assert invoke(repo.path, "release", "--push").code == 0
    tags = subprocess.run(["git", "-C", str(remote), "tag"], capture_output=True, text=True, check=True)
    assert tags.stdout.split() == ["v1.0.0", "v1.1.0"]


def test_a_refused_release_of_a_missing_version_file_leaves_no_file_behind(repo: Repo) -> None:
    repo.git("rm", "-q", "VERSION")
    repo.git("commit", "-q", "-m", "chore: no VERSION yet")
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = (repo.git("show-ref"), repo.head(), repo.path.joinpath("CHANGELOG.md").read_text())
    run = invoke(repo.path, "release", "--bump", "minor")
    assert run.code == 2 and "hook says no" in run.stderr
    assert not (repo.path / "VERSION").exists()
    assert repo.git("status", "--porcelain") == ""
    assert (repo.git("show-ref"), repo.head(), repo.path.joinpath("CHANGELOG.md").read_text()) == before


def test_a_tag_refused_after_the_release_commit_says_what_exists_and_how_to_finish(repo: Repo) -> None:
    repo.git("config", "tag.gpgSign", "true")
    repo.git("config", "gpg.program", "false")
    run = invoke(repo.path, "release")
    assert run.code == 4  # a human finishes it: the commit exists, the tag does not
    head = repo.git("rev-parse", "--short=10", "HEAD")
    assert run.stderr.startswith(
        f"error: the release commit {head} for 1.1.0 is made but `git tag v1.1.0` failed: "
    )
    assert "No tag exists and nothing was pushed" in run.stderr
    assert "re-run `invoke release` without --bump to tag 1.1.0 at HEAD" in run.stderr
    assert repo.git("log", "-1", "--format=%s") == "chore(release): v1.1.0"
    assert repo.tags() == ["v1.0.0"]
    repo.git("config", "tag.gpgSign", "false")
    assert invoke(repo.path, "release").code == 0
    assert repo.git("describe", "--exact-match", "HEAD") == "v1.1.0"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "error: VERSION: is a directory, not a file"),
        (lambda p: p.write_bytes(b"1.1.0\xff\n"), "error: VERSION: not UTF-8 text (byte 0xff at offset 5)"),
    ],
)
def test_an_unreadable_version_file_refuses_the_release_and_changes_nothing(
    repo: Repo, make: object, message: str
) -> None:
    (repo.path / "VERSION").unlink()
    make(repo.path / "VERSION")  # type: ignore[operator]
    refs, head = repo.git("show-ref"), repo.head()
    run = invoke(repo.path, "release", "--bump", "minor")
    assert run.code == 3
    assert run.stderr.startswith(message)
    assert "Errno" not in run.stderr and "codec" not in run.stderr
    assert (repo.git("show-ref"), repo.head()) == (refs, head)


def test_a_patch_release_on_the_stable_branch_ignores_a_beta_tag_on_another_branch(repo: Repo) -> None:
    beta_channel(repo)
    run = invoke(repo.path, "release", "--bump", "auto")
    assert run.code == 0, run.stderr
    assert repo.git("describe", "--exact-match", "HEAD") == "v1.0.1"

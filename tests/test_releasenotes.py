"""Release notes: the CHANGELOG section of the deployed version as of its commit, and a link to it."""

from __future__ import annotations

import pytest
from gitrepos import Repo

from pipeline.executor import LocalExecutor
from pipeline.releasenotes import ReleaseNotes, changelog_url, notes_of, read_notes, release_commit

CHANGELOG = """# Changelog

## [Unreleased]

### Added
- Not shipped yet.

## [1.1.0] - 2026-11-20

### Added
- Voice messages.

### Fixed
- A crash on start.

## [1.0.0] - 2026-01-02

- The first release.

[unreleased]: https://github.com/acme/app/compare/v1.1.0...HEAD
[1.1.0]: https://github.com/acme/app/compare/v1.0.0...v1.1.0
"""


def test_the_section_of_the_version_without_its_surrounding_blank_lines() -> None:
    notes = notes_of(CHANGELOG, "1.1.0", url="https://x.io/c")
    assert notes == ReleaseNotes(
        "1.1.0",
        ("### Added", "- Voice messages.", "", "### Fixed", "- A crash on start."),
        url="https://x.io/c",
    )
    assert notes.found
    assert notes_of(CHANGELOG, "1.0.0").lines == ("- The first release.",)  # the links are not notes


@pytest.mark.parametrize(
    ("text", "version", "missing"),
    [
        (None, "1.1.0", "CHANGELOG.md is not in the release"),
        (CHANGELOG, "2.0.0", "CHANGELOG.md has no section for 2.0.0"),
        (
            "## [2.0.0] - 2026-01-01\n\n\n## [1.0.0] - 2025-01-01\n- x\n",
            "2.0.0",
            "the section for 2.0.0 in CHANGELOG.md is empty",
        ),
        ("not a changelog at all", "1.0.0", "CHANGELOG.md has no section for 1.0.0"),
    ],
)
def test_no_notes_is_a_reason_never_an_error(text: str | None, version: str, missing: str) -> None:
    notes = notes_of(text, version)
    assert (notes.found, notes.missing, notes.lines) == (False, missing, ())


COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("origin", "url"),
    [
        ("https://github.com/acme/app.git", f"https://github.com/acme/app/blob/{COMMIT}/CHANGELOG.md"),
        (
            "https://x-access-token:ghs_s3cret@github.com/acme/app",
            f"https://github.com/acme/app/blob/{COMMIT}/CHANGELOG.md",
        ),
        ("git@github.com:acme/app.git", f"https://github.com/acme/app/blob/{COMMIT}/CHANGELOG.md"),
        (
            "ssh://git@gitlab.example.com:2222/group/sub/app.git",
            f"https://gitlab.example.com/group/sub/app/blob/{COMMIT}/CHANGELOG.md",
        ),
        (
            "https://git.example.com:8443/acme/app",
            f"https://git.example.com:8443/acme/app/blob/{COMMIT}/CHANGELOG.md",
        ),
        ("/srv/git/app.git", ""),
        ("file:///srv/git/app.git", ""),
        ("../origin", ""),
        ("", ""),
        ("https://github.com/acme/../../etc", ""),
    ],
)
def test_a_link_to_the_changelog_at_the_commit_never_carries_credentials(origin: str, url: str) -> None:
    assert changelog_url(origin, COMMIT, "CHANGELOG.md") == url


def test_no_link_without_a_commit() -> None:
    assert changelog_url("https://github.com/acme/app", "", "CHANGELOG.md") == ""
    assert changelog_url("https://github.com/acme/app", "HEAD; rm", "CHANGELOG.md") == ""


def test_the_notes_are_read_as_of_the_releases_commit_not_the_work_tree(repo: Repo) -> None:
    repo.write("CHANGELOG.md", CHANGELOG)
    shipped = repo.commit("docs: release 1.1.0", "CHANGELOG.md", CHANGELOG)
    repo.git("remote", "add", "origin", "https://bot:t0ken-s3cret@github.com/acme/app.git")
    repo.write("CHANGELOG.md", CHANGELOG.replace("Voice messages.", "Something else."))
    repo.commit(
        "docs: rewrite history", "CHANGELOG.md", CHANGELOG.replace("Voice messages.", "Something else.")
    )

    notes = read_notes(LocalExecutor(), repo.path, shipped, "1.1.0", "CHANGELOG.md")
    assert notes.lines[:2] == ("### Added", "- Voice messages.")
    assert notes.url == f"https://github.com/acme/app/blob/{shipped}/CHANGELOG.md"
    assert "t0ken" not in notes.url


def test_a_changelog_missing_from_the_commit_is_said(repo: Repo) -> None:
    notes = read_notes(LocalExecutor(), repo.path, repo.head(), "1.1.0", "docs/CHANGES.md")
    assert (notes.found, notes.missing, notes.url) == (False, "docs/CHANGES.md is not in the release", "")


def test_the_commit_of_a_ref_or_nothing(repo: Repo) -> None:
    assert release_commit(LocalExecutor(), repo.path, "v1.0.0") == repo.git("rev-parse", "v1.0.0^{commit}")
    assert release_commit(LocalExecutor(), repo.path, "v9.9.9") == ""

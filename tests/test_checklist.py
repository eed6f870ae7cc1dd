"""The checklist items, judged on real git repositories made in temporary directories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from gitrepos import Repo, beta_channel, make_repo

from pipeline.checklist import CheckResult, run_checklist
from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.executor import LocalExecutor


def checks(repo: Repo, with_tests: bool = False, **checklist: object) -> dict[str, CheckResult]:
    config = load_config({"checklist": {"changelog_unreleased_ok": True, **checklist}})
    return {r.name: r for r in run_checklist(LocalExecutor(), repo.path, config, with_tests)}


def test_a_ready_repository_passes_every_item(repo: Repo) -> None:
    results = checks(repo)
    assert {n: r.status for n, r in results.items()} == {
        "version": "pass",
        "changelog": "pass",
        "commits": "pass",
        "clean": "pass",
        "branch": "pass",
        "migrations": "skip",
        "emergency": "skip",
        "lint": "skip",
        "test": "skip",
    }
    assert results["version"].reason == "1.1.0 is above the last release v1.0.0"
    assert results["commits"].reason == "2 commit(s) since v1.0.0 follow Conventional Commits"


def test_every_failure_is_reported_not_just_the_first(repo: Repo) -> None:
    repo.write("VERSION", "1.0.0\n")
    repo.write("CHANGELOG.md", "# Changelog\n\n## v1.1 - someday\n")
    repo.commit("Update stuff")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("stray.txt", "x")
    failed = {n for n, r in checks(repo).items() if r.failed}
    assert failed == {"version", "changelog", "commits", "clean", "branch"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "VERSION: the file is empty"),
        ("v1.2.0\n", "VERSION: 'v1.2.0' has a 'v' prefix; write 1.2.0"),
        (" 1.2.0\n", "VERSION: ' 1.2.0' contains spaces"),
        ("1.2\n", "VERSION: '1.2' is not a semantic version"),
        ("banana\n", "VERSION: 'banana' is not a semantic version"),
    ],
)
def test_a_bad_version_file_fails_naming_the_file(repo: Repo, text: str, reason: str) -> None:
    repo.write("VERSION", text)
    result = checks(repo)["version"]
    assert result.failed
    assert result.reason.startswith(reason)
    assert result.locations[0].file == "VERSION"


def test_a_missing_version_file_fails(repo: Repo) -> None:
    (repo.path / "VERSION").unlink()
    result = checks(repo)["version"]
    assert result.failed and result.reason.startswith("VERSION: file not found")


def test_version_equal_to_the_last_tag_fails_unless_head_is_that_tag(repo: Repo) -> None:
    repo.write("VERSION", "1.0.0\n")
    repo.commit("fix: keep the version")
    assert checks(repo)["version"].reason == (
        "VERSION: 1.0.0 is already released as v1.0.0; bump VERSION (invoke release --bump ...)"
    )
    repo.git("checkout", "-q", "v1.0.0")
    result = checks(repo)["version"]
    assert result.status == "pass" and result.reason == "1.0.0 is the release tagged v1.0.0 at HEAD"


def test_version_below_the_last_tag_fails(repo: Repo) -> None:
    repo.tag("v2.0.0")
    assert checks(repo)["version"].reason == (
        "VERSION: 1.1.0 is below the last release v2.0.0; VERSION must go up"
    )


def test_pre_release_versions_follow_semver_precedence(repo: Repo) -> None:
    repo.tag("v1.1.0-rc.1")
    assert checks(repo)["version"].status == "pass"  # 1.1.0 > 1.1.0-rc.1
    repo.write("VERSION", "1.1.0-rc.2\n")
    repo.commit("fix: a second candidate")
    assert checks(repo)["version"].reason == "1.1.0-rc.2 is above the last release v1.1.0-rc.1"


def test_tag_prefix_is_configurable(repo: Repo) -> None:
    repo.tag("release-3.0.0")
    assert checks(repo)["version"].status == "pass"  # not a `v` tag: ignored
    result = checks(repo, tag_prefix="release-")["version"]
    assert result.reason == "VERSION: 1.1.0 is below the last release release-3.0.0; VERSION must go up"


def test_changelog_needs_a_dated_section_unless_unreleased_is_allowed(repo: Repo) -> None:
    assert checks(repo, changelog_unreleased_ok=False)["changelog"].reason.startswith(
        "CHANGELOG.md has no section for 1.1.0: add `## [1.1.0] - YYYY-MM-DD`"
    )
    assert checks(repo)["changelog"].reason == "CHANGELOG.md [Unreleased] describes the coming 1.1.0"


def test_an_empty_unreleased_section_does_not_count(repo: Repo) -> None:
    text = repo.path.joinpath("CHANGELOG.md").read_text().replace("### Added\n- Something new.\n", "")
    repo.write("CHANGELOG.md", text)
    assert checks(repo)["changelog"].failed


def test_a_dated_section_for_the_version_passes(repo: Repo) -> None:
    text = repo.path.joinpath("CHANGELOG.md").read_text()
    repo.write(
        "CHANGELOG.md",
        text.replace("## [Unreleased]\n", "## [Unreleased]\n\n## [1.1.0] - 2026-03-04\n"),
    )
    result = checks(repo, changelog_unreleased_ok=False)["changelog"]
    assert result.status == "pass" and result.reason == "CHANGELOG.md has [1.1.0] dated 2026-03-04"


def test_malformed_changelog_headings_are_reported_with_their_lines(repo: Repo) -> None:
    repo.write("CHANGELOG.md", "# Changelog\n\n## [Unreleased]\n- x\n\n## 1.0.0\n\n## [1.0.0] - 2026-1-2\n")
    result = checks(repo)["changelog"]
    assert result.failed
    assert [(loc.file, loc.line) for loc in result.locations] == [
        ("CHANGELOG.md", 6),
        ("CHANGELOG.md", 8),
    ]
    assert result.details[0].startswith("CHANGELOG.md:6: malformed heading `## 1.0.0`")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "CHANGELOG.md: file not found"),
        ("", "CHANGELOG.md: 1 problem(s)"),
        ("# Changelog\n\nNothing here.\n", "CHANGELOG.md: 1 problem(s)"),
    ],
)
def test_missing_empty_or_sectionless_changelogs_fail(repo: Repo, text: str | None, reason: str) -> None:
    if text is None:
        (repo.path / "CHANGELOG.md").unlink()
    else:
        repo.write("CHANGELOG.md", text)
    result = checks(repo)["changelog"]
    assert result.failed and result.reason.startswith(reason)


def test_offending_commits_are_listed_with_short_hash_and_subject(repo: Repo) -> None:
    bad = repo.commit("Update stuff")
    also_bad = repo.commit("feature: add login")
    result = checks(repo)["commits"]
    assert result.reason == "2 of 4 commit(s) since v1.0.0 break Conventional Commits"
    assert result.details == (
        f"{also_bad[:10]} 'feature: add login': unknown type `feature` "
        "(allowed: feat, fix, docs, style, refactor, perf, test, build, ci, chore, revert)",
        f"{bad[:10]} 'Update stuff': the subject is not `type(scope): description`",
    )


def test_only_commits_since_the_last_tag_are_checked(repo: Repo) -> None:
    repo.commit("Update stuff")
    repo.write("VERSION", "1.2.0\n")
    repo.tag("v1.1.0")
    repo.commit("fix: a fix")
    assert checks(repo)["commits"].reason == "1 commit(s) since v1.1.0 follow Conventional Commits"


def test_without_a_tag_the_whole_history_or_a_configured_ref_is_checked(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p")
    repo.git("tag", "-d", "v1.0.0")
    start = repo.git("rev-parse", "HEAD~1")
    repo.git("commit", "-q", "--amend", "-m", "bad one")
    assert (
        checks(repo)["commits"].reason == "1 of 2 commit(s) in the whole history break Conventional Commits"
    )
    repo.git("tag", "start", start)
    result = checks(repo, commits_from="start")["commits"]
    assert result.reason == "1 of 1 commit(s) since start break Conventional Commits"


def test_an_unknown_commits_from_ref_is_an_input_error_naming_the_key(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p")
    repo.git("tag", "-d", "v1.0.0")
    with pytest.raises(InputError, match=r"pipeline.checklist.commits_from: 'nope' is not a ref"):
        checks(repo, commits_from="nope")


def test_merge_and_revert_commits_as_git_writes_them_pass(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "topic")
    feature = repo.commit("feat: on a branch", "topic.txt")
    repo.git("checkout", "-q", "main")
    repo.commit("fix: on main", "main.txt")
    repo.git("merge", "--no-ff", "--no-edit", "topic")
    repo.git("revert", "--no-edit", feature)
    assert repo.git("log", "-1", "--format=%s") == 'Revert "feat: on a branch"'
    result = checks(repo)["commits"]
    assert result.status == "pass", result.details
    assert (
        checks(repo, allow_merge_commits=False)["commits"]
        .details[0]
        .endswith("the subject is not `type(scope): description`")
    )


def test_custom_commit_types_are_honoured(repo: Repo) -> None:
    repo.commit("wip: halfway")
    assert checks(repo)["commits"].failed
    assert checks(repo, types=["feat", "chore", "wip"])["commits"].status == "pass"


def test_uncommitted_untracked_and_staged_changes_make_the_tree_dirty(repo: Repo) -> None:
    repo.write("app.py", "changed\n")
    repo.write("new file.txt", "untracked\n")
    repo.write("staged.txt", "staged\n")
    repo.git("add", "staged.txt")
    result = checks(repo)["clean"]
    assert result.failed
    assert sorted(result.details) == ["app.py", "new file.txt", "staged.txt"]


def test_a_renamed_file_is_listed_once_by_its_new_name(repo: Repo) -> None:
    repo.git("mv", "app.py", "1 renamed.py")
    assert checks(repo)["clean"].details == ("1 renamed.py",)


def test_a_disallowed_branch_fails_and_globs_allow_release_branches(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "release/1.1")
    assert checks(repo)["branch"].reason == "on release/1.1, which is not allowed (allowed: main, master)"
    assert checks(repo, branches=["main", "release/*"])["branch"].reason == "on release/1.1"


def test_a_detached_head_at_an_allowed_branch_tip_passes_as_in_ci(repo: Repo, tmp_path: Path) -> None:
    clone = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach", "origin/main"], check=True)
    subprocess.run(["git", "-C", str(clone), "branch", "-q", "-D", "main"], check=True)
    result = checks(Repo(clone))["branch"]
    assert result.status == "pass" and result.reason == "detached HEAD at the tip of origin/main"


def test_a_detached_head_inside_an_allowed_branch_passes(repo: Repo) -> None:
    repo.git("checkout", "-q", "--detach", "HEAD~1")
    assert checks(repo)["branch"].reason == "detached HEAD on the history of main"


def test_a_detached_head_on_no_allowed_branch_fails(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "topic")
    repo.commit("feat: elsewhere")
    repo.git("checkout", "-q", "--detach")
    assert checks(repo)["branch"].failed


def test_lint_and_tests_run_as_stages_when_asked(repo: Repo) -> None:
    config = load_config(
        {
            "checklist": {"changelog_unreleased_ok": True},
            "lint": ["python -c 'print(1)'"],
            "test": ["python -c 'import sys; print(\"2 failed\"); sys.exit(1)'"],
        }
    )
    results = {r.name: r for r in run_checklist(LocalExecutor(), repo.path, config, True)}
    assert results["lint"].status == "pass"
    assert results["test"].failed
    assert results["test"].details == ("2 failed",)
    assert "exited 1" in results["test"].reason


def test_a_stage_command_that_is_not_installed_fails_naming_the_key(repo: Repo) -> None:
    config = load_config({"lint": ["no-such-linter --fix"]})
    results = {r.name: r for r in run_checklist(LocalExecutor(), repo.path, config, True)}
    assert results["lint"].reason == "pipeline.lint: `no-such-linter` is not installed or not on PATH"


def test_a_directory_that_is_not_a_repository_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a git repository"):
        checks(Repo(tmp_path))


def test_a_shallow_clone_without_tags_is_an_input_error(repo: Repo, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--no-tags", f"file://{repo.path}", str(clone)],
        check=True,
    )
    with pytest.raises(InputError, match="shallow clone whose history reaches no release tag"):
        checks(Repo(clone))


def test_a_repository_without_commits_reports_instead_of_crashing(tmp_path: Path) -> None:
    import git

    git.Repo.init(tmp_path)
    repo = Repo(tmp_path)
    repo.write("VERSION", "0.1.0\n")
    repo.write("CHANGELOG.md", "# Changelog\n\n## [Unreleased]\n- start\n")
    results = checks(repo)
    assert results["version"].status == "pass"
    assert results["commits"].reason == "0 commit(s) in the whole history follow Conventional Commits"
    assert results["clean"].failed


@pytest.mark.parametrize(
    ("make", "version_reason"),
    [
        (lambda p: p.mkdir(), "VERSION: is a directory, not a file"),
        (
            lambda p: p.write_bytes(b"\xff\xfe1\x00.\x002\x00"),
            "VERSION: binary content (a NUL byte at offset 3)",
        ),
        (lambda p: p.write_bytes(b"\xff1.2.0\n"), "VERSION: not UTF-8 text (byte 0xff at offset 0)"),
        (lambda p: __import__("os").mkfifo(p), "VERSION: is a named pipe (FIFO), not a file"),
    ],
)
def test_an_unreadable_version_file_fails_its_item_and_every_other_item_is_still_judged(
    repo: Repo, make: object, version_reason: str
) -> None:
    path = repo.path / "VERSION"
    path.unlink()
    make(path)  # type: ignore[operator]
    results = checks(repo)
    assert results["version"].failed
    assert results["version"].reason.startswith(version_reason)
    assert results["changelog"].status == "skip"  # parses; no VERSION to look for
    assert results["commits"].status == "pass" and results["branch"].status == "pass"


def test_a_binary_changelog_or_one_outside_the_project_fails_its_item(repo: Repo, tmp_path: Path) -> None:
    (repo.path / "CHANGELOG.md").write_bytes(b"# Changelog\n\n## [Unreleased]\n- caf\xe9\n")
    result = checks(repo)["changelog"]
    assert result.failed
    assert result.reason == "CHANGELOG.md: not UTF-8 text (byte 0xe9 at offset 34)"
    outside = tmp_path / "elsewhere.md"
    outside.write_text("# Changelog\n\n## [Unreleased]\n- x\n")
    (repo.path / "notes.md").symlink_to(outside)  # the configuration refuses "../elsewhere.md" itself
    results = checks(repo, changelog="notes.md")
    assert results["changelog"].reason.startswith("notes.md: resolves to ")
    assert results["changelog"].reason.endswith(f"outside the project {repo.path.resolve()}; refused")
    assert results["version"].status == "pass"


def test_the_last_release_is_the_highest_tag_in_heads_history_not_a_beta_elsewhere(repo: Repo) -> None:
    beta_channel(repo, version="1.0.1")
    results = checks(repo)
    assert results["version"].reason == "1.0.1 is above the last release v1.0.0"
    assert results["commits"].reason == "1 commit(s) since v1.0.0 follow Conventional Commits"


def test_a_version_already_tagged_outside_this_branch_fails(repo: Repo) -> None:
    beta_channel(repo, version="1.0.1")
    repo.write("VERSION", "2.0.0-beta.1\n")
    result = checks(repo)["version"]
    assert result.failed
    assert result.reason.startswith("VERSION: 2.0.0-beta.1 is already released as v2.0.0-beta.1 on ")


def test_a_higher_tag_farther_back_than_a_merged_maintenance_tag_is_still_the_last_release(
    repo: Repo,
) -> None:
    """``git describe`` finds v1.0.1 nearest (a maintenance branch merged back); v1.1.0 ranks above it."""
    repo.write("VERSION", "1.1.0\n")
    repo.commit("feat: the 1.1 line")
    repo.tag("v1.1.0")
    repo.git("checkout", "-q", "-b", "maint", "v1.0.0")
    for n in range(5):
        repo.commit(f"fix: backported fix {n}", "maint.txt")
    repo.tag("v1.0.1")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge branch 'maint'", "maint")
    assert repo.git("describe", "--tags", "--abbrev=0") == "v1.0.1"
    repo.write("VERSION", "1.2.0\n")
    repo.commit("feat: on to 1.2")
    assert checks(repo)["version"].reason == "1.2.0 is above the last release v1.1.0"


def shallow_clone_with_tags(repo: Repo, tmp_path: Path) -> Repo:
    """A depth-4 clone whose cut falls on a merged side branch, inside the range since v1.0.0."""
    repo.git("checkout", "-q", "-b", "side", "v1.0.0")
    for i in range(3):
        repo.commit(f"feat: side {i}", "side.txt")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "--no-edit", "side")
    clone = tmp_path / "shallow-with-tags"
    subprocess.run(["git", "clone", "-q", "--depth", "4", f"file://{repo.path}", str(clone)], check=True)
    shallow = Repo(clone)
    assert "v1.0.0" in shallow.tags()
    return shallow


def test_a_shallow_clone_with_tags_never_passes_commits_it_cannot_see(repo: Repo, tmp_path: Path) -> None:
    shallow = shallow_clone_with_tags(repo, tmp_path)
    with pytest.raises(
        InputError, match=r"is a shallow clone cut at [0-9a-f]{10}, inside the commits since v1.0.0"
    ):
        checks(shallow)


def test_a_virtualenv_in_the_tree_is_named_with_the_gitignore_advice(repo: Repo) -> None:
    repo.write(".venv/pyvenv.cfg", "home = /usr/bin\n")
    repo.write(".venv/lib/x.py", "")
    result = checks(repo)["clean"]
    assert result.details == (".venv/",)
    assert result.reason.endswith("; .venv/ is a virtualenv: add it to .gitignore")
    repo.write("notes.txt", "x")
    (repo.path / ".venv" / "pyvenv.cfg").unlink()
    assert checks(repo)["clean"].reason.endswith(
        "; add untracked paths that do not belong in the repository to .gitignore"
    )


def test_migrations_with_two_heads_fail_naming_both_and_one_head_passes(repo: Repo) -> None:
    revision = 'revision = "{0}"\ndown_revision = {1}\n\ndef upgrade() -> None:\n    raise SystemExit(9)\n'
    repo.write("alembic.ini", "[alembic]\nscript_location = %(here)s/migrations\n")
    repo.write("migrations/versions/0001_a.py", revision.format("0001", None))
    repo.write("migrations/versions/0002_b.py", revision.format("0002", '"0001"'))
    repo.write("migrations/versions/0003_c.py", revision.format("0003", '"0001"'))
    result = checks(repo)["migrations"]
    assert result.failed
    assert result.reason == (
        "2 heads in migrations/versions: 0002 (migrations/versions/0002_b.py), "
        "0003 (migrations/versions/0003_c.py); merge them (`alembic merge heads`)"
    )
    assert [(loc.file, loc.line) for loc in result.locations] == [
        ("migrations/versions/0002_b.py", 1),
        ("migrations/versions/0003_c.py", 1),
    ]
    repo.write("migrations/versions/0004_merge.py", revision.format("0004", '("0002", "0003")'))
    assert checks(repo)["migrations"].reason == "one head, 0004 (4 revision(s) in migrations/versions)"

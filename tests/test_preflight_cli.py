"""`invoke preflight` as a user runs it: output, exit codes, JSON, GitHub annotations, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitrepos import Repo, invoke


def test_preflight_passes_with_exit_0_and_one_line_per_check(repo: Repo) -> None:
    run = invoke(repo.path, "preflight")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "ok   version     1.1.0 is above the last release v1.0.0"
    assert lines[-1] == "preflight: 5 passed, 0 failed, 4 skipped"


def test_preflight_fails_with_exit_3_and_lists_each_failure(repo: Repo) -> None:
    repo.commit("Update stuff")
    repo.write("dirty.txt", "x")
    run = invoke(repo.path, "preflight")
    assert run.code == 3
    assert "FAIL commits" in run.stdout and "FAIL clean" in run.stdout
    assert "'Update stuff': the subject is not `type(scope): description`" in run.stdout
    assert run.stdout.splitlines()[-1] == "preflight: 3 passed, 2 failed, 4 skipped"
    assert "Traceback" not in run.stderr


def test_json_report_is_machine_readable(repo: Repo) -> None:
    repo.write("VERSION", "v1.2.0\n")
    run = invoke(repo.path, "preflight", "--json")
    assert run.code == 3
    report = json.loads(run.stdout)
    assert report["ok"] is False and report["exit_code"] == 3
    version = next(c for c in report["checks"] if c["name"] == "version")
    assert version["status"] == "fail"
    assert version["locations"] == [
        {"file": "VERSION", "line": 1, "message": "VERSION: 'v1.2.0' has a 'v' prefix; write 1.2.0"}
    ]


def test_inside_github_actions_failures_become_annotations_and_a_summary(repo: Repo, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    repo.write("CHANGELOG.md", "# Changelog\n\n## [Unreleased]\n- x\n\n## [1.0] - 2026-01-01\n")
    repo.commit("docs: break the changelog")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    run = invoke(repo.path, "preflight", env=env)
    assert run.code == 3
    assert (
        "::error file=CHANGELOG.md,line=6,title=preflight%3A changelog::"
        "`1.0` is not a semantic version: expected `## [Unreleased]` or `## [1.2.3] - YYYY-MM-DD`"
    ) in run.stdout.splitlines()
    assert "| changelog | fail | CHANGELOG.md: 1 problem(s) |" in summary.read_text()


def test_with_tests_runs_the_configured_lint_and_test_commands(repo: Repo) -> None:
    repo.write(
        "invoke.yaml",
        "pipeline:\n  checklist: {changelog_unreleased_ok: true}\n"
        "  lint: [\"python -c 'print(42)'\"]\n  test: [\"python -c 'raise SystemExit(4)'\"]\n",
    )
    repo.commit("chore: add stages")
    assert invoke(repo.path, "preflight").code == 0
    run = invoke(repo.path, "preflight", "--with-tests")
    assert run.code == 3
    assert "ok   lint" in run.stdout
    assert "FAIL test        `python -c 'raise SystemExit(4)'` exited 4" in run.stdout


def test_lint_task_streams_and_fails_with_exit_3(repo: Repo) -> None:
    repo.write(
        "invoke.yaml",
        'pipeline:\n  lint: ["python -c \'print(\\"LINTED\\"); raise SystemExit(1)\'"]\n',
    )
    run = invoke(repo.path, "lint")
    assert run.code == 3
    assert "LINTED" in run.stdout


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "pipeline:\n  checklist:\n    brnches: [main]\n",
            "error: invoke.yaml: pipeline.checklist.brnches: unknown key (did you mean `branches`?)",
        ),
        (
            "pipeline:\n  checklist:\n    branches: main\n",
            "error: invoke.yaml: pipeline.checklist.branches: expected array, got str",
        ),
        (
            "pipeline:\n  checklist:\n    tag_prefix: 'v; rm -rf /'\n",
            "error: invoke.yaml: pipeline.checklist.tag_prefix: 'v; rm -rf /' cannot start a tag name",
        ),
        (
            'pipeline:\n  lint: ["ruff check \'x"]\n',
            'error: invoke.yaml: pipeline.lint[0]: "ruff check \'x" cannot be parsed (No closing quotation)',
        ),
        (
            "pipeline:\n  deploy: {}\n",
            "error: invoke.yaml: pipeline.deploy: unknown key",
        ),
    ],
)
def test_bad_configuration_exits_2_naming_the_file_and_key(repo: Repo, yaml: str, message: str) -> None:
    repo.write("invoke.yaml", yaml)
    run = invoke(repo.path, "preflight")
    assert run.code == 2
    assert run.stderr.startswith(message)
    assert "Traceback" not in run.stderr
    assert run.stdout == ""


def test_environment_variables_override_the_file(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "trunk")
    assert invoke(repo.path, "preflight").code == 3
    run = invoke(repo.path, "preflight", env={"INVOKE_PIPELINE_CHECKLIST_TAG_PREFIX": "rel-"})
    assert "ok   version     1.1.0 (no release tag rel-X.Y.Z yet)" in run.stdout


def test_outside_a_git_repository_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("from pipeline.tasks import ns  # noqa: F401\n")
    (tmp_path / "VERSION").write_text("1.0.0\n")
    run = invoke(tmp_path, "preflight")
    assert run.code == 2
    assert run.stderr == f"error: {tmp_path} is not a git repository (run `git init`, or run from a clone)\n"


def test_zero_configuration_works_with_version_and_changelog(tmp_path: Path) -> None:
    import git

    git.Repo.init(tmp_path)
    repo = Repo(tmp_path)
    repo.write("tasks.py", "from pipeline.tasks import ns  # noqa: F401\n")
    repo.write(".gitignore", "__pycache__/\n")
    repo.write("VERSION", "0.1.0\n")
    repo.write("CHANGELOG.md", "# Changelog\n\n## [0.1.0] - 2026-11-01\n- First.\n")
    repo.commit("feat: start")
    run = invoke(repo.path, "preflight")
    assert run.code == 0, run.stdout + run.stderr


def test_the_console_script_works_without_a_tasks_py_and_reads_invoke_yaml(repo: Repo) -> None:
    import shutil
    import subprocess
    import sys

    (repo.path / "tasks.py").unlink()
    repo.write("invoke.yaml", "pipeline:\n  checklist:\n    brnches: [main]\n")
    script = shutil.which("pipeline", path=str(Path(sys.executable).parent))
    assert script, "the package's console script is installed"
    done = subprocess.run([script, "preflight"], cwd=repo.path, capture_output=True, text=True)
    assert done.returncode == 2
    assert "pipeline.checklist.brnches: unknown key" in done.stderr


def test_a_changelog_in_another_format_is_one_annotation_not_one_per_release(repo: Repo) -> None:
    releases = "".join(f"## v1.{n}.0 (2024-01-{n + 1:02d})\n\n- thing {n}\n\n" for n in range(30, 0, -1))
    repo.write("CHANGELOG.md", f"## Unreleased\n\n- next\n\n{releases}")
    repo.commit("docs: a changelog written by another tool")
    run = invoke(repo.path, "preflight", env={"GITHUB_ACTIONS": "true"})
    assert run.code == 3
    errors = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1
    assert errors[0].startswith(
        "::error file=CHANGELOG.md,line=1,title=preflight%3A changelog::not in Keep a Changelog"
    )

"""Bad input through the real ``invoke`` CLI: one clear line, the documented exit code, nothing changed.

The configuration file's many ways to be wrong are also read directly (``test_configfile.py``); here
each category goes through the program a user runs, in a real repository.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gitrepos import ROOT, Repo, Run, invoke, invoke_process


def snapshot(repo: Repo) -> dict[str, bytes]:
    """Every file of the work tree and of .git's refs, to prove a refusal changed nothing."""
    files = {}
    for path in sorted(repo.path.rglob("*")):
        if path.is_file() and "objects" not in path.parts and path.name != "index":
            files[str(path.relative_to(repo.path))] = path.read_bytes()
    return files


def refused(run: Run, code: int, *phrases: str) -> str:
    """The run exited ``code`` with one ``error:`` line containing each phrase, and no traceback."""
    assert run.code == code, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr + run.stdout
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.stderr
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]


# A representative few through the program; every way a file can be wrong is in test_configfile.py.
@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("pipeline: [\n", ["invoke.yaml: line 2, column 1:"]),
        ("- a\n- b\n", ["invoke.yaml: the top level must be a mapping of keys, got a list"]),
        ("pipeline: !!python/object/apply:os.system ['touch PWNED']\n", ["is not allowed (plain YAML only)"]),
        (
            "pipeline:\n  lint: []\n  lint: [x]\n",
            ["invoke.yaml: line 3: duplicate key 'lint' (first on line 2)"],
        ),
        ("pipeline:\n  checklist: {version_file: ../../etc/passwd}\n", ["pipeline.checklist.version_file:"]),
    ],
)
def test_a_broken_invoke_yaml_is_one_line_naming_the_file_and_exit_2(
    repo: Repo, text: str, phrases: list[str]
) -> None:
    repo.write("invoke.yaml", text)
    before = snapshot(repo)
    refused(invoke(repo.path, "preflight"), 2, *phrases)
    assert snapshot(repo) == before
    assert not (repo.path / "PWNED").exists()


def test_invoke_list_still_lists_the_tasks_and_says_the_configuration_is_broken(repo: Repo) -> None:
    """In a process of its own, as a user runs it: the guard is installed while Invoke loads tasks.py."""
    repo.write("invoke.yaml", "pipeline: [\n")
    listing = invoke_process(repo.path, "--list")
    stdout, stderr = listing.communicate(timeout=60)
    assert listing.returncode == 0, stderr
    assert "deploy" in stdout and "preflight" in stdout
    assert stderr.startswith("warning: the pipeline tasks will refuse to run: invoke.yaml: line 2")
    task = invoke_process(repo.path, "preflight")
    stdout, stderr = task.communicate(timeout=60)
    assert (task.returncode, stderr) == (
        2,
        "error: invoke.yaml: line 2, column 1: expected the node content, but found '<stream end>'\n",
    )


def test_a_missing_runtime_file_is_named_not_ignored(repo: Repo) -> None:
    refused(invoke(repo.path, "-f", "nope.yaml", "preflight"), 2, "nope.yaml: no such configuration file")


def test_a_runtime_file_error_names_that_file_not_invoke_yaml(repo: Repo) -> None:
    repo.write("ci.yaml", "pipeline:\n  checklist: {require_clean: maybe}\n")
    refused(invoke(repo.path, "-f", "ci.yaml", "preflight"), 2, "ci.yaml: pipeline.checklist.require_clean")


@pytest.mark.parametrize(
    ("variables", "code", "phrase"),
    [
        ({"INVOKE_PIPELINE_CHECKLIST_REQUIRE_CLEAN": "maybe"}, 2, "is not true or false"),
        ({"INVOKE_PIPELINE_LINT": "ruff check"}, 2, 'a list; give it as JSON, e.g. ["one", "two"]'),
        (
            {"INVOKE_PIPELINE_CHECKLIST_TAG_PREFX": "r"},
            2,
            "(did you mean INVOKE_PIPELINE_CHECKLIST_TAG_PREFIX?)",
        ),
        (
            {"INVOKE_PIPELINE_CHECKLIST_TAG_PREFIX": "a b"},
            2,
            "INVOKE_PIPELINE_CHECKLIST_TAG_PREFIX: pipeline.",
        ),
    ],
)
def test_environment_overrides_are_cast_by_the_type_of_their_key(
    repo: Repo, variables: dict[str, str], code: int, phrase: str
) -> None:
    refused(invoke(repo.path, "preflight", env=variables), code, phrase)


def test_false_no_off_and_0_in_an_override_mean_false(repo: Repo) -> None:
    repo.write("untracked.txt", "x")
    assert invoke(repo.path, "preflight").code == 3  # the clean-tree item fails
    for word in ("false", "no", "OFF", "0"):
        run = invoke(repo.path, "preflight", env={"INVOKE_PIPELINE_CHECKLIST_REQUIRE_CLEAN": word})
        assert run.code == 0, (word, run.stdout)
    (repo.path / "untracked.txt").unlink()
    run = invoke(repo.path, "preflight", "--with-tests", env={"INVOKE_PIPELINE_LINT": '["python -c pass"]'})
    assert run.code == 0 and "ok   lint        1 command(s) passed" in run.stdout


@pytest.mark.parametrize("task", ["deploy", "history", "rollback"])
def test_every_task_has_help_even_those_that_take_an_environment(repo: Repo, task: str) -> None:
    run = invoke(repo.path, task, "--help")
    assert run.code == 0, run.stderr
    assert f"Usage: inv[oke] [--core-opts] {task}" in run.stdout and "--env" in run.stdout


@pytest.mark.parametrize(
    ("argv", "phrases", "usage"),
    [
        (["deploy"], ["deploy: --env is required"], "usage: invoke deploy --env ENV [--version VERSION]"),
        (["deploy", "--env"], ["deploy: --env needs a value"], "usage: invoke deploy --env ENV"),
        (["preflight", "--bogus"], ["preflight: unknown task or flag '--bogus'"], "usage: invoke preflight"),
        (
            ["bogus"],
            ["error: unknown task or flag 'bogus'"],
            "usage: invoke TASK [--flags]; tasks: backup, deploy, health",
        ),
        (["history", "--env", "x", "--limit", "abc"], ["--limit must be a whole number from 1 to 1000"], ""),
        (["deploy", "--env", "x", "--lock-wait", "soon"], ["--lock-wait: 'soon' is not a number"], "deploy"),
    ],
)
def test_usage_mistakes_exit_2_with_a_usage_line(
    repo: Repo, argv: list[str], phrases: list[str], usage: str
) -> None:
    run = invoke(repo.path, *argv)
    line = refused(run, 2, *phrases)
    assert not line.endswith((" is", "!"))  # Invoke's own wording, half rewritten
    assert usage in run.stderr


ENVIRONMENT = """
  environments:
    prod: {target: compose, hosts: ["127.0.0.1:9"], path: /srv/app, repository: "https://example.invalid/a"}
"""


def signalled(repo: Repo, task: list[str], signum: int) -> tuple[int, str, Path]:
    """Run a task whose lint command sleeps, signal invoke once the command runs; (code, stderr, pid file)."""
    marker = repo.path.parent / "lint.pid"
    lint = f"python -c \"import os, time; open('{marker}', 'w').write(str(os.getpid())); time.sleep(60)\""
    repo.write(
        "invoke.yaml",
        "pipeline:\n  checklist: {changelog_unreleased_ok: true}\n"
        f"  lint: [{json.dumps(lint)}]\n{ENVIRONMENT}",
    )
    repo.write("compose.yaml", "services:\n  web:\n    image: nginx\n")
    repo.commit("chore: a slow lint")
    process = invoke_process(repo.path, *task)
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr, marker


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_before_anything_changed_exits_130_or_143_and_stops_the_command(
    repo: Repo, signum: int, code: int
) -> None:
    returncode, stderr, marker = signalled(repo, ["preflight", "--with-tests"], signum)
    assert returncode == code, stderr
    assert stderr.strip() == f"interrupted by {signal.Signals(signum).name}: nothing was changed"
    lint_pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(lint_pid, 0)  # the lint command was stopped with the task


def test_a_signal_while_a_deploy_runs_its_local_stages_changes_nothing(repo: Repo) -> None:
    returncode, stderr, _ = signalled(repo, ["deploy", "--env", "prod"], signal.SIGTERM)
    assert (returncode, stderr.strip()) == (143, "interrupted by SIGTERM: nothing was changed")


@pytest.mark.parametrize(
    ("argv", "variables", "phrase"),
    [
        (["--report", "/nonexistent/dir/r.json"], {}, "--report '/nonexistent/dir/r.json': its directory"),
        (["--report", "."], {}, "--report '.': is a directory; nothing was touched"),
        ([], {"GITHUB_STEP_SUMMARY": "/"}, "$GITHUB_STEP_SUMMARY '/': is a directory; nothing was touched"),
    ],
)
def test_a_report_or_summary_that_cannot_be_written_is_refused_before_any_host_is_contacted(
    repo: Repo, argv: list[str], variables: dict[str, str], phrase: str
) -> None:
    repo.write("invoke.yaml", f"pipeline:\n  checklist: {{changelog_unreleased_ok: true}}\n{ENVIRONMENT}")
    repo.commit("chore: an environment")
    run = invoke(repo.path, "deploy", "--env", "prod", *argv, env=variables)
    refused(run, 2, phrase)
    assert "127.0.0.1" not in run.stdout + run.stderr  # refused before the (unreachable) host


def test_a_summary_that_fails_at_the_end_is_a_warning_and_preflight_keeps_its_verdict(repo: Repo) -> None:
    run = invoke(repo.path, "preflight", env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": "/dev/full"})
    assert run.code == 0, run.stderr
    assert (
        "warning: $GITHUB_STEP_SUMMARY was not written to '/dev/full' (No space left on device)" in run.stderr
    )
    run = invoke(repo.path, "preflight", env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": "/nope/s.md"})
    refused(run, 2, "$GITHUB_STEP_SUMMARY '/nope/s.md': its directory '/nope' does not exist")


def on_a_terminal(repo: Repo, variables: dict[str, str]) -> str:
    """What ``invoke preflight`` prints when its stdout is a terminal (a pseudo-terminal here)."""
    import pty

    leader, follower = pty.openpty()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", **variables}
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "preflight"], cwd=repo.path, env=environment,
        stdout=follower, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the program ended
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        process.wait(timeout=60)
    return b"".join(chunks).decode()


def test_verdicts_are_coloured_on_a_terminal_only_and_never_with_no_color(repo: Repo) -> None:
    repo.write("untracked.txt", "x")
    coloured = on_a_terminal(repo, {})
    assert "\x1b[1;31mFAIL\x1b[0m clean" in coloured and "\x1b[32mok\x1b[0m   version" in coloured
    assert "\x1b[" not in on_a_terminal(repo, {"NO_COLOR": "1"})
    assert "\x1b[" not in invoke(repo.path, "preflight").stdout  # a pipe


def test_a_signal_while_the_release_is_made_waits_until_it_is_whole(repo: Repo) -> None:
    marker = repo.path.parent / "hook.ran"
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\nsleep 1\n")
    hook.chmod(0o755)
    process = invoke_process(repo.path, "release")
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "note: SIGINT arrived while the release was made; it was finished first" in stdout
    assert "v1.1.0" in repo.tags() and repo.git("status", "--porcelain") == ""


def test_lint_output_streams_without_the_secrets_of_any_environment(repo: Repo) -> None:
    lint = "python -c \"import os; print('hook at', os.environ['CANARY_HOOK']); print('done')\""
    repo.write(
        "invoke.yaml",
        f"pipeline:\n  lint: [{json.dumps(lint)}]\n  environments:\n    prod:\n      target: compose\n"
        "      hosts: [h]\n      path: /srv/a\n      notify: [{slack: {webhook_env: CANARY_HOOK}}]\n",
    )
    secret = "https://hooks.example/T0/B0/c4n4ry-S3CRET-value"
    run = invoke(repo.path, "lint", env={"CANARY_HOOK": secret})
    assert run.code == 0, run.stderr
    assert "hook at ***" in run.stdout and "done" in run.stdout
    assert "c4n4ry" not in run.stdout + run.stderr


def test_an_error_message_is_printed_without_url_credentials_or_control_characters() -> None:
    from pipeline.errors import InputError
    from pipeline.tasks import _shown

    error = InputError("push to https://x-access-token:ghp_c4n4ry@git.example/a.git failed: \x1b[2Jgone")
    assert _shown(error) == "push to https://x-access-token:***@git.example/a.git failed: \\x1b[2Jgone"


def test_a_bug_outside_the_engine_exits_70_with_its_traceback_in_the_file_it_names(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.checklist

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug on purpose")

    monkeypatch.setattr(pipeline.checklist, "run_checklist", broken)
    before = snapshot(repo)
    line = refused(
        invoke(repo.path, "preflight"), 70, "internal error (ValueError), a bug in invoke-pipeline"
    )
    log = Path(line.split("the traceback is in ")[1].split(";")[0])
    try:
        text = log.read_text()
        assert "Traceback" in text and "ValueError: a bug on purpose" in text
    finally:
        log.unlink()
    assert snapshot(repo) == before

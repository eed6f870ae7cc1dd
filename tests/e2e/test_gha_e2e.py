"""What a deploy to the real sandbox shows: in GitHub Actions (masks, log groups, annotations, the job
summary with its timeline), and on a terminal (a live status line that leaves the plain output)."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apprepo import WEBHOOK_TOKEN
from sandboxlib import Project
from test_gha_output import gantt_tasks, mermaid_block, unescape
from test_progress import screen

pytestmark = pytest.mark.e2e

STATUS = re.compile(r"\r\x1b\[K(\w+) \[([^\]]*)\] (\d+)s(?:  (\S+): ([^\r\n]*))?")


def run_in_actions(project: Project, summary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``invoke`` as a GitHub Actions step runs it."""
    env = {**project.env(None), "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "CI": "true"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=project.work, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def run_on_a_terminal(project: Project, *args: str, signal_at: str = "") -> tuple[int, str]:
    """``invoke`` with its stdout and stderr on a pseudo-terminal: the exit code and what it wrote;
    SIGTERM is sent once the output shows ``signal_at``."""
    env = {**project.env(None), "TERM": "xterm", "NO_COLOR": "1", "COLUMNS": "300"}
    env.pop("CI", None)
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", *args], cwd=project.work, env=env, stdin=subprocess.DEVNULL,
        stdout=child, stderr=child,
    )  # fmt: skip
    os.close(child)
    chunks = []
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
            if signal_at and signal_at in b"".join(chunks).decode("utf-8", "replace"):
                process.send_signal(signal.SIGTERM)
                signal_at = ""
        code = process.wait(timeout=60)
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_a_failed_deploy_in_github_actions_is_masked_grouped_annotated_and_drawn(
    project: Project, tmp_path: Path
) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    bad = project.hosts[2]
    project.release("2.0.0", "health", f"fail-on-{bad['name']}", "migration", "good")
    summary = tmp_path / "summary.md"
    run = run_in_actions(project, summary, "deploy", "--env", "sandbox", "--version", "2.0.0")
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()

    masks = [line for line in lines if line.startswith("::add-mask::")]
    assert lines[: len(masks)] == masks
    assert WEBHOOK_TOKEN in {unescape(m.removeprefix("::add-mask::")) for m in masks}
    rest = "\n".join(lines[len(masks) :]) + run.stderr
    assert WEBHOOK_TOKEN not in rest

    titles = [line.removeprefix("::group::") for line in lines if line.startswith("::group::")]
    assert [t.split(" ")[0] for t in titles] == ["deploy", "migrate", "health", "rollback"]
    assert lines.count("::endgroup::") == len(titles)
    assert f"   {bad['ip']}: health failed" in {line.split(" (")[0] for line in lines}
    assert any(line.startswith("::error title=deploy sandbox%3A health failed::") for line in lines)
    assert any(line.startswith("::warning title=deploy sandbox%3A rolled back::") for line in lines)

    markdown = summary.read_text()
    assert markdown.startswith("### deploy sandbox: EXIT 1: 2.0.0 failed (health failed); rolled back to")
    assert WEBHOOK_TOKEN not in markdown
    tasks = gantt_tasks(mermaid_block(markdown))
    ips = [h["ip"] for h in project.hosts]
    assert {t[0] for t in tasks} == {*ips, *(f"rollback {ip}" for ip in ips)}
    assert (bad["ip"], "health", ["crit"]) in [t[:3] for t in tasks]
    assert f"<details><summary>logs from {bad['ip']}</summary>" in markdown
    assert '"GET /health HTTP/1.1" 500' in markdown


def test_on_a_terminal_a_long_stage_shows_live_progress_and_the_screen_keeps_only_the_plain_lines(
    project: Project,
) -> None:
    code, written = run_on_a_terminal(project, "deploy", "--env", "sandbox")
    assert code == 0, written
    updates = list(STATUS.finditer(written))
    assert updates, written
    ips = [h["ip"] for h in project.hosts]
    assert any(m[1] == "deploy" and set(m[2].split(", ")) <= set(ips) for m in updates)
    talking = [m for m in updates if m[4]]
    assert talking and all(m[4] in ips for m in talking)  # the last line of a command on a host
    seconds = [int(m[3]) for m in updates if m[1] == "deploy"]
    assert seconds == sorted(seconds) and seconds[0] >= 1

    shown = screen(written.replace("\r\n", "\n"))
    assert not any(STATUS.match("\r\x1b[K" + line) for line in shown)
    stages = [line for line in shown if line.startswith("-> ")]
    assert [s.split(" [")[0] for s in stages] == ["-> deploy", "-> migrate", "-> health"]
    assert "deploy sandbox: OK: 1.0.0 deployed to sandbox" in shown
    assert WEBHOOK_TOKEN not in written


def test_sigterm_during_a_live_stage_on_a_terminal_rolls_back_and_leaves_no_status_line(
    project: Project,
) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    project.release("2.0.0", "migration", "slow")
    code, written = run_on_a_terminal(
        project, "deploy", "--env", "sandbox", "--version", "2.0.0", signal_at="\r\x1b[Kmigrate ["
    )
    assert code == 1, written
    shown = screen(written.replace("\r\n", "\n"))
    assert any("cancelled (SIGTERM received); rolled back to 1.0.0" in line for line in shown), shown
    assert not any(STATUS.match("\r\x1b[K" + line) for line in shown)
    assert written.endswith("\n")  # nothing drawn after the last line
    assert project.versions() == ["1.0.0"] * 3
    assert project.revision() == "0003"

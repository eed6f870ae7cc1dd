"""Emergency deploys to the three sandbox servers: a hotfix that meets none of the paperwork ships,
marked everywhere; one that fails its health check is still rolled back; and the next developer's
preflight lists the emergency until CHANGELOG.md has its section.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apprepo import APP
from sandboxlib import Project

pytestmark = pytest.mark.e2e

REASON = "payments drop every order since 03:10"
TAG = "emergency/sandbox/1.0.1"


def hotfix(project: Project, *changes: str) -> str:
    """On-call's hotfix: VERSION 1.0.1 on a branch of its own, a free-form message, no CHANGELOG entry,
    pushed so that the hosts can fetch it."""
    project.git("checkout", "-q", "-b", "hotfix/payments")
    subprocess.run(
        [str(APP / "variant.sh"), str(project.work), "version", "1.0.1", *changes],
        check=True,
        capture_output=True,
    )
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "quick fix for the payment webhook")
    project.git("push", "-q", "origin", "hotfix/payments")
    return project.git("rev-parse", "HEAD")


def preflight(clone: Path, project: Project) -> dict[str, Any]:
    """``invoke preflight --json`` in a developer's clone: the item about emergencies."""
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "preflight", "--json"],
        cwd=clone, env=project.env(None), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    return dict(checks["emergency"])


def test_a_hotfix_without_paperwork_ships_as_an_emergency_marked_everywhere_until_documented(
    project: Project, tmp_path: Path
) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    commit = hotfix(project)
    refused = project.invoke("deploy", "--env", "sandbox")
    assert refused.code == 3 and "FAIL changelog" in refused.err and "FAIL branch" in refused.err

    report = tmp_path / "report.json"
    run = project.invoke(
        "deploy", "--env", "sandbox", "--emergency", "--reason", REASON, "--report", str(report)
    )
    assert run.code == 0, run.text
    assert f"EMERGENCY deploy: {REASON}" in run.out
    assert "waived (emergency): changelog: " in run.out and "waived (emergency): branch: on hotfix" in run.out
    assert f"deploy sandbox: OK: 1.0.1 deployed to sandbox (EMERGENCY: {REASON})" in run.out
    assert project.versions() == ["1.0.1"] * 3
    for host in project.hosts:
        last = project.journal(host)[-1]
        assert (last["version"], last["result"], last["commit"], last["emergency"]) == (
            "1.0.1", "healthy", commit, REASON,
        )  # fmt: skip
        assert project.journal(host)[0]["emergency"] == ""
    data = json.loads(report.read_text())
    assert (data["outcome"], data["emergency"]) == ("deployed", REASON)
    assert data["waived"] == ["changelog", "commits", "branch"]
    assert {"name": "emergency tag", "status": "ok", "detail": f"{TAG} pushed to origin"}.items() <= next(
        s for s in data["stages"] if s["name"] == "emergency tag"
    ).items()
    note = project.webhook.received[-1]["json"]
    assert note["title"] == "✅ sandbox: 1.0.1 deployed [EMERGENCY]"
    assert REASON in note["summary"] and note["report"]["emergency"] == REASON
    history = project.invoke("history", "--env", "sandbox")
    assert history.out.count(f"EMERGENCY ({REASON})") == 3  # one line on each host

    # The next developer clones main: the tag came with it, and preflight lists the emergency.
    clone = tmp_path / "developer"
    subprocess.run(["git", "clone", "-q", str(project.origin), str(clone)], check=True)
    shown = subprocess.run(
        ["git", "for-each-ref", "--format=%(*objectname) %(contents)", f"refs/tags/{TAG}"],
        cwd=clone, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert shown.startswith(commit) and f"Reason: {REASON}" in shown
    item = preflight(clone, project)
    assert item["status"] == "fail" and item["details"] == [f"{TAG} ({commit[:10]}): {REASON}"]

    changelog = clone / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace(
            "## [1.0.0]", "## [1.0.1] - 2026-12-01\n\n### Fixed\n- Payments are taken again.\n\n## [1.0.0]"
        )
    )
    subprocess.run(["git", "commit", "-q", "-am", "docs: the emergency fix 1.0.1"], cwd=clone, check=True)
    item = preflight(clone, project)
    assert item["status"] == "ok", item


def test_an_emergency_whose_health_fails_is_rolled_back_and_leaves_no_tag(
    project: Project, tmp_path: Path
) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    hotfix(project, "health", "fail", "migration", "good")
    told = len(project.webhook.received)
    dry = project.invoke("deploy", "--env", "sandbox", "--emergency", "--reason", REASON, "--dry-run")
    assert dry.code == 0, dry.text
    assert f"emergency: once deployed, tag {TAG} at its commit" in dry.out
    assert project.git("tag", "--list", "emergency/*") == "" and len(project.webhook.received) == told

    report = tmp_path / "report.json"
    run = project.invoke(
        "deploy", "--env", "sandbox", "--emergency", "--reason", REASON, "--report", str(report)
    )
    assert run.code == 1, run.text
    assert project.versions() == ["1.0.0"] * 3
    assert project.revision() == "0003"  # the hotfix's migration was downgraded
    for host in project.hosts:
        entries = project.journal(host)
        assert [(e["version"], e["result"], e["emergency"]) for e in entries[-2:]] == [
            ("1.0.1", "rolled_back", REASON),
            ("1.0.0", "restored", REASON),
        ]
    data = json.loads(report.read_text())
    assert (data["outcome"], data["exit_code"], data["emergency"]) == ("rolled_back", 1, REASON)
    assert not any(s["name"] == "emergency tag" for s in data["stages"])
    assert project.git("tag", "--list", "emergency/*") == ""
    assert project.webhook.received[-1]["json"]["title"] == "↩️ sandbox: 1.0.1 rolled back [EMERGENCY]"

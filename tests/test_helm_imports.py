"""`invoke --list` and `invoke preflight` in a project with a Helm environment never import kubernetes.

A process of its own, with ``-X importtime``: what this test process imported already does not count.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepos import Repo, invoke_process

HELM_CONFIG = """pipeline:
  checklist:
    changelog_unreleased_ok: true
  environments:
    k8s:
      target: helm
      release: app
      chart: deploy/charts/app
      namespace: prod
      migrate: {workload: Deployment/app}
      health: [{service: "app:http", path: /health}]
"""
HEAVY = ("kubernetes", "pipeline.kube", "pipeline.targets.helm", "pipeline.rollout", "urllib3")


def imported(cwd: Path, *args: str) -> tuple[int, list[str]]:
    """Run ``invoke ARGS`` with ``-X importtime``: its exit code and every module it imported."""
    process = invoke_process(cwd, *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    _, stderr = process.communicate(timeout=60)
    modules = [
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")
    ]
    assert "invoke" in modules, stderr[-2000:]
    return process.returncode, modules


@pytest.fixture
def helm_repo(repo: Repo) -> Repo:
    repo.write("invoke.yaml", HELM_CONFIG)
    repo.commit("chore: a helm environment", "invoke.yaml", HELM_CONFIG)
    return repo


def test_listing_the_tasks_of_a_project_with_a_helm_environment_never_imports_kubernetes(
    helm_repo: Repo,
) -> None:
    code, modules = imported(helm_repo.path, "--list")
    assert code == 0
    assert "pipeline.tasks" in modules
    assert [m for m in modules if m.startswith(HEAVY)] == []


def test_preflight_of_a_project_with_a_helm_environment_never_imports_kubernetes(helm_repo: Repo) -> None:
    code, modules = imported(helm_repo.path, "preflight")
    assert code == 0
    assert "pipeline.config" in modules and "pipeline.helmconfig" in modules
    assert [m for m in modules if m.startswith(HEAVY)] == []

"""The Helm scenarios (``tests/helmscenarios.py``) with the real helm 3 and helm 4 against the fake
Kubernetes API server.

The API server is a fake (``tests/kubefake``), but what it runs is real: pods are containers on the
sandbox's kube engine, pulled from the sandbox registry, reaching its PostgreSQL. The same scenarios run
on a real cluster in ``tests/kind/test_helm_kind.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helmscenarios as scenario
import pytest
from helmlib import make_helm_project
from helmproject import HelmProject
from kubefake import FakeCluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(sandbox: dict[str, Any]) -> Iterator[FakeCluster]:
    """One fake cluster for the module, its pods on the sandbox's kube engine; each test has a namespace."""
    with FakeCluster(sandbox["kube_docker_host"], sandbox["kube_ip"]) as fake:
        yield fake


@pytest.fixture(params=["3", "4"])
def helm(
    request: pytest.FixtureRequest, sandbox: dict[str, Any], cluster: FakeCluster, tmp_path: Path
) -> Iterator[HelmProject]:
    """The example app as a team's repository deploying with helm 3 or 4 to a namespace of its own."""
    project = make_helm_project(sandbox, cluster, tmp_path, request.param)
    try:
        yield project
    finally:
        project.close()


@pytest.fixture
def helm4(sandbox: dict[str, Any], cluster: FakeCluster, tmp_path: Path) -> Iterator[HelmProject]:
    """As ``helm``, with helm 4 only (scenarios whose helm side is the same in both)."""
    project = make_helm_project(sandbox, cluster, tmp_path, "4")
    try:
        yield project
    finally:
        project.close()


def test_a_good_release_then_a_crash_looping_one_rolls_back_to_the_recorded_revision(
    helm: HelmProject, tmp_path: Path
) -> None:
    scenario.a_good_release_then_a_crash_looping_one_rolls_back_to_the_recorded_revision(helm, tmp_path)


def test_an_image_that_does_not_exist_fails_fast_in_the_rollout_and_in_the_migration_job(
    helm4: HelmProject, tmp_path: Path
) -> None:
    scenario.an_image_that_does_not_exist_fails_fast_in_the_rollout_and_in_the_migration_job(helm4, tmp_path)


def test_a_failing_migration_job_rolls_back_and_leaves_the_database_unchanged(helm4: HelmProject) -> None:
    scenario.a_failing_migration_job_rolls_back_and_leaves_the_database_unchanged(helm4)


def test_a_first_install_that_fails_is_kept_and_reported(helm4: HelmProject) -> None:
    scenario.a_first_install_that_fails_is_kept_and_reported(helm4)


def test_sigterm_mid_upgrade_rolls_back(helm4: HelmProject) -> None:
    scenario.sigterm_mid_upgrade_rolls_back(helm4)


def test_sigterm_while_helm_upgrade_runs_stops_it_and_rolls_back(helm4: HelmProject) -> None:
    scenario.sigterm_while_helm_upgrade_runs_stops_it_and_rolls_back(helm4)


def test_migrations_by_exec_run_in_a_ready_pod_and_fall_back_to_a_job_when_none_gets_ready(
    helm4: HelmProject,
) -> None:
    scenario.migrations_by_exec_fall_back_to_a_job_when_no_pod_gets_ready(helm4)
    # The fake's request log shows where the good release's migration ran: in its pods, by exec.
    requests = helm4.cluster.requests  # type: ignore[attr-defined]
    execs = [p for _, p, _ in requests if f"/namespaces/{helm4.namespace}/pods/" in p and "/exec?" in p]
    assert len(execs) >= 4, execs  # current, upgrade, current, heads of 2.0.0


def test_a_run_killed_mid_upgrade_leaves_pending_upgrade_and_rollback_recovers(helm: HelmProject) -> None:
    scenario.a_run_killed_mid_upgrade_leaves_pending_upgrade_and_rollback_recovers(helm)


def test_two_deploys_at_once_the_second_exits_5_naming_the_first(helm4: HelmProject) -> None:
    scenario.two_deploys_at_once_the_second_exits_5_naming_the_first(helm4)


def test_rollback_to_a_named_release_and_on_call_views(helm4: HelmProject) -> None:
    scenario.rollback_to_a_named_release_and_on_call_views(helm4)


def test_helm_missing_or_a_bad_kubeconfig_exits_2_before_anything_changes(helm4: HelmProject) -> None:
    scenario.helm_missing_or_a_bad_kubeconfig_exits_2_before_anything_changes(helm4)

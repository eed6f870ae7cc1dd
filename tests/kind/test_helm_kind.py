"""The Helm scenarios (``tests/helmscenarios.py``) on a real Kubernetes cluster: kind, in the helm-kind
workflow, with the helm of its matrix (helm 3 in one job, helm 4 in the other).

The same scenarios run against the fake API server in ``tests/e2e/test_deploy_helm.py``; here pods are
scheduled by a real kubelet, images come from ``kind load``, and PostgreSQL runs in the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import helmscenarios as scenario
import pytest
from kindlib import KindCluster, KindProject, make_kind_project

pytestmark = pytest.mark.kind


@pytest.fixture
def helm(kind_cluster: KindCluster, tmp_path: Path) -> Iterator[KindProject]:
    """The example app as a team's repository deploying to a namespace of its own; the database empty."""
    project = make_kind_project(kind_cluster, tmp_path)
    try:
        yield project
    finally:
        project.close()


def test_a_good_release_then_a_crash_looping_one_rolls_back_to_the_recorded_revision(
    helm: KindProject, tmp_path: Path
) -> None:
    scenario.a_good_release_then_a_crash_looping_one_rolls_back_to_the_recorded_revision(helm, tmp_path)


def test_an_image_that_does_not_exist_fails_fast_in_the_rollout_and_in_the_migration_job(
    helm: KindProject, tmp_path: Path
) -> None:
    scenario.an_image_that_does_not_exist_fails_fast_in_the_rollout_and_in_the_migration_job(helm, tmp_path)


def test_a_failing_migration_job_rolls_back_and_leaves_the_database_unchanged(helm: KindProject) -> None:
    scenario.a_failing_migration_job_rolls_back_and_leaves_the_database_unchanged(helm)


def test_a_first_install_that_fails_is_kept_and_reported(helm: KindProject) -> None:
    scenario.a_first_install_that_fails_is_kept_and_reported(helm)


def test_sigterm_mid_upgrade_rolls_back(helm: KindProject) -> None:
    scenario.sigterm_mid_upgrade_rolls_back(helm)


def test_sigterm_while_helm_upgrade_runs_stops_it_and_rolls_back(helm: KindProject) -> None:
    scenario.sigterm_while_helm_upgrade_runs_stops_it_and_rolls_back(helm)


def test_migrations_by_exec_fall_back_to_a_job_when_no_pod_gets_ready(helm: KindProject) -> None:
    scenario.migrations_by_exec_fall_back_to_a_job_when_no_pod_gets_ready(helm)


def test_a_run_killed_mid_upgrade_leaves_pending_upgrade_and_rollback_recovers(helm: KindProject) -> None:
    scenario.a_run_killed_mid_upgrade_leaves_pending_upgrade_and_rollback_recovers(helm)


def test_two_deploys_at_once_the_second_exits_5_naming_the_first(helm: KindProject) -> None:
    scenario.two_deploys_at_once_the_second_exits_5_naming_the_first(helm)


def test_rollback_to_a_named_release_and_on_call_views(helm: KindProject) -> None:
    scenario.rollback_to_a_named_release_and_on_call_views(helm)


def test_helm_missing_or_a_bad_kubeconfig_exits_2_before_anything_changes(helm: KindProject) -> None:
    scenario.helm_missing_or_a_bad_kubeconfig_exits_2_before_anything_changes(helm)

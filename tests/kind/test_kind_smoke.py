"""The example chart installs on a real cluster: its pods get ready, which means GET /health answered 200,
so the image runs and reaches PostgreSQL through the chart's Secret."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from gitrepos import ROOT
from kindlib import KindCluster

pytestmark = pytest.mark.kind

CHART = ROOT / "examples" / "app" / "chart"
AVAILABLE_WITHIN = 180  # seconds: an image already loaded into kind starts in a few


def helm(cluster: KindCluster, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    argv = [str(cluster.helm), "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def deployment_available(deployment: Any) -> bool:
    """The rollout of the current spec is complete: every replica updated and available."""
    status, wanted = deployment.status, deployment.spec.replicas
    return bool(
        (status.observed_generation or 0) >= deployment.metadata.generation
        and status.updated_replicas == wanted
        and status.available_replicas == wanted
        and any(c.type == "Available" and c.status == "True" for c in status.conditions or [])
    )


def pod_states(core: Any, namespace: str) -> str:
    """One line per pod, for the failure message: phase, then each container's waiting/ready state."""
    lines = []
    for pod in core.list_namespaced_pod(namespace).items:
        containers = [
            f"{c.name} ready={c.ready} restarts={c.restart_count}"
            + (f" waiting={c.state.waiting.reason}" if c.state.waiting else "")
            for c in pod.status.container_statuses or []
        ]
        lines.append(f"{pod.metadata.name} {pod.status.phase} {'; '.join(containers)}")
    return "\n".join(lines) or "(no pods)"


def delete_namespace(core: Any, namespace: str) -> None:
    """Deletes the namespace without waiting; absent (the install failed early) is fine."""
    from kubernetes.client.exceptions import ApiException

    try:
        core.delete_namespace(namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise


def test_chart_installs_and_its_deployment_becomes_available(
    kind_cluster: KindCluster, tmp_path: Path
) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kind_cluster.kubeconfig))
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    namespace = release = f"smoke-{uuid.uuid4().hex[:8]}"
    try:
        install = helm(
            kind_cluster,
            tmp_path,
            "upgrade",
            "--install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--create-namespace",
            "--set",
            f"image.repository={kind_cluster.image_repository}",
            "--set-string",
            f"image.tag={kind_cluster.image_tag}",
            "--set",
            f"database.url={kind_cluster.database_url}",
        )
        assert install.returncode == 0, install.stdout + install.stderr
        name = f"{release}-app"
        deadline = time.monotonic() + AVAILABLE_WITHIN
        deployment = apps.read_namespaced_deployment(name, namespace)
        while not deployment_available(deployment) and time.monotonic() < deadline:
            time.sleep(1)
            deployment = apps.read_namespaced_deployment(name, namespace)
        assert deployment_available(deployment), (
            f"{name} not available within {AVAILABLE_WITHIN} s: {deployment.status}\n"
            + pod_states(core, namespace)
        )
        assert deployment.spec.template.spec.containers[0].image == kind_cluster.image
    finally:
        uninstall = helm(kind_cluster, tmp_path, "uninstall", release, "--namespace", namespace, "--wait")
        delete_namespace(core, namespace)
    assert uninstall.returncode == 0, uninstall.stdout + uninstall.stderr

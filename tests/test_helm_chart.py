"""The example chart (examples/app/chart) with the real helm 3 and helm 4: it lints strictly and renders
what the pipeline relies on. Offline: no cluster, no repositories."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitrepos import ROOT

CHART = ROOT / "examples" / "app" / "chart"
DATABASE_URL = "postgresql://app:s3cret@postgres.default.svc:5432/app"
HELMS = {
    "helm3": ("PIPELINE_HELM3", ROOT / ".cache" / "helm" / "v3" / "helm"),
    "helm4": ("PIPELINE_HELM4", ROOT / ".cache" / "helm" / "v4" / "helm"),
}

Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=sorted(HELMS))
def helm(request: pytest.FixtureRequest, tmp_path: Path) -> Helm:
    """Runs one real helm binary with its cache, config and data in tmp_path; fails when it is absent."""
    variable, default = HELMS[request.param]
    binary = Path(os.environ.get(variable) or default)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{request.param} not found at {binary}: run scripts/helm-binaries (or set {variable})")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=60)

    return run


def render(helm: Helm, *args: str) -> dict[tuple[str, str], dict[str, Any]]:
    """``helm template`` of the chart as release ``web``: the objects by (kind, name)."""
    done = helm("template", "web", str(CHART), *args)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def container(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects["Deployment", "web-app"]["spec"]["template"]["spec"]["containers"]
    return only


def test_chart_passes_strict_lint(helm: Helm) -> None:
    done = helm("lint", "--strict", str(CHART), "--set", f"database.url={DATABASE_URL}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_release_tag_sets_the_image_and_version_label(helm: Helm) -> None:
    objects = render(helm, "--set-string", "image.tag=2.0.0", "--set", f"database.url={DATABASE_URL}")
    deployment = objects["Deployment", "web-app"]
    assert container(objects)["image"] == "app/api:2.0.0"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "2.0.0"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_image_tag_defaults_to_the_app_version(helm: Helm) -> None:
    objects = render(helm, "--set", f"database.url={DATABASE_URL}")
    assert container(objects)["image"] == "app/api:1.0.0"


def test_database_url_reaches_the_container_through_the_chart_secret(helm: Helm) -> None:
    objects = render(helm, "--set", f"database.url={DATABASE_URL}")
    assert objects["Secret", "web-app-db"]["stringData"] == {"url": DATABASE_URL}
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "web-app-db", "key": "url"}}


def test_existing_secret_replaces_the_chart_secret_and_the_url(helm: Helm) -> None:
    objects = render(helm, "--set", "database.existingSecret=app-database")
    assert not [key for key in objects if key[0] == "Secret"]
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "app-database", "key": "url"}


def test_missing_database_url_fails_with_the_required_message(helm: Helm) -> None:
    done = helm("template", "web", str(CHART))
    assert done.returncode != 0
    assert "database.url is required" in done.stderr


def test_service_targets_the_named_container_port(helm: Helm) -> None:
    objects = render(helm, "--set", f"database.url={DATABASE_URL}")
    service = objects["Service", "web-app"]["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert container(objects)["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    pod_labels = objects["Deployment", "web-app"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()


def test_readiness_probe_asks_the_health_endpoint(helm: Helm) -> None:
    probe = container(render(helm, "--set", f"database.url={DATABASE_URL}"))["readinessProbe"]
    assert probe == {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 2,
        "failureThreshold": 3,
    }


def test_extra_env_from_values_reaches_the_container(helm: Helm) -> None:
    objects = render(
        helm,
        "--set",
        f"database.url={DATABASE_URL}",
        "--set",
        "env[0].name=HEALTH_MODE",
        "--set",
        "env[0].value=crash",
    )
    assert {"name": "HEALTH_MODE", "value": "crash"} in container(objects)["env"]

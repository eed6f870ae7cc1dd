"""``invoke logs`` of a Helm release against the fake API server without a Docker engine: the release's
workloads and pods are found through real helm and the API, and pods that never started say so."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubefake import FakeCluster

from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.executor import LocalExecutor
from pipeline.logs import LogRequest, show_logs

ROOT = Path(__file__).resolve().parents[1]
CHART = {
    "Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: '1.0'\n",
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: 2
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - {name: web, image: "app:1"}
      - {name: proxy, image: "proxy:1"}
""",
}


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    """An API-only fake cluster: pods are scheduled, never run."""
    with FakeCluster(docker_host=None) as fake:
        yield fake
    assert not [t for t in threading.enumerate() if t.name.startswith("kubefake")]


@pytest.fixture
def helm(cluster: FakeCluster, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The environment of release ``demo`` in ``default``, and a ``install()`` that installs it."""
    binary = Path(os.environ.get("PIPELINE_HELM4") or ROOT / ".cache/helm/v4/helm")
    if not binary.is_file():
        pytest.fail(f"helm 4 not found at {binary}: run scripts/helm-binaries (or set PIPELINE_HELM4)")
    chart = tmp_path / "chart"
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    kubeconfig = cluster.kubeconfig(tmp_path / "kubeconfig")
    homes = {f"HELM_{k}_HOME": str(tmp_path / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}
    saved = dict(os.environ)
    os.environ.update(homes)

    def install() -> None:
        done = subprocess.run(
            [str(binary), "upgrade", "--install", "demo", str(chart), "--namespace", "default"],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        end = time.monotonic() + 10
        while len(cluster.objects("v1", "pods", "default")) < 2:  # the controllers make them
            assert time.monotonic() < end, "no pods"
            time.sleep(0.1)

    env = {"target": "helm", "release": "demo", "namespace": "default", "chart": "chart",
           "kubeconfig": str(kubeconfig), "helm": str(binary)}  # fmt: skip
    try:
        yield {"env": env, "install": install}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def logs(helm: dict[str, Any], request: LogRequest) -> tuple[int, str, str]:
    config = load_config({"environments": {"k8s": helm["env"]}})
    out, err = io.StringIO(), io.StringIO()
    code = show_logs(config, "k8s", LocalExecutor(), request, out, err)
    return code, out.getvalue(), err.getvalue()


def test_a_release_never_installed_has_nothing_deployed(helm: dict[str, Any]) -> None:
    assert logs(helm, LogRequest()) == (
        0,
        "",
        "default/demo: nothing deployed (helm has no revision of the release)\n",
    )


def test_every_container_of_every_pod_is_read_and_one_not_started_says_so_with_exit_1(
    helm: dict[str, Any], cluster: FakeCluster
) -> None:
    helm["install"]()
    pods = sorted(p["metadata"]["name"] for p in cluster.objects("v1", "pods", "default"))
    assert len(pods) == 2
    code, out, err = logs(helm, LogRequest(tail=5))
    assert code == 1 and out == ""
    assert sorted(err.splitlines()) == sorted(
        f'{pod}/{c}: the log cannot be read: the API server answered 400 BadRequest: container "{c}" in pod '
        f'"{pod}" is waiting to start: ContainerCreating'
        for pod in pods for c in ("web", "proxy")
    )  # fmt: skip
    asked = [path for method, path, _ in cluster.requests if "/log?" in path]
    assert len(asked) == 4 and all("tailLines=5" in p for p in asked)


def test_a_service_names_a_workload_or_a_container_else_the_known_ones(helm: dict[str, Any]) -> None:
    helm["install"]()
    code, _, err = logs(helm, LogRequest(service="proxy"))
    assert code == 1 and len(err.splitlines()) == 2 and all("/proxy: " in line for line in err.splitlines())
    with pytest.raises(InputError, match="the workloads are demo, the containers proxy, web"):
        logs(helm, LogRequest(service="db"))

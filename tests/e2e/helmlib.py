"""The Helm end-to-end tests' cluster: the fake Kubernetes API server, its pods on the sandbox.

A ``FakeHelmProject`` is a ``helmproject.HelmProject`` whose release lives in a namespace of the fake
cluster (``tests/kubefake``), read straight from its store; its images are pushed to the sandbox registry
and its database is the sandbox's PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from apprepo import new_repository
from helmproject import RELEASE, HelmProject
from sandboxlib import RESET_SCHEMA, ROOT, build_and_push, psql

HELM_BINARIES = {"3": ROOT / ".cache" / "helm" / "v3" / "helm", "4": ROOT / ".cache" / "helm" / "v4" / "helm"}


class FakeHelmProject(HelmProject):
    """The repository, its namespace in the fake cluster, and helm 3 or 4."""

    def __init__(self, sandbox: dict[str, Any], cluster: Any, directory: Path, version: str) -> None:
        helm_binary = HELM_BINARIES[version]
        assert helm_binary.exists(), f"{helm_binary} is missing: run scripts/helm-binaries"
        namespace = f"e2e-{uuid.uuid4().hex[:8]}"
        kubeconfig = cluster.kubeconfig(directory / "kubeconfig")
        super().__init__(new_repository(directory), cluster, namespace, helm_binary, kubeconfig, directory)
        self.sandbox = sandbox
        self.url = cluster.url
        self.version = version

    def build(self, version: str) -> None:
        """Built on the sandbox's build engine and pushed to its registry, where the pods pull from."""
        build_and_push(self.sandbox, self.repository.work, version, self.image)

    def sql(self, query: str) -> list[str]:
        return psql(self.sandbox, query)

    def close(self) -> None:
        super().close()
        self.helm("uninstall", RELEASE, "--wait=false" if self.version == "4" else "--no-hooks")
        for job in self.jobs():
            _delete(self.url, f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{job['metadata']['name']}")
        for pod in self.cluster.objects("v1", "pods", self.namespace):
            _delete(self.url, f"/api/v1/namespaces/{self.namespace}/pods/{pod['metadata']['name']}")


def _delete(base: str, path: str) -> None:
    body = json.dumps({"propagationPolicy": "Background"}).encode()
    request = urllib.request.Request(base + path, data=body, method="DELETE",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=10).close()


def make_helm_project(sandbox: dict[str, Any], cluster: Any, directory: Path, version: str) -> HelmProject:
    """Release 1.0.0 of the example app with its chart, its image pushed, configured for helm ``version``
    in a namespace of its own; the database empty."""
    psql(sandbox, RESET_SCHEMA)
    helm = FakeHelmProject(sandbox, cluster, directory, version)
    values = {
        "replicaCount": 1,
        "image": {"repository": f"{sandbox['registry']}/{helm.image}", "pullPolicy": "IfNotPresent"},
        "database": {"url": sandbox["db_url"]},
    }
    helm.setup("sandbox.yaml", values)
    return helm

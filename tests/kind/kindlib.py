"""What the kind tests share: the cluster they run against, and the Helm scenarios' project on it.

A ``KindProject`` is a ``helmproject.HelmProject`` whose release lives in a namespace of its own on the
real cluster. Its cluster reads go through the kubernetes client; each release's image is built with the
runner's docker on the base image the workflow built once, then loaded into kind (``kind load``); its
database is the PostgreSQL of ``tests/kind/postgres.yaml``, queried with ``psql`` inside that pod
(``kubectl exec``: no port to forward, nothing left running).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apprepo import new_repository
from helmproject import HelmProject

EMPTY_DATABASE = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
# What the scenarios read, by (group/version, plural): the typed client's API class and method.
LISTS = {
    ("v1", "pods"): ("CoreV1Api", "list_namespaced_pod"),
    ("batch/v1", "jobs"): ("BatchV1Api", "list_namespaced_job"),
}
READS = {
    ("v1", "configmaps"): ("CoreV1Api", "read_namespaced_config_map"),
    ("coordination.k8s.io/v1", "leases"): ("CoordinationV1Api", "read_namespaced_lease"),
}


@dataclass(frozen=True)
class KindCluster:
    """A real cluster the tests may deploy to, with what they deploy."""

    kubeconfig: Path
    helm: Path
    image: str
    database_url: str
    kind: str = ""  # the kind binary ("": none, the Helm scenarios then fail)
    name: str = "kind"  # the kind cluster's name, for `kind load --name`
    base_image: str = "app-base:kind"  # the app image's BASE_IMAGE (tests/kind/app-base.Dockerfile)

    @property
    def image_repository(self) -> str:
        """The image without its tag, for the chart's image.repository."""
        return self.image.rpartition(":")[0]

    @property
    def image_tag(self) -> str:
        """The image's tag, for the chart's image.tag."""
        return self.image.rpartition(":")[2]


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command; AssertionError with its stderr when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()[-2000:]}"
    return done


class KubeReads:
    """``helmproject.ClusterReads`` through the kubernetes client: objects as the API server serves them."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import config

        self.api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]

    def _method(self, api_name: str, method: str) -> Any:
        from kubernetes import client

        return getattr(getattr(client, api_name)(self.api), method)

    def objects(self, group_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind in the namespace."""
        assert namespace, "the kind tests read one namespace"
        listing = self._method(*LISTS[group_version, plural])
        response = listing(namespace, _preload_content=False, _request_timeout=30)
        return list(json.loads(response.data)["items"])

    def get(self, group_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None."""
        from kubernetes.client.exceptions import ApiException

        read = self._method(*READS[group_version, plural])
        try:
            response = read(name, namespace, _preload_content=False, _request_timeout=30)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        found: dict[str, Any] = json.loads(response.data)
        return found

    def delete_namespace(self, namespace: str) -> None:
        """Delete a namespace and everything in it, without waiting; absent is fine."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            client.CoreV1Api(self.api).delete_namespace(namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def close(self) -> None:
        self.api.close()


def postgres_exec(kubeconfig: Path, database_url: str) -> list[str]:
    """``psql`` (options to add) in the pod behind the URL's Service (``NAME.NAMESPACE.svc``), connected
    to the URL's database as that pod reaches its own server (127.0.0.1)."""
    url = urlsplit(database_url)
    labels = (url.hostname or "").split(".")
    assert len(labels) >= 3 and labels[2] == "svc", (
        f"PIPELINE_KIND_DATABASE_URL={database_url}: expected a Service host NAME.NAMESPACE.svc"
    )
    credentials = url.netloc.rpartition("@")[0]
    local = url._replace(netloc=f"{credentials}@127.0.0.1:{url.port or 5432}").geturl()
    kubectl = ["kubectl", "--kubeconfig", str(kubeconfig), "--namespace", labels[1]]
    return [*kubectl, "exec", f"service/{labels[0]}", "--", "psql", "--dbname", local]


class KindProject(HelmProject):
    """The repository, its namespace on the kind cluster, and the workflow's helm."""

    def __init__(self, cluster: KindCluster, directory: Path) -> None:
        assert cluster.kind, "no kind binary: set PIPELINE_KIND_BINARY or put kind on the PATH"
        assert shutil.which("kubectl"), "no kubectl on the PATH: the database is read through kubectl exec"
        namespace = f"kind-{uuid.uuid4().hex[:8]}"
        reads = KubeReads(cluster.kubeconfig)
        super().__init__(
            new_repository(directory), reads, namespace, cluster.helm, cluster.kubeconfig, directory
        )
        self.reads = reads
        self.kind_cluster = cluster
        self.psql = postgres_exec(cluster.kubeconfig, cluster.database_url)

    def build(self, version: str) -> None:
        """Built with the runner's docker, then loaded into the kind nodes (the pods never pull it)."""
        image, kind = f"{self.image}:{version}", self.kind_cluster
        base = f"BASE_IMAGE={kind.base_image}"
        run("docker", "build", "-q", "-t", image, "--build-arg", base, str(self.repository.work), timeout=600)
        run(kind.kind, "load", "docker-image", image, "--name", kind.name, timeout=600)

    def sql(self, query: str) -> list[str]:
        done = subprocess.run(
            [*self.psql, "-At", "-v", "ON_ERROR_STOP=1", "-c", query],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            if "does not exist" in done.stderr:
                return []
            raise AssertionError(done.stderr)
        return [line for line in done.stdout.splitlines() if line]

    def close(self) -> None:
        """The namespace goes, with the release, its pods, Jobs, ledger and lock."""
        super().close()
        try:
            self.reads.delete_namespace(self.namespace)
        finally:
            self.reads.close()


def make_kind_project(cluster: KindCluster, directory: Path) -> KindProject:
    """Release 1.0.0 of the example app with its chart, its image loaded into kind, configured for the
    workflow's helm in a namespace of its own; the database empty."""
    helm = KindProject(cluster, directory)
    values = {
        "replicaCount": 1,
        # IfNotPresent: a loaded image is never pulled, and one never loaded is looked up on Docker Hub,
        # which answers that the repository does not exist: a tag never pushed, as on any registry.
        "image": {"repository": helm.image, "pullPolicy": "IfNotPresent"},
        "database": {"url": cluster.database_url},
    }
    try:
        helm.sql(EMPTY_DATABASE)
        helm.setup("kind.yaml", values)
    except BaseException:
        helm.close()
        raise
    return helm

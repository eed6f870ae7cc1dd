"""The Helm end-to-end tests' view: the example app deploying with real helm to the fake cluster.

A ``HelmProject`` is the team's repository (``sandboxlib.Project``: git, releases, ``invoke``), the
release's namespace in the fake cluster, the helm binary it uses, and what a user checks: ``helm
history``, the images the pods run, the ledger, the lock, the database revision.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandboxlib import RESET_SCHEMA, ROOT, Project, Run, make_project, psql

HELM_BINARIES = {"3": ROOT / ".cache" / "helm" / "v3" / "helm", "4": ROOT / ".cache" / "helm" / "v4" / "helm"}
ENVIRONMENT = "k8s"
RELEASE = "app"

# A pre-upgrade hook that holds helm in `pending-upgrade` (a slow schema job, as charts have).
SLOW_HOOK = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-slow-hook
  annotations:
    "helm.sh/hook": pre-upgrade
    "helm.sh/hook-delete-policy": before-hook-creation
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: hook
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          command: ["python3", "-c", "import time; time.sleep(120)"]
"""


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.3) -> None:
    """Until ``condition()`` holds; AssertionError after ``seconds``."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {seconds:g} s: {condition}")
        time.sleep(step)


class HelmProject:
    """The repository, its namespace and its helm; see the module docstring."""

    def __init__(self, project: Project, cluster: Any, namespace: str, version: str, home: Path) -> None:
        self.project = project
        self.cluster = cluster
        self.namespace = namespace
        self.helm_binary = HELM_BINARIES[version]
        assert self.helm_binary.exists(), f"{self.helm_binary} is missing: run scripts/helm-binaries"
        self.kubeconfig = cluster.kubeconfig(home / "kubeconfig")
        self.helm_env = {
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
            "KUBECONFIG": str(self.kubeconfig),
        }
        self.environment: dict[str, Any] = {}
        self.image = f"e2e/{namespace}"  # a repository per test: a tag means one image, whatever the test

    # -- the repository ------------------------------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Rewrite invoke.yaml's ``k8s`` environment with changes, commit, and move the release tag."""
        self.environment.update(changes)
        config = {
            "pipeline": {
                "checklist": {"changelog_unreleased_ok": True},
                "environments": {ENVIRONMENT: self.environment},
            }
        }
        (self.project.work / "invoke.yaml").write_text(json.dumps(config, indent=2) + "\n")
        if self.project.git("status", "--porcelain"):
            self.project.git("add", "-A")
            self.project.git("commit", "-q", "-m", "chore: configure the deploy")
            version = (self.project.work / "VERSION").read_text().strip()
            self.project.git("tag", "-f", "-a", f"v{version}", "-m", f"Release v{version}")

    def release(self, version: str, *changes: str, push: bool = True) -> str:
        """A release of the app (``variant.sh`` changes, and ``hook slow``), its image built and pushed."""
        changes_left = list(changes)
        hook = self.project.work / "chart" / "templates" / "slow-hook.yaml"
        if "hook" in changes_left:
            at = changes_left.index("hook")
            del changes_left[at : at + 2]
            hook.write_text(SLOW_HOOK)
        elif hook.exists():
            hook.unlink()
        commit = self.project.release(version, *changes_left)
        if push:
            self.project.build_and_push(version, self.image)
        return commit

    def invoke(self, *args: str) -> Run:
        """``invoke`` in the repository, with this project's helm homes and kubeconfig."""
        return self.project.invoke(*args, env=self.helm_env)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``invoke`` in the background, in a process group of its own (the caller waits for it)."""
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args], cwd=self.project.work,
            env=self.project.env(self.helm_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip

    def kill(self, process: subprocess.Popen[str]) -> None:
        """SIGKILL the run and everything it started (its process group), as a CI runner does."""
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)

    # -- what a user checks ---------------------------------------------------------------------------

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real helm against the fake cluster, in this project's namespace."""
        return subprocess.run(
            [str(self.helm_binary), *args, "--namespace", self.namespace], capture_output=True, text=True,
            timeout=60, env={**os.environ, **self.helm_env},
        )  # fmt: skip

    def history(self) -> list[dict[str, Any]]:
        """``helm history -o json`` ([] before the first install)."""
        done = self.helm("history", RELEASE, "-o", "json")
        if done.returncode and "not found" in done.stderr:
            return []
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def pods(self) -> list[dict[str, Any]]:
        """The release's pods (not the migration Jobs'), not being deleted."""
        return [
            p for p in self.cluster.objects("v1", "pods", self.namespace)
            if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == RELEASE
            and not p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip

    def images(self) -> set[str]:
        """The image tags the release's pods run, once the rollout settled (old pods gone)."""
        wait_for(lambda: len({_tag(p) for p in self.pods()}) <= 1, 60)
        return {_tag(p) for p in self.pods()}

    def jobs(self) -> list[dict[str, Any]]:
        """Every Job in the namespace."""
        return list(self.cluster.objects("batch/v1", "jobs", self.namespace))

    def ledger(self) -> list[dict[str, Any]]:
        """The pipeline's ledger beside the release."""
        found = self.cluster.get("v1", "configmaps", self.namespace, f"{RELEASE}.pipeline-ledger")
        text = (found or {}).get("data", {}).get("journal.jsonl", "")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def lease(self) -> dict[str, Any] | None:
        """The deploy lock, when held."""
        found: dict[str, Any] | None = self.cluster.get(
            "coordination.k8s.io/v1", "leases", self.namespace, f"{RELEASE}.pipeline-lock"
        )
        return found

    def revision(self) -> str | None:
        """The alembic revision of the database, from PostgreSQL itself."""
        return self.project.revision()

    def columns(self, table: str) -> list[str]:
        """A table's columns in the database."""
        return self.project.columns(table)

    def close(self) -> None:
        """Remove what the test left running in its namespace (its pods cost CPU to the next tests)."""
        self.project.webhook.close()
        self.helm("uninstall", RELEASE, "--wait=false" if "4" in str(self.helm_binary) else "--no-hooks")
        for job in self.jobs():
            _delete(
                self.cluster.url, f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{job['metadata']['name']}"
            )
        for pod in self.cluster.objects("v1", "pods", self.namespace):
            _delete(self.cluster.url, f"/api/v1/namespaces/{self.namespace}/pods/{pod['metadata']['name']}")


def _tag(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["image"]).rsplit(":", 1)[1]


def _delete(base: str, path: str) -> None:
    body = json.dumps({"propagationPolicy": "Background"}).encode()
    request = urllib.request.Request(base + path, data=body, method="DELETE",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=10).close()


def helm_environment(sandbox: dict[str, Any], namespace: str, helm: Path, kubeconfig: Path) -> dict[str, Any]:
    """The ``k8s`` environment: the example chart from the repository, migrations as Jobs, the
    health check through the API server's service proxy."""
    return {
        "target": "helm",
        "release": RELEASE,
        "namespace": namespace,
        "create_namespace": True,
        "chart": "chart",
        "values": ["deploy/sandbox.yaml"],
        "kubeconfig": str(kubeconfig),
        "helm": str(helm),
        "migrate": {
            "command": "python3 -m alembic upgrade head",
            "current": "python3 -m alembic current",
            "downgrade": "python3 -m alembic downgrade {revision}",
            "heads": "python3 -m alembic heads",
        },
        "health": [
            {
                "service": f"{RELEASE}:http",
                "path": "/health",
                "expect_version": True,
                "interval": 0.5,
                "attempts": 20,
            }
        ],
        "deadlines": {"health": 120, "migrate": 120, "deploy": 120, "restore": 120},
        "notify": [{"webhook": {"url_env": "DEPLOY_WEBHOOK"}}],
    }


def make_helm_project(sandbox: dict[str, Any], cluster: Any, directory: Path, version: str) -> HelmProject:
    """Release 1.0.0 of the example app with its chart, its image pushed, configured for helm ``version``
    in a namespace of its own; the database empty."""
    psql(sandbox, RESET_SCHEMA)
    project = make_project(sandbox, directory)
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    helm = HelmProject(project, cluster, namespace, version, directory)
    values = {
        "replicaCount": 1,
        "image": {"repository": f"{sandbox['registry']}/{helm.image}", "pullPolicy": "IfNotPresent"},
        "database": {"url": sandbox["db_url"]},
    }
    (project.work / "deploy").mkdir(exist_ok=True)
    (project.work / "deploy" / "sandbox.yaml").write_text(json.dumps(values, indent=2) + "\n")
    helm.environment = helm_environment(sandbox, namespace, helm.helm_binary, helm.kubeconfig)
    helm.configure()
    project.git("push", "-q", "-f", "origin", "HEAD:main", "v1.0.0")
    project.build_and_push("1.0.0", helm.image)
    return helm

"""The example app deploying with real helm to a cluster, whichever cluster: what the scenarios drive.

A ``HelmProject`` is the team's repository (``apprepo.Repository``: git, releases, ``invoke``), the
release's namespace, the helm binary it uses, and what a user checks: ``helm history``, the images the
pods run, the ledger, the lock, the database revision. What depends on the cluster is left to a subclass:
where images go (``build``), how the database is queried (``sql``), what is cleaned up (``close``); the
cluster's objects are read through ``cluster`` (``ClusterReads``).

``tests/e2e/helmlib.py`` is the fake cluster's (``tests/kubefake``), ``tests/kind/kindlib.py`` a real one's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from apprepo import Repository, Run

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


class ClusterReads(Protocol):
    """Objects as the API server serves them (JSON dicts), by group/version and plural."""

    def objects(self, group_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind in the namespace."""
        ...

    def get(self, group_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None."""
        ...


class HelmProject:
    """The repository, its namespace and its helm; see the module docstring."""

    def __init__(
        self, repository: Repository, cluster: ClusterReads, namespace: str, helm_binary: Path,
        kubeconfig: Path, home: Path,
    ) -> None:  # fmt: skip
        self.repository = repository
        self.cluster = cluster
        self.namespace = namespace
        self.helm_binary = helm_binary
        self.kubeconfig = kubeconfig
        self.helm_env = {
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
            "KUBECONFIG": str(kubeconfig),
        }
        self.environment: dict[str, Any] = {}
        self.image = f"e2e/{namespace}"  # a repository per test: a tag means one image, whatever the test

    # -- what depends on the cluster ------------------------------------------------------------------

    def build(self, version: str) -> None:
        """Make the release's image ``{image}:{version}`` available to the cluster."""
        raise NotImplementedError

    def sql(self, query: str) -> list[str]:
        """Rows of ``query`` in the app's database ([] when a table it names does not exist)."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove what the test left running (its pods cost CPU to the next tests)."""
        self.repository.webhook.close()

    # -- the repository ------------------------------------------------------------------------

    def setup(self, values_file: str, values: dict[str, Any]) -> None:
        """Release 1.0.0 configured for this namespace, with ``values`` in ``deploy/{values_file}``,
        pushed with its tag, its image built."""
        work = self.repository.work
        (work / "deploy").mkdir(exist_ok=True)
        (work / "deploy" / values_file).write_text(json.dumps(values, indent=2) + "\n")
        self.environment = helm_environment(self.namespace, self.helm_binary, self.kubeconfig, values_file)
        self.configure()  # commits everything, tagged v1.0.0
        self.repository.git("push", "-q", "origin", "HEAD:main", "v1.0.0")
        self.build("1.0.0")

    def configure(self, **changes: Any) -> None:
        """Rewrite invoke.yaml's ``k8s`` environment with changes, commit, and move the release tag."""
        self.environment.update(changes)
        config = {
            "pipeline": {
                "checklist": {"changelog_unreleased_ok": True},
                "environments": {ENVIRONMENT: self.environment},
            }
        }
        (self.repository.work / "invoke.yaml").write_text(json.dumps(config, indent=2) + "\n")
        if self.repository.git("status", "--porcelain"):
            self.repository.git("add", "-A")
            self.repository.git("commit", "-q", "-m", "chore: configure the deploy")
            version = (self.repository.work / "VERSION").read_text().strip()
            self.repository.git("tag", "-f", "-a", f"v{version}", "-m", f"Release v{version}")

    def release(self, version: str, *changes: str, push: bool = True) -> str:
        """A release of the app (``variant.sh`` changes, and ``hook slow``); with ``push``, its image built
        and made available to the cluster (without, the image does not exist anywhere)."""
        changes_left = list(changes)
        hook = self.repository.work / "chart" / "templates" / "slow-hook.yaml"
        if "hook" in changes_left:
            at = changes_left.index("hook")
            del changes_left[at : at + 2]
            hook.write_text(SLOW_HOOK)
        elif hook.exists():
            hook.unlink()
        commit = self.repository.release(version, *changes_left)
        if push:
            self.build(version)
        return commit

    def invoke(self, *args: str) -> Run:
        """``invoke`` in the repository, with this project's helm homes and kubeconfig."""
        return self.repository.invoke(*args, env=self.helm_env)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``invoke`` in the background, in a process group of its own (the caller waits for it)."""
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args], cwd=self.repository.work,
            env=self.repository.env(self.helm_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip

    def kill(self, process: subprocess.Popen[str]) -> None:
        """SIGKILL the run and everything it started (its process group), as a CI runner does."""
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)

    # -- what a user checks ---------------------------------------------------------------------------

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real helm against the cluster, in this project's namespace."""
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
        return self.cluster.get(
            "coordination.k8s.io/v1", "leases", self.namespace, f"{RELEASE}.pipeline-lock"
        )

    def revision(self) -> str | None:
        """The alembic revision of the database, from PostgreSQL itself."""
        rows = self.sql("SELECT version_num FROM alembic_version")
        return rows[0] if rows else None

    def columns(self, table: str) -> list[str]:
        """A table's columns (sorted; [] when it does not exist) in the database."""
        return sorted(
            self.sql(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'")
        )


def _tag(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["image"]).rsplit(":", 1)[1]


LOCK_LEASE = 4  # seconds: a killed run's lock is found interrupted that soon after (30 by default)


def helm_environment(namespace: str, helm: Path, kubeconfig: Path, values_file: str) -> dict[str, Any]:
    """The ``k8s`` environment: the example chart from the repository with ``deploy/{values_file}``,
    migrations as Jobs, the health check through the API server's service proxy."""
    return {
        "target": "helm",
        "release": RELEASE,
        "namespace": namespace,
        "create_namespace": True,
        "chart": "chart",
        "values": [f"deploy/{values_file}"],
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
        "lock_lease": LOCK_LEASE,
        "notify": [{"webhook": {"url_env": "DEPLOY_WEBHOOK"}}],
    }

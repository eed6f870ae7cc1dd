"""Helm commands as argv (pure), and parsers of what helm prints.

Never ``--atomic``/``--rollback-on-failure`` and never ``--wait``: they share one timeout with the
rollback and destroy the evidence (helm/helm #8675, #13121). The engine owns the order, the readiness
watch is ours (``pipeline.rollout``), and a rollback names the revision the ledger recorded as healthy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.helmconfig import HelmEnvironment

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
DESCRIPTION_PREFIX = "invoke-pipeline"


@dataclass(frozen=True)
class HelmRevision:
    """One revision of a release, as ``helm history -o json`` lists it."""

    revision: int
    status: str
    chart: str = ""
    app_version: str = ""
    updated: str = ""
    description: str = ""

    @property
    def pending(self) -> bool:
        """Whether an operation on the release never finished (helm refuses the next one)."""
        return self.status in PENDING


@dataclass(frozen=True)
class Helm:
    """The helm binary and where it points: every command of one environment."""

    binary: str
    release: str
    namespace: str
    kube_context: str = ""
    kubeconfig: str = ""

    @classmethod
    def of(cls, env: HelmEnvironment, kubeconfig: str) -> Helm:
        """The commands of an environment (``kubeconfig``: the file found for it)."""
        return cls(env.helm, env.release, env.namespace, env.kube_context, kubeconfig)

    def _global(self) -> list[str]:
        flags = ["--namespace", self.namespace]
        if self.kube_context:
            flags += ["--kube-context", self.kube_context]
        if self.kubeconfig:
            flags += ["--kubeconfig", self.kubeconfig]
        return flags

    def upgrade(
        self,
        chart: str,
        version: str,
        env: HelmEnvironment,
        values: Sequence[str],
        description: str,
        timeout: float,
    ) -> tuple[str, ...]:
        """``helm upgrade --install`` of ``chart`` with the version set at ``env.version_key``.

        ``timeout`` only bounds hooks (nothing waits for readiness here); our own deadline is on top.
        """
        argv = [self.binary, "upgrade", self.release, chart, "--install", *self._global()]
        if env.create_namespace:
            argv.append("--create-namespace")
        if env.chart_version:
            argv += ["--version", env.chart_version]
        if env.repository:
            argv += ["--repo", env.repository]
        for path in values:
            argv += ["--values", path]
        argv += [
            "--set-string", f"{env.version_key}={version}",
            "--history-max", str(env.history_max),
            "--timeout", f"{max(1, int(timeout))}s",
            "--description", description,
        ]  # fmt: skip
        return tuple(argv)

    def rollback(self, revision: int | str, history_max: int, timeout: float) -> tuple[str, ...]:
        """``helm rollback RELEASE REVISION``: a named revision, never the bare "previous"."""
        return (
            self.binary, "rollback", self.release, str(revision), *self._global(),
            "--history-max", str(history_max), "--timeout", f"{max(1, int(timeout))}s",
        )  # fmt: skip

    def history(self, limit: int = 256) -> tuple[str, ...]:
        """``helm history -o json``: every revision helm keeps."""
        return (self.binary, "history", self.release, *self._global(), "--max", str(limit), "-o", "json")

    def manifest(self, revision: int) -> tuple[str, ...]:
        """``helm get manifest``: what a revision rendered."""
        return (self.binary, "get", "manifest", self.release, *self._global(), "--revision", str(revision))

    def uninstall(self) -> tuple[str, ...]:
        """``helm uninstall``, for the message that tells a person how to remove a failed first install."""
        return (self.binary, "uninstall", self.release, *self._global())


def description(run: str, version: str, operation: str = "deploy") -> str:
    """The revision's description: which run of ours made it (how a killed run's revision is found)."""
    return f"{DESCRIPTION_PREFIX} {operation} {version} run {run}"


def run_of(revision: HelmRevision) -> str:
    """The run id in a description written by ``description`` (empty for a revision not ours)."""
    words = revision.description.split()
    if len(words) == 5 and words[0] == DESCRIPTION_PREFIX and words[3] == "run":
        return words[4]
    return ""


def not_found(output: str) -> bool:
    """Whether helm said the release does not exist (a first install).

    Only helm's own words (``Error: release: not found``, helm 3 and 4): "not found" alone is also what
    an unreachable cluster says (``executable ... not found``, a proxy's ``404 page not found``).
    """
    return "release: not found" in output.lower()


def parse_history(text: str) -> list[HelmRevision]:
    """``helm history -o json`` as revisions, oldest first; an unexpected shape is a ValueError."""
    data: Any = json.loads(text or "[]")
    if not isinstance(data, list):
        raise ValueError("helm history did not print a JSON list")
    revisions = []
    for item in data:
        number = item.get("revision") if isinstance(item, dict) else None
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError("helm history printed an entry without a revision number")
        revisions.append(
            HelmRevision(
                revision=item["revision"],
                status=str(item.get("status", "")),
                chart=str(item.get("chart", "")),
                app_version=str(item.get("app_version", "")),
                updated=str(item.get("updated", "")),
                description=str(item.get("description", "")),
            )
        )
    return sorted(revisions, key=lambda r: r.revision)


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


@dataclass(frozen=True)
class Workload:
    """A workload a release renders: what the readiness watch follows."""

    kind: str
    name: str
    namespace: str
    template: dict[str, Any]  # the pod template as rendered

    @property
    def label(self) -> str:
        """``Deployment/api``."""
        return f"{self.kind}/{self.name}"


def workloads(manifest: str, namespace: str) -> list[Workload]:
    """The Deployments, StatefulSets, DaemonSets and Jobs in a rendered manifest, in order."""
    import yaml

    found = []
    for doc in yaml.safe_load_all(manifest):
        if not isinstance(doc, dict) or doc.get("kind") not in WORKLOAD_KINDS:
            continue
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        found.append(
            Workload(
                kind=str(doc["kind"]),
                name=str(meta.get("name", "")),
                namespace=str(meta.get("namespace") or namespace),
                template=dict(spec.get("template") or {}),
            )
        )
    return found

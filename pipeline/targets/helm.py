"""The Helm target: the unit is a release in a namespace, reached with helm and the Kubernetes API.

Deploy is ``helm upgrade --install`` without ``--wait``/``--atomic``; readiness is our own watch of the
release's workloads, failing fast on pod states that will not heal; migrations are Jobs made from the
new release's workload; a rollback is ``helm rollback`` to the revision the ledger recorded healthy. The
ledger (a ConfigMap) and the lock (a Lease) live beside the release (``pipeline.targets.kubestate``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pipeline.compose import shell_command
from pipeline.engine.cancel import Call
from pipeline.engine.values import LockInfo, Policy, Release, UnitState
from pipeline.errors import ConfigError, InputError, StageError
from pipeline.executor import Executor
from pipeline.health import Sleep
from pipeline.helm import HelmRevision, description
from pipeline.helmconfig import HelmEnvironment
from pipeline.http import HttpClient
from pipeline.journal import HEALTHY, RESTORED, ROLLED_BACK, Entry
from pipeline.kube import Kube, KubeError, kubeconfig_path
from pipeline.rollout import pod_rows
from pipeline.secrets import Redactor
from pipeline.targets import kubestate
from pipeline.targets.helmbackup import HelmBackups
from pipeline.targets.helmhealth import HelmHealth
from pipeline.targets.helmmigrate import HelmMigrations


def policy_of(env: HelmEnvironment) -> Policy:
    """The engine's policy: one unit, its database shared when migrations are configured."""
    return Policy("parallel", 1, 0, "none" if env.migrate is None else "shared", env.deadlines)


class HelmTarget(HelmHealth, HelmMigrations, HelmBackups):
    """A Helm release in a namespace; see ``pipeline.targets.base.Target``."""

    kind = "helm"

    @classmethod
    @contextmanager
    def connect(
        cls,
        env: HelmEnvironment,
        executor: Executor,
        http: HttpClient,
        sleep: Sleep = time.sleep,
        redactor: Redactor | None = None,
        key: str = "pipeline.environments.<env>",
    ) -> Iterator[HelmTarget]:
        """The release's target, once helm and the kubeconfig are found (else exit 2, nothing touched)."""
        if shutil.which(env.helm) is None:
            raise ConfigError(f"{key}.helm: {env.helm!r} is not installed (not found on PATH)")
        kubeconfig = kubeconfig_path(env.kubeconfig, os.environ)
        kube = Kube.connect(kubeconfig, env.kube_context, env.namespace, key)
        target = None
        try:
            target = cls(env, kube, executor, http, kubeconfig, sleep, redactor)
            yield target
        finally:
            if target is not None:
                target.stop_heartbeat()
            kube.close()

    def stop_heartbeat(self) -> None:
        """Stop renewing the lease this run holds, if it holds one."""
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    # -- reading and locking -------------------------------------------------------------------------

    def units(self) -> list[str]:
        """The one release."""
        return [self.name]

    def databases(self) -> list[str]:
        """The release, when it has migrations."""
        return [self.name] if self.env.migrate is not None else []

    def read(self, units: Sequence[str], seconds: float) -> list[UnitState]:
        """Ledger, lock, helm history and pods (read-only); see ``_read``."""
        with self.clock.busy():
            return self._read(units, seconds)

    def _read(self, units: Sequence[str], seconds: float) -> list[UnitState]:
        """Ledger, lock, helm history and pods: read-only. A release stuck in ``pending-*`` that no
        run of ours holds shows as a lock held by someone else (nothing may deploy over it)."""
        release = self.env.release
        try:
            entries, damaged, cut, why = kubestate.read_ledger(self.kube, release, seconds)
            lock = kubestate.read_lock(self.kube, release, seconds)
            pods = self.kube.select("pod", seconds, selector=f"app.kubernetes.io/instance={release}")
        except KubeError as exc:
            raise InputError(
                self.redactor.redact(f"{self.name}: the cluster cannot be read: {exc}")
            ) from None
        history = self.history(seconds)
        latest = history[-1] if history else None
        if latest is not None and latest.pending and lock is None:
            lock = LockInfo(
                who="someone outside this pipeline (helm)", at=latest.updated[:19].replace(" ", "T") + "Z",
                version=latest.app_version or "?",
                operation=f"helm {latest.status} at revision {latest.revision}",
            )  # fmt: skip
        state = UnitState(self.name, entries, lock, None, why, damaged, cut)
        serving = state.serving
        if serving and latest and serving.revision == str(latest.revision):
            state.commit = serving.commit
        state.facts = _facts(latest, history, pods)
        return [state]

    def lock(self, unit: str, info: LockInfo, call: Call, take_over: str = "") -> LockInfo | None:
        """Create the Lease with its holder, renewed while the run goes on; the holder found when held."""
        with self.clock.busy():
            holder = self._lock(unit, info, call, take_over)
        if holder is None:
            self.heartbeat = kubestate.Heartbeat(self.kube, self.env.release, info.run, self.env.lock_lease)
            if take_over:
                self._stop_jobs_of(take_over, call)
        return holder

    def _stop_jobs_of(self, run: str, call: Call) -> None:
        """Delete the Jobs a killed run left running (a migration may go on in its pod): the run that
        takes its lock over reads and moves the database next, and must be alone doing so."""
        try:
            jobs = self.kube.select("job", call.timeout(), selector=f"invoke-pipeline/run={run}")
            for job in jobs:
                if (job.get("status") or {}).get("active"):
                    self.kube.delete("job", str(job["metadata"]["name"]), call.timeout())
        except KubeError as exc:
            raise self._api("lock", f"the Jobs left by run {run} cannot be stopped", exc) from None

    def _lock(self, unit: str, info: LockInfo, call: Call, take_over: str = "") -> LockInfo | None:
        """Create the Lease with its holder; the holder found when it is held."""
        self.run = info.run
        try:
            return kubestate.take_lock(
                self.kube, self.env.release, info, call.timeout(), take_over, self.env.lock_lease
            )
        except KubeError as exc:
            if exc.code == 404 and self.env.create_namespace:
                self.kube.create_namespace(call.timeout())
                return kubestate.take_lock(
                    self.kube, self.env.release, info, call.timeout(), take_over, self.env.lock_lease
                )
            if exc.code == 404:
                raise StageError("lock", f"the namespace {self.env.namespace} does not exist "
                                 "(create it, or set create_namespace: true)", unit) from None  # fmt: skip
            raise self._api("lock", "the Lease cannot be created", exc) from None

    def unlock(self, unit: str, call: Call) -> None:
        """Stop renewing the Lease, and delete it."""
        self.stop_heartbeat()
        with self.clock.busy():
            self._unlock(unit, call)

    def _unlock(self, unit: str, call: Call) -> None:
        """Delete the Lease."""
        try:
            kubestate.drop_lock(self.kube, self.env.release, call.timeout())
        except KubeError as exc:
            raise self._api("lock", "the Lease cannot be deleted", exc) from None

    def record(self, unit: str, entries: Sequence[Entry], call: Call) -> None:
        """Append to the ledger, each line with the helm revision that serves its version."""
        with self.clock.busy():
            self._record(unit, entries, call)

    def _record(self, unit: str, entries: Sequence[Entry], call: Call) -> None:
        """Append to the ledger, each line with the helm revision that serves its version."""
        filled = [
            replace(e, revision=str(self.revisions[e.version]))
            if not e.revision and e.version in self.revisions and e.result in (HEALTHY, RESTORED, ROLLED_BACK)
            else e
            for e in entries
        ]  # fmt: skip
        lines = "".join(self.redactor.redact_data(e).line() for e in filled)
        try:
            kubestate.append_ledger(self.kube, self.env.release, lines, call.timeout())
        except KubeError as exc:
            raise self._api("record", "the ledger cannot be written", exc) from None

    # -- deploying ---------------------------------------------------------------------------------

    def chart_of(self, release: Release) -> tuple[str, list[str]]:
        """The chart and values files of a release: from its own files (as of its commit)."""
        base = release.files or "<release files>"
        values = [f"{base}/{path}" for path in self.env.values]
        return (f"{base}/{self.env.chart}" if self.env.local_chart else self.env.chart), values

    def upgrade_argv(self, release: Release, seconds: float) -> tuple[str, ...]:
        """The ``helm upgrade --install`` of a release."""
        chart, values = self.chart_of(release)
        text = description(self.run or "dry-run", release.version)
        return self.helm.upgrade(chart, release.version, self.env, values, text, seconds)

    def deploy(self, unit: str, release: Release, call: Call) -> None:
        """``helm upgrade --install``; the revision it made is remembered for the ledger."""
        try:
            self._helm(self.upgrade_argv(release, call.remaining()), call, changing=True)
        finally:
            self._remember(release.version, call)

    def _remember(self, version: str, call: Call) -> None:
        """The newest revision made by this run, as the revision serving ``version``."""
        try:
            history = self.history_now(call)
        except InputError:
            return
        mine = [r for r in history if self.run and self.run in r.description.split()]
        if mine:
            self.revisions[version] = mine[-1].revision

    def restore(self, unit: str, previous: Entry | None, release: Release, call: Call) -> str | None:
        """``helm rollback`` to the revision the ledger recorded healthy; a failed first install stays."""
        if previous is None:
            return (
                f"the first install of {release.version} failed and is kept for inspection "
                f"(`{shlex.join(self.helm.uninstall())}` removes it)"
            )
        revision = self._recorded_revision(previous, call)
        self._helm(self.helm.rollback(revision, self.env.history_max, call.remaining()), call, changing=True)
        history = self.history_now(call)
        if history:
            self.revisions[previous.version] = history[-1].revision
        return f"helm rollback to revision {revision} ({previous.version})"

    def _recorded_revision(self, previous: Entry, call: Call) -> int:
        """The helm revision the ledger recorded for ``previous`` (older ledgers: found in helm's history)."""
        if previous.revision:
            return int(previous.revision)
        history = self.history_now(call)
        named = [r for r in history if previous.version in r.description.split() and not r.pending]
        if not named:
            raise StageError(
                "restore", f"the ledger records no helm revision for {previous.version}", self.name
            )
        return named[-1].revision

    # -- the plan ----------------------------------------------------------------------------------------

    def describe(
        self, unit: str, operation: str, release: Release, previous: Entry | None = None, revision: str = ""
    ) -> list[str]:
        """What an operation would do on the release, as ``--dry-run`` prints it."""
        ns, rel = self.env.namespace, self.env.release
        migrate = self.env.migrate
        if operation == "lock":
            return [f"  lock     [{unit}] create Lease {ns}/{kubestate.lock_name(rel)} holding this run"]
        if operation == "deploy":
            return [
                f"  deploy   [{unit}] {shlex.join(self.upgrade_argv(release, self.env.deadlines.deploy))}"
            ]
        if operation in ("migrate", "downgrade") and migrate is not None:
            source = migrate.workload or "the release's first Deployment"
            keys = ["current", "command", "current", "heads"] if operation == "migrate" else ["downgrade"]
            argvs = [shell_command(getattr(migrate, k), revision) for k in keys]
            return [f"  {operation:<8} [{unit}] Job from {source}: {shlex.join(a)}" for a in argvs]
        if operation == "health":
            checks = [
                f"http {c.http}" if c.http else f"http service {c.service}{c.path}" for c in self.env.health
            ]
            watched = "rollout of every Deployment, StatefulSet, DaemonSet and Job of the release"
            return [f"  health   [{unit}] {watched}"] + [f"  health   [{unit}] {c}" for c in checks]
        if operation == "record":
            return [
                f"  record   [{unit}] append to ConfigMap {ns}/{kubestate.ledger_name(rel)}; delete the Lease"
            ]
        if operation == "restore":
            if previous is None:
                return [f"  restore  [{unit}] nothing: a failed first install is kept for inspection"]
            target = previous.revision or f"<revision of {previous.version}>"
            argv = self.helm.rollback(
                int(target) if target.isdigit() else 0, self.env.history_max, self.env.deadlines.restore
            )
            text = (
                shlex.join(argv).replace(" 0 ", f" {target} ", 1)
                if not target.isdigit()
                else shlex.join(argv)
            )
            return [f"  restore  [{unit}] {text}"]
        return []


def _facts(
    latest: HelmRevision | None, history: Sequence[HelmRevision], pods: list[dict[str, Any]]
) -> dict[str, Any]:
    """What ``status`` and ``history`` show besides the ledger: helm's view and the pods."""
    return {
        "helm": None if latest is None else {
            "revision": latest.revision, "status": latest.status, "chart": latest.chart,
            "app_version": latest.app_version, "updated": latest.updated,
        },
        "helm_history": [
            {"revision": r.revision, "status": r.status, "chart": r.chart, "app_version": r.app_version,
             "updated": r.updated, "description": r.description}
            for r in history
        ],
        "pods": pod_rows(pods),
    }  # fmt: skip

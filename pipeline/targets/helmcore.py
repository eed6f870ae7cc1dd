"""What every part of the Helm target shares: helm under a deadline, helm's history, the newest
revision's manifest and its workloads as the API server has them now."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pipeline.engine.cancel import Call
from pipeline.errors import Cancelled, DeadlineExceeded, InputError, StageError
from pipeline.executor import TIMED_OUT, Command, Executor, Result
from pipeline.health import Sleep
from pipeline.helm import Helm, HelmRevision, not_found, parse_history, workloads
from pipeline.helmconfig import HelmEnvironment
from pipeline.http import HttpClient
from pipeline.kube import Kube, KubeError
from pipeline.rollout import Verdict, owned_pods
from pipeline.secrets import Redactor, redactor_for
from pipeline.targets import kubestate
from pipeline.targets.busy import BusyClock

POLL = 0.5  # seconds between two looks at a rollout, a Job or a pod
LOG_LINES = 200  # the tail of a container's log kept as evidence, as `kubectl logs --tail=200`
Rollout = list[tuple[str, dict[str, Any], list[dict[str, Any]]]]


class HelmCore:
    """The release's helm, cluster and redactor, and what this run learnt (revisions, the verdict)."""

    def __init__(
        self,
        env: HelmEnvironment,
        kube: Kube,
        executor: Executor,
        http: HttpClient,
        kubeconfig: str = "",
        sleep: Sleep = time.sleep,
        redactor: Redactor | None = None,
    ) -> None:
        self.env = env
        self.kube = kube
        self.executor = executor
        self.http = http
        self.sleep = sleep
        self.redactor = redactor if redactor is not None else redactor_for(env, os.environ)
        self.helm = Helm.of(env, kubeconfig)
        self.name = f"{env.namespace}/{env.release}"
        self.run = ""
        self.revisions: dict[str, int] = {}  # version -> the helm revision this run saw serve it
        self.verdict: Verdict | None = None  # the last rollout that failed, for the evidence
        self.manifests: dict[int, str] = {}
        self.newest: int | None = None  # the newest revision, as last read: only helm commands change it
        self.clock = BusyClock()
        self.heartbeat: kubestate.Heartbeat | None = None  # renews the lease while this run holds it

    # -- running -----------------------------------------------------------------------------------

    def spent(self) -> float:
        """Seconds spent in helm, in the API server's answers and waiting for the cluster (the rollout,
        a Job, a pod): the rest of a run's time is the pipeline's own."""
        return self.clock.spent()

    def _helm(self, argv: Sequence[str], call: Call, changing: bool = False, stage: str = "") -> Result:
        """A helm command under the call's deadline; StageError with its last words when it fails."""
        if changing:
            call.changing()
            self.newest = None  # a helm command that changes the release makes a revision
        with self.clock.busy():
            result = self.executor.run(Command(tuple(argv), timeout=call.timeout(), interrupt=call.interrupt))
        redact = self.redactor.redact
        result = replace(result, stdout=redact(result.stdout), stderr=redact(result.stderr))
        if result.interrupted:
            raise Cancelled(str(call.cancel.reason or "interrupted"))
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-50:])
        if result.returncode == TIMED_OUT:
            message = (
                f"{call.stage} on {self.name} passed its deadline of {call.seconds:g} s: {shlex.join(argv)}"
            )
            raise DeadlineExceeded(call.stage, redact(message), self.name, tail)
        if not result.ok:
            words = (result.stderr or result.stdout).strip().splitlines()[-3:]
            message = f"[{self.name}] {shlex.join(argv)} exited {result.returncode}: {' / '.join(words)}"
            raise StageError(stage or call.stage, redact(message), self.name, tail)
        return result

    def _api(self, stage: str, what: str, error: KubeError) -> StageError:
        return StageError(stage, self.redactor.redact(f"[{self.name}] {what}: {error}"), self.name)

    def history(self, seconds: float) -> list[HelmRevision]:
        """Every revision helm keeps of the release ([] before the first install); the newest is kept."""
        with self.clock.busy():
            result = self.executor.run(Command(self.helm.history(), timeout=max(1.0, seconds)))
        if not result.ok:
            if not_found(result.stderr + result.stdout):
                return []
            words = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no answer"]
            raise InputError(self.redactor.redact(f"{self.name}: helm history failed: {words[0]}"))
        try:
            revisions = parse_history(result.stdout)
        except ValueError as exc:
            raise InputError(f"{self.name}: helm history printed what it should not: {exc}") from None
        self.newest = revisions[-1].revision if revisions else None
        return revisions

    def history_now(self, call: Call) -> list[HelmRevision]:
        """``history`` within what is left of a stage (30 s at most)."""
        return self.history(max(1.0, min(30.0, call.remaining() or 30.0)))

    def _manifest(self, call: Call) -> str:
        """What the newest revision rendered (the one being deployed, or rolled back to). History is
        read only when this target has not read it since its own last helm command."""
        if self.newest is None:
            self.history_now(call)
        revision = self.newest
        if revision is None:
            raise StageError(call.stage, f"{self.name} has no revision yet", self.name)
        if revision not in self.manifests:
            self.manifests[revision] = self._helm(self.helm.manifest(revision), call).stdout
        return self.manifests[revision]

    def _rollout(self, call: Call) -> Rollout:
        """Each workload the newest revision renders, as the API server has it now, with its newest pods."""
        found: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
        for workload in workloads(self._manifest(call), self.env.namespace):
            kind = workload.kind.lower()
            obj = self.kube.get(kind, workload.name, call.timeout())
            if obj is None:
                found.append((workload.kind, {"metadata": {"name": workload.name}, "status": {}}, []))
                continue
            labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            if workload.kind == "Job":
                selector = f"job-name={workload.name}"
            pods = self.kube.select("pod", call.timeout(), selector=selector) if selector else []
            sets = (
                self.kube.select("replicaset", call.timeout(), selector=selector)
                if kind == "deployment"
                else []
            )
            found.append((workload.kind, obj, owned_pods(obj, workload.kind, pods, sets)))
        return found

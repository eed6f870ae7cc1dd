"""The StatefulSet, DaemonSet and Job controllers of the fake.

StatefulSet: ordinal pods (OrderedReady or Parallel), one pod replaced at a time on a template change,
currentRevision/updateRevision. DaemonSet: one node, one pod. Job: parallelism, completions,
backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished; conditions SuccessCriteriaMet/Complete and
FailureTarget/Failed; a failed pod is retried after 1 s, 2 s, 4 s ... (capped at 10 s).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from .common import active, is_ready, template_hash
from .events import record
from .store import Store, now


class WorkloadControl:
    """Reconciles StatefulSets, DaemonSets and Jobs (mixed into ``Controllers``)."""

    store: Store
    job_backoff: dict[str, float]
    finished_at: dict[str, float]

    def create_pod(
        self, owner: dict[str, Any], template: dict[str, Any], labels: dict[str, str], name: str = ""
    ) -> None:
        raise NotImplementedError

    def delete_pod(self, pod: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_status(self, obj: dict[str, Any], plural: str, status: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ statefulset
    def statefulset(self, sts: dict[str, Any]) -> None:
        name, spec = sts["metadata"]["name"], sts["spec"]
        replicas = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec['template'])}"
        pods = {p["metadata"]["name"]: p for p in self.store.owned_by(sts, "v1", "pods")}
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        for i in range(replicas):
            pod = pods.get(f"{name}-{i}")
            if pod is None:
                self.create_pod(
                    sts,
                    spec["template"],
                    {
                        "controller-revision-hash": revision,
                        "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
                        "apps.kubernetes.io/pod-index": str(i),
                    },
                    f"{name}-{i}",
                )
                if ordered:
                    return
            elif ordered and not is_ready(pod):
                break
        extra = sorted(
            (p for n, p in pods.items() if int(n.rsplit("-", 1)[1]) >= replicas),
            key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1]),
        )
        if extra:
            self.delete_pod(extra[0])
        current = [p for n, p in pods.items() if int(n.rsplit("-", 1)[1]) < replicas]
        rev_of = lambda p: (p["metadata"].get("labels") or {}).get("controller-revision-hash")  # noqa: E731
        if len(current) == replicas and all(is_ready(p) for p in current) and not extra:
            stale = sorted(
                (p for p in current if rev_of(p) != revision),
                key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1]),
            )
            if stale:
                self.delete_pod(stale[0])
        updated = sum(1 for p in current if rev_of(p) == revision)
        ready_n = sum(1 for p in current if is_ready(p))
        previous = sts.get("status", {}).get("currentRevision") or (
            rev_of(current[0]) if current else revision
        )
        current_revision = revision if updated == replicas else previous
        status = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(current),
            "readyReplicas": ready_n,
            "availableReplicas": ready_n,
            "currentReplicas": sum(1 for p in current if rev_of(p) == current_revision),
            "updatedReplicas": updated,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        self.set_status(sts, "statefulsets", status)

    # ------------------------------------------------------------------------------------------ daemonset
    def daemonset(self, ds: dict[str, Any]) -> None:
        h = template_hash(ds["spec"]["template"])
        pods = [p for p in self.store.owned_by(ds, "v1", "pods")]
        if not pods:
            self.create_pod(
                ds,
                ds["spec"]["template"],
                {"controller-revision-hash": h, "pod-template-generation": str(ds["metadata"]["generation"])},
            )
        for pod in pods:
            if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != h or not active(pod):
                self.delete_pod(pod)
        updated = [
            p for p in pods if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == h
        ]
        ready_n = sum(1 for p in pods if is_ready(p))
        status = {
            "observedGeneration": ds["metadata"].get("generation", 1),
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": len(pods),
            "numberMisscheduled": 0,
            "numberReady": ready_n,
            "numberAvailable": ready_n,
            "numberUnavailable": max(0, 1 - ready_n),
            "updatedNumberScheduled": len(updated),
        }
        self.set_status(ds, "daemonsets", status)

    # ------------------------------------------------------------------------------------------ job
    def job(self, job: dict[str, Any]) -> None:
        spec, status = job["spec"], copy.deepcopy(job.get("status") or {})
        meta = job["metadata"]
        conditions = status.get("conditions") or []
        finished = next(
            (c for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None
        )
        if finished is not None:
            ttl = spec.get("ttlSecondsAfterFinished")
            done_at = self.finished_at.setdefault(meta["uid"], time.time())
            if ttl is not None and done_at + ttl <= time.time():
                self.store.delete("batch/v1", "jobs", meta["namespace"], meta["name"], "Background")
            return
        pods = self.store.owned_by(job, "v1", "pods")
        running = [p for p in pods if active(p)]
        succeeded = sum(1 for p in pods if p.get("status", {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if p.get("status", {}).get("phase") == "Failed")
        if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
            failed += sum(
                int(c.get("restartCount", 0))
                for p in pods
                for c in p.get("status", {}).get("containerStatuses") or []
            )
        status.setdefault("startTime", now())
        started = time.mktime(time.strptime(status["startTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        deadline = spec.get("activeDeadlineSeconds")
        verdict = None
        if succeeded >= int(spec.get("completions", 1)):
            verdict = (
                "Complete",
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        elif failed > int(spec.get("backoffLimit", 6)):
            verdict = (
                "Failed",
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif deadline is not None and time.time() - started > int(deadline):
            verdict = (
                "Failed",
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        if verdict is not None:
            final, interim, reason, message = verdict
            for pod in running:
                self.delete_pod(pod)
            stamp = now()
            status["conditions"] = [
                {
                    "type": interim,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": stamp,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": final,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ]
            if final == "Complete":
                status["completionTime"] = stamp
            record(
                self.store,
                job,
                final if final == "Complete" else reason,
                "Job completed" if final == "Complete" else message,
                "Normal" if final == "Complete" else "Warning",
            )
            running = []
        else:
            want = min(int(spec.get("parallelism", 1)), int(spec.get("completions", 1)) - succeeded) - len(
                running
            )
            wait_until = self.job_backoff.get(meta["uid"], 0.0)
            if want > 0 and time.monotonic() >= wait_until:
                for _ in range(want):
                    self.create_pod(job, spec["template"], {})
                self.job_backoff[meta["uid"]] = time.monotonic() + min(10.0, 2.0 ** max(0, failed - 1)) * (
                    failed > 0
                )
        status.update(
            {
                "active": len(running),
                "succeeded": succeeded,
                "failed": failed,
                "ready": sum(1 for p in running if is_ready(p)),
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
        )
        status = {k: v for k, v in status.items() if v not in (0, None) or k in ("ready", "terminating")}
        self.set_status(job, "jobs", status)
        if verdict is not None:
            self.finished_at[meta["uid"]] = time.time()

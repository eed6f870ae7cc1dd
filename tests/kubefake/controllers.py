"""Workload controllers and the scheduler of the fake: one thread, one reconcile pass every 0.3 s.

Deployment -> ReplicaSets (``pod-template-hash`` over the template without ``creationTimestamp: null``
and the hash label, so a rollback reuses the old ReplicaSet) -> Pods; RollingUpdate (maxSurge and
maxUnavailable, roughly as the real controller counts them) and Recreate; StatefulSet (ordinal pods,
OrderedReady or Parallel); DaemonSet (one node, one pod); Job (parallelism, completions, backoffLimit,
activeDeadlineSeconds, ttlSecondsAfterFinished). The scheduler only checks the pods' requests against
the node's capacity. Pods run in ``pods.Runtime`` when the cluster has a Docker engine.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import sys
import threading
import time
import traceback
from typing import Any

from .events import record
from .pods import Runtime, quantity
from .selectors import match_labels
from .store import ApiError, Store, now

HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NODE = "fake-node"
TICK = 0.3


def template_hash(template: dict[str, Any]) -> str:
    """The pod-template-hash of a template; equal templates (as a rollback restores them) hash equal."""
    tpl = copy.deepcopy(template)
    meta = tpl.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    labels = dict(meta.get("labels") or {})
    labels.pop("pod-template-hash", None)
    meta["labels"] = labels

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None and v != {} and v != []}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    digest = int(hashlib.sha256(json.dumps(clean(tpl), sort_keys=True).encode()).hexdigest(), 16)
    return "".join(HASH_ALPHABET[(digest >> (5 * i)) % len(HASH_ALPHABET)] for i in range(10))


def controller_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def active(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or []
    )


def scaled(value: Any, total: int, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return math.ceil(exact) if up else math.floor(exact)
    return int(value or 0)


def condition(old: list[dict[str, Any]], kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    """A condition that keeps its timestamps while status and reason stay the same."""
    stamp = now()
    previous = next((c for c in old if c.get("type") == kind), None)
    if previous and previous.get("status") == status and previous.get("reason") == reason:
        return {**previous, "message": message}
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }


class Controllers:
    """The reconcile loop (and the pod runtime when there is a Docker engine)."""

    def __init__(self, store: Store, docker_host: str | None, node_ip: str, capacity: dict[str, str]) -> None:
        self.store = store
        self.capacity = {k: quantity(v) for k, v in capacity.items()}
        self.runtime = Runtime(store, docker_host, node_ip) if docker_host else None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="kubefake-controllers", daemon=True)
        self.progress: dict[str, tuple[Any, float]] = {}
        self.job_backoff: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}

    def start(self) -> None:
        if self.runtime is not None:
            self.runtime.start()
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(30)
        if self.runtime is not None:
            self.runtime.stop()

    def loop(self) -> None:
        while not self.stopping.wait(TICK):
            try:
                self.tick()
            except ApiError:
                continue  # raced with a client write; the next pass sees the new state
            except Exception:
                traceback.print_exc(file=sys.stderr)

    def tick(self) -> None:
        for kind, reconcile in (
            ("deployments", self.deployment),
            ("replicasets", self.replicaset),
            ("statefulsets", self.statefulset),
            ("daemonsets", self.daemonset),
        ):
            for obj in self.store.list("apps/v1", kind)[0]:
                reconcile(obj)
        for job in self.store.list("batch/v1", "jobs")[0]:
            self.job(job)
        self.schedule()
        if self.runtime is not None:
            self.runtime.sync()

    # ------------------------------------------------------------------------------------------ helpers
    def create_pod(
        self, owner: dict[str, Any], template: dict[str, Any], labels: dict[str, str], name: str = ""
    ) -> None:
        meta = copy.deepcopy(template.get("metadata") or {})
        meta.pop("creationTimestamp", None)
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        meta["ownerReferences"] = [controller_ref(owner)]
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = owner["metadata"]["name"] + "-"
        pod = self.store.create(
            "v1",
            "pods",
            owner["metadata"]["namespace"],
            {"metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})},
        )
        record(self.store, owner, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    def delete_pod(self, pod: dict[str, Any]) -> None:
        with contextlib.suppress(ApiError):
            self.store.delete("v1", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def set_status(self, obj: dict[str, Any], plural: str, status: dict[str, Any]) -> None:
        gv = obj["apiVersion"]
        meta = obj["metadata"]
        if obj.get("status") != status:
            self.store.update(
                gv,
                plural,
                meta["namespace"],
                meta["name"],
                lambda o: o.__setitem__("status", status),
                status=True,
            )

    def scale(self, rs: dict[str, Any], replicas: int) -> None:
        if rs["spec"].get("replicas", 1) != replicas:
            self.store.update(
                "apps/v1",
                "replicasets",
                rs["metadata"]["namespace"],
                rs["metadata"]["name"],
                lambda o: o["spec"].__setitem__("replicas", replicas),
            )

    # ------------------------------------------------------------------------------------------ deployment
    def deployment(self, d: dict[str, Any]) -> None:
        ns, name, spec = d["metadata"]["namespace"], d["metadata"]["name"], d["spec"]
        replicas = int(spec.get("replicas", 1))
        h = template_hash(spec["template"])
        owned = self.store.owned_by(d, "apps/v1", "replicasets")

        def revision(r):
            return int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))

        top = max((revision(r) for r in owned), default=0)
        new = next(
            (r for r in owned if (r["metadata"].get("labels") or {}).get("pod-template-hash") == h), None
        )
        if new is None:
            template = copy.deepcopy(spec["template"])
            template.setdefault("metadata", {})["labels"] = {
                **(template["metadata"].get("labels") or {}),
                "pod-template-hash": h,
            }
            template["metadata"].pop("creationTimestamp", None)
            selector = copy.deepcopy(spec.get("selector") or {})
            selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": h}
            first = 0 if owned else replicas
            self.store.create(
                "apps/v1",
                "replicasets",
                ns,
                {
                    "metadata": {
                        "name": f"{name}-{h}",
                        "labels": template["metadata"]["labels"],
                        "annotations": {
                            "deployment.kubernetes.io/revision": str(top + 1),
                            "deployment.kubernetes.io/desired-replicas": str(replicas),
                        },
                        "ownerReferences": [controller_ref(d)],
                    },
                    "spec": {
                        "replicas": first,
                        "minReadySeconds": spec.get("minReadySeconds", 0),
                        "selector": selector,
                        "template": template,
                    },
                },
            )
            record(self.store, d, "ScalingReplicaSet", f"Scaled up replica set {name}-{h} from 0 to {first}")
            return
        if revision(new) != top or sum(1 for r in owned if revision(r) == top) > 1:
            self.store.update(
                "apps/v1",
                "replicasets",
                ns,
                new["metadata"]["name"],
                lambda o: (
                    o["metadata"]
                    .setdefault("annotations", {})
                    .__setitem__("deployment.kubernetes.io/revision", str(top + 1))
                ),
            )
            return
        if (d["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") != str(top):
            self.store.update(
                "apps/v1",
                "deployments",
                ns,
                name,
                lambda o: (
                    o["metadata"]
                    .setdefault("annotations", {})
                    .__setitem__("deployment.kubernetes.io/revision", str(top))
                ),
            )
        old = [r for r in owned if r is not new]
        if spec["strategy"].get("type") == "Recreate":
            self.recreate(new, old, replicas)
        else:
            self.rolling(spec, new, old, replicas)
        self.deployment_status(d, new, old, replicas)

    def recreate(self, new: dict[str, Any], old: list[dict[str, Any]], replicas: int) -> None:
        for r in old:
            self.scale(r, 0)
        if not any(any(active(p) for p in self.store.owned_by(r, "v1", "pods")) for r in old):
            self.scale(new, replicas)

    def rolling(
        self, spec: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]], replicas: int
    ) -> None:
        rolling = spec["strategy"].get("rollingUpdate") or {}
        surge = scaled(rolling.get("maxSurge", "25%"), replicas, True)
        unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        total = sum(int(r["spec"].get("replicas", 0)) for r in [new, *old])
        current = int(new["spec"].get("replicas", 0))
        target = current
        if current < replicas:
            target = min(replicas, current + max(0, replicas + surge - total))
        elif current > replicas:
            target = replicas
        self.scale(new, target)
        ready = lambda r: int(r.get("status", {}).get("readyReplicas", 0))  # noqa: E731
        min_available = replicas - unavailable
        new_unavailable = max(0, target - ready(new))
        budget = total - min_available - new_unavailable
        counts = {r["metadata"]["name"]: int(r["spec"].get("replicas", 0)) for r in old}
        for r in old:
            unhealthy = max(0, counts[r["metadata"]["name"]] - ready(r))
            cut = min(unhealthy, max(0, budget))
            counts[r["metadata"]["name"]] -= cut
            budget -= cut
        available = ready(new) + sum(min(counts[r["metadata"]["name"]], ready(r)) for r in old)
        budget = available - min_available
        for r in old:
            cut = min(counts[r["metadata"]["name"]], max(0, budget))
            counts[r["metadata"]["name"]] -= cut
            budget -= cut
        for r in old:
            self.scale(r, counts[r["metadata"]["name"]])

    def deployment_status(
        self, d: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]], replicas: int
    ) -> None:
        get = lambda r, f: int(r.get("status", {}).get(f, 0))  # noqa: E731
        rs_all = [new, *old]
        total = sum(get(r, "replicas") for r in rs_all)
        updated, ready_n = get(new, "replicas"), sum(get(r, "readyReplicas") for r in rs_all)
        available = sum(get(r, "availableReplicas") for r in rs_all)
        rolling = d["spec"]["strategy"].get("rollingUpdate") or {}
        unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, False)
        uid = d["metadata"]["uid"]
        marker = (d["metadata"].get("generation"), total, updated, ready_n, available)
        seen = self.progress.get(uid)
        if seen is None or seen[0] != marker:
            self.progress[uid] = seen = (marker, time.monotonic())
        old_conditions = d.get("status", {}).get("conditions") or []
        rs_name = new["metadata"]["name"]
        done = (
            updated == replicas
            and total == replicas
            and available >= replicas
            and get(new, "readyReplicas") >= replicas
        )
        if done:
            progressing = condition(
                old_conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif time.monotonic() - seen[1] > int(d["spec"].get("progressDeadlineSeconds", 600)):
            progressing = condition(
                old_conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = condition(
                old_conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
            )
        if available >= replicas - unavailable:
            availability = condition(
                old_conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            availability = condition(
                old_conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready_n,
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
            "conditions": [availability, progressing],
        }
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        self.set_status(d, "deployments", status)

    # ------------------------------------------------------------------------------------------ replicaset
    def replicaset(self, rs: dict[str, Any]) -> None:
        replicas = int(rs["spec"].get("replicas", 1))
        pods = [p for p in self.store.owned_by(rs, "v1", "pods") if active(p)]
        if len(pods) < replicas:
            for _ in range(replicas - len(pods)):
                self.create_pod(rs, rs["spec"]["template"], {})
            return
        if len(pods) > replicas:
            pods.sort(key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]), reverse=False)
            for pod in pods[: len(pods) - replicas]:
                self.delete_pod(pod)
            pods = pods[len(pods) - replicas :]
        ready_n = sum(1 for p in pods if is_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready_n,
            "availableReplicas": ready_n,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        self.set_status(rs, "replicasets", {k: v for k, v in status.items() if v})

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

    # ------------------------------------------------------------------------------------------ scheduler
    def schedule(self) -> None:
        pods, _ = self.store.list("v1", "pods")
        used: dict[str, float] = {}
        for pod in pods:
            if pod["spec"].get("nodeName") and active(pod):
                for k, v in requests(pod).items():
                    used[k] = used.get(k, 0) + v
        for pod in pods:
            if pod["spec"].get("nodeName") or not active(pod):
                continue
            short = [
                k
                for k, v in requests(pod).items()
                if k in self.capacity and used.get(k, 0) + v > self.capacity[k]
            ]
            meta = pod["metadata"]
            conditions = pod.get("status", {}).get("conditions") or []
            if short:
                message = f"0/1 nodes are available: 1 Insufficient {' , '.join(sorted(short))}."
                message = message.replace(" , ", ", 1 Insufficient ")
                scheduled = condition(conditions, "PodScheduled", "False", "Unschedulable", message)
                if scheduled not in conditions:
                    record(self.store, pod, "FailedScheduling", message, "Warning")
                    self.store.update(
                        "v1",
                        "pods",
                        meta["namespace"],
                        meta["name"],
                        lambda o, c=scheduled: o["status"].update({"phase": "Pending", "conditions": [c]}),
                        status=True,
                    )
                continue
            for k, v in requests(pod).items():
                used[k] = used.get(k, 0) + v
            self.store.update(
                "v1",
                "pods",
                meta["namespace"],
                meta["name"],
                lambda o: o["spec"].__setitem__("nodeName", NODE),
            )
            self.store.update(
                "v1",
                "pods",
                meta["namespace"],
                meta["name"],
                lambda o: o["status"].update(
                    {"phase": "Pending", "conditions": [condition([], "PodScheduled", "True", "", "")]}
                ),
                status=True,
            )
            record(
                self.store,
                pod,
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE}",
            )


def requests(pod: dict[str, Any]) -> dict[str, float]:
    """What a pod asks of the node: the sum of its containers' requests (limits when no request)."""
    total: dict[str, float] = {}
    for c in pod["spec"].get("containers") or []:
        res = c.get("resources") or {}
        asked = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for k in ("cpu", "memory"):
            if k in asked:
                total[k] = total.get(k, 0) + quantity(asked[k])
    return total


__all__ = ["Controllers", "match_labels", "template_hash"]

"""The fake's control plane: one thread, one reconcile pass every 0.3 s, and the scheduler.

The scheduler only checks the pods' requests against the node's capacity (one node, ``fake-node``).
Pods run in ``runtime.Runtime`` when the cluster has a Docker engine; without one they stay Pending.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
import traceback
from typing import Any

from .common import active, condition, controller_ref, quantity, requests, template_hash
from .deployments import DeploymentControl
from .events import record
from .runtime import Runtime
from .store import ApiError, Store
from .workloads import WorkloadControl

NODE = "fake-node"
TICK = 0.3


class Controllers(DeploymentControl, WorkloadControl):
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
            for obj in self.store.select("apps/v1", kind)[0]:
                reconcile(obj)
        for job in self.store.select("batch/v1", "jobs")[0]:
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
        """Set a ReplicaSet's replicas; its Deployment gets the ScalingReplicaSet event."""
        before = int(rs["spec"].get("replicas", 1))
        if before != replicas:
            owner = next(
                (r for r in rs["metadata"].get("ownerReferences") or [] if r.get("controller")), None
            )
            if owner is not None:
                deployment = self.store.get(
                    "apps/v1", "deployments", rs["metadata"]["namespace"], owner["name"]
                )
                if deployment is not None:
                    way = "up" if replicas > before else "down"
                    message = f"Scaled {way} replica set {rs['metadata']['name']} from {before} to {replicas}"
                    record(self.store, deployment, "ScalingReplicaSet", message)
            self.store.update(
                "apps/v1",
                "replicasets",
                rs["metadata"]["namespace"],
                rs["metadata"]["name"],
                lambda o: o["spec"].__setitem__("replicas", replicas),
            )

    # ------------------------------------------------------------------------------------------ scheduler
    def schedule(self) -> None:
        pods, _ = self.store.select("v1", "pods")
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


__all__ = ["Controllers", "template_hash"]

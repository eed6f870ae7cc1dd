"""The Deployment and ReplicaSet controllers of the fake.

Deployment -> ReplicaSets (``pod-template-hash`` over the template without ``creationTimestamp: null``
and the hash label, so a rollback reuses the old ReplicaSet) -> Pods; RollingUpdate (maxSurge and
maxUnavailable, roughly as the real controller counts them) and Recreate. Status as kstatus and helm 3
judge it: observedGeneration, replica counts, conditions Available and Progressing (ReplicaSetUpdated,
NewReplicaSetAvailable, ProgressDeadlineExceeded after ``spec.progressDeadlineSeconds``).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from .common import active, condition, controller_ref, is_ready, scaled, template_hash
from .events import record
from .store import Store


class DeploymentControl:
    """Reconciles Deployments and ReplicaSets (mixed into ``Controllers``)."""

    store: Store
    progress: dict[str, tuple[Any, float]]

    def create_pod(
        self, owner: dict[str, Any], template: dict[str, Any], labels: dict[str, str], name: str = ""
    ) -> None:
        raise NotImplementedError

    def delete_pod(self, pod: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_status(self, obj: dict[str, Any], plural: str, status: dict[str, Any]) -> None:
        raise NotImplementedError

    def scale(self, rs: dict[str, Any], replicas: int) -> None:
        raise NotImplementedError

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
            if first:
                record(
                    self.store, d, "ScalingReplicaSet", f"Scaled up replica set {name}-{h} from 0 to {first}"
                )
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

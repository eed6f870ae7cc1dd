"""v1 Events as controllers and the kubelet write them: repeated ones are counted, not duplicated."""

from __future__ import annotations

import contextlib
from typing import Any

from .store import ApiError, Store, now, random_suffix

COMPONENT = {
    "Pod": "kubelet",
    "ReplicaSet": "replicaset-controller",
    "Deployment": "deployment-controller",
    "Job": "job-controller",
    "StatefulSet": "statefulset-controller",
    "DaemonSet": "daemonset-controller",
}


def record(
    store: Store, obj: dict[str, Any], reason: str, message: str, kind: str = "Normal", field_path: str = ""
) -> None:
    """Write (or count again) an Event about ``obj``."""
    meta = obj["metadata"]
    ns = meta.get("namespace") or "default"
    involved = {
        "kind": obj["kind"],
        "name": meta["name"],
        "namespace": ns,
        "uid": meta["uid"],
        "apiVersion": obj["apiVersion"],
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        involved["fieldPath"] = field_path
    with store.lock:
        same, _ = store.select(
            "v1",
            "events",
            ns,
            lambda e: (
                e["involvedObject"].get("uid") == meta["uid"]
                and e.get("reason") == reason
                and e.get("message") == message
            ),
        )
        stamp = now()
        if same:

            def bump(e: dict[str, Any]) -> None:
                e["count"] = int(e.get("count", 1)) + 1
                e["lastTimestamp"] = stamp

            store.update("v1", "events", ns, same[0]["metadata"]["name"], bump)
            return
        with contextlib.suppress(ApiError):  # the namespace went away meanwhile
            store.create(
                "v1",
                "events",
                ns,
                {
                    "metadata": {"name": f"{meta['name']}.{random_suffix(10)}", "namespace": ns},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "type": kind,
                    "count": 1,
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "eventTime": None,
                    "source": {"component": COMPONENT.get(obj["kind"], "fake"), "host": "fake-node"},
                    "reportingComponent": COMPONENT.get(obj["kind"], "fake"),
                    "reportingInstance": "fake-node",
                },
            )

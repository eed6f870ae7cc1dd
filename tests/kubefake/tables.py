"""``meta.k8s.io/v1`` Tables: kubectl has no client-side printers for built-in kinds any more, so without
these ``kubectl get`` shows NAME and AGE only. Columns as kubectl shows them for the common kinds."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def age(obj: dict[str, Any]) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    seconds = int(time.time() - calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")))
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60}m"


def pod_status(pod: dict[str, Any]) -> str:
    status = pod.get("status", {})
    for c in status.get("containerStatuses") or []:
        state = c.get("state", {})
        for kind in ("waiting", "terminated"):
            if state.get(kind, {}).get("reason") and not (
                kind == "terminated" and status.get("phase") == "Running"
            ):
                return str(state[kind]["reason"])
    for c in status.get("conditions") or []:
        if c["type"] == "PodScheduled" and c["status"] == "False":
            return "Pending"
    return str(status.get("phase", "Pending"))


def ready_count(pod: dict[str, Any]) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return f"{sum(1 for c in statuses if c.get('ready'))}/{len(pod.get('spec', {}).get('containers') or [])}"


def job_status(job: dict[str, Any]) -> str:
    for c in job.get("status", {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return "Running"


def ports(svc: dict[str, Any]) -> str:
    return ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in svc.get("spec", {}).get("ports") or [])


def st(obj: dict[str, Any], key: str) -> Any:
    return obj.get("status", {}).get(key, 0)


COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        ("Ready", ready_count),
        ("Status", pod_status),
        (
            "Restarts",
            lambda p: sum(
                c.get("restartCount", 0) for c in p.get("status", {}).get("containerStatuses") or []
            ),
        ),
        ("Age", age),
        ("IP", lambda p: p.get("status", {}).get("podIP", "<none>")),
        ("Node", lambda p: p.get("spec", {}).get("nodeName", "<none>")),
    ],
    "Deployment": [
        ("Ready", lambda d: f"{st(d, 'readyReplicas')}/{d['spec'].get('replicas', 1)}"),
        ("Up-to-date", lambda d: st(d, "updatedReplicas")),
        ("Available", lambda d: st(d, "availableReplicas")),
        ("Age", age),
    ],
    "ReplicaSet": [
        ("Desired", lambda r: r["spec"].get("replicas", 1)),
        ("Current", lambda r: st(r, "replicas")),
        ("Ready", lambda r: st(r, "readyReplicas")),
        ("Age", age),
    ],
    "StatefulSet": [
        ("Ready", lambda s: f"{st(s, 'readyReplicas')}/{s['spec'].get('replicas', 1)}"),
        ("Age", age),
    ],
    "Job": [
        ("Status", job_status),
        ("Completions", lambda j: f"{st(j, 'succeeded')}/{j['spec'].get('completions', 1)}"),
        ("Age", age),
    ],
    "Service": [
        ("Type", lambda s: s["spec"].get("type", "ClusterIP")),
        ("Cluster-IP", lambda s: s["spec"].get("clusterIP", "<none>")),
        ("External-IP", lambda s: "<none>"),
        ("Port(s)", ports),
        ("Age", age),
    ],
    "Event": [
        ("Type", lambda e: e.get("type", "")),
        ("Reason", lambda e: e.get("reason", "")),
        (
            "Object",
            lambda e: f"{e['involvedObject'].get('kind', '').lower()}/{e['involvedObject'].get('name')}",
        ),
        ("Message", lambda e: e.get("message", "")),
    ],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(kind: str, items: list[dict[str, Any]], rv: int, include_object: str) -> dict[str, Any]:
    """A Table of ``items``; rows carry the object itself or its metadata (``includeObject``)."""
    columns: list[Column] = [("Name", lambda o: o["metadata"]["name"]), *COLUMNS.get(kind, [("Age", age)])]
    definitions = [
        {
            "name": name,
            "type": "string",
            "format": "name" if name == "Name" else "",
            "description": "",
            "priority": 1 if name in ("IP", "Node") else 0,
        }
        for name, _ in columns
    ]
    rows = []
    for item in items:
        if include_object == "Object":
            obj = item
        else:
            obj = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item["metadata"],
            }
        rows.append({"cells": [value(item) for _, value in columns], "object": obj})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(rv)},
        "columnDefinitions": definitions,
        "rows": rows,
    }

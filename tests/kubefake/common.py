"""What the controllers and the kubelet share: quantities, template hashes, owner references, conditions."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

from .store import now

HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "m": 1e-3,
}


def quantity(text: Any) -> float:
    """A Kubernetes quantity (``500m``, ``64Mi``, ``2``) as a number (cores, bytes)."""
    text = str(text).strip()
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * UNITS[unit]
    return float(text)


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

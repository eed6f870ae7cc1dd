"""Readiness of a release's workloads, judged from what the API server says (pure: dicts in, a verdict out).

Helm's ``--wait`` and kstatus only give up at their timeout. Here a pod state that will not heal ends
the wait at once: a crash loop, an image that cannot be pulled, a container config that cannot be
made, an OOM kill, a pod no node can take. The verdict names the pod, the container and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Object = dict[str, Any]

# Waiting reasons of a container that no amount of waiting fixes.
HOPELESS = ("CrashLoopBackOff", "ImagePullBackOff", "CreateContainerConfigError", "InvalidImageName",
            "CreateContainerError", "ErrImageNeverPull", "RunContainerError")  # fmt: skip
# ErrImagePull is retried by the kubelet; only these messages say the image will never come.
PULL_FOREVER = ("not found", "manifest unknown", "unauthorized", "denied", "does not exist", "invalid")


@dataclass(frozen=True)
class Verdict:
    """Where a rollout stands: ``ready``, ``waiting`` (with what it waits for) or ``failed``."""

    state: Literal["ready", "waiting", "failed"]
    detail: str
    pod: str = ""
    container: str = ""
    reason: str = ""


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _count(obj: Object, *path: str) -> int:
    value = _get(obj, *path)
    return value if isinstance(value, int) else 0


def _condition(obj: Object, kind: str) -> Object:
    for condition in _get(obj, "status", "conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return {}


def workload_verdict(kind: str, obj: Object) -> Verdict:
    """Whether one workload finished rolling out (``kubectl rollout status``'s rules, and Jobs)."""
    name = f"{kind}/{_get(obj, 'metadata', 'name')}"
    generation = _count(obj, "metadata", "generation")
    if kind != "Job" and _count(obj, "status", "observedGeneration") < generation:
        return Verdict("waiting", f"{name}: the controller has not seen generation {generation} yet")
    if kind == "Deployment":
        return _deployment(name, obj)
    if kind == "StatefulSet":
        wanted = _get(obj, "spec", "replicas")
        wanted = 1 if wanted is None else wanted
        ready, updated = _count(obj, "status", "readyReplicas"), _count(obj, "status", "updatedReplicas")
        current, update = _get(obj, "status", "currentRevision"), _get(obj, "status", "updateRevision")
        if updated < wanted or (update and current != update and wanted):
            return Verdict("waiting", f"{name}: {updated} of {wanted} pods updated")
        if ready < wanted:
            return Verdict("waiting", f"{name}: {ready} of {wanted} pods ready")
        return Verdict("ready", f"{name}: {ready} of {wanted} pods ready")
    if kind == "DaemonSet":
        wanted = _count(obj, "status", "desiredNumberScheduled")
        updated = _count(obj, "status", "updatedNumberScheduled")
        available = _count(obj, "status", "numberAvailable")
        if updated < wanted or available < wanted:
            return Verdict("waiting", f"{name}: {updated} updated, {available} of {wanted} available")
        return Verdict("ready", f"{name}: {available} of {wanted} available")
    return _job(name, obj)


def _deployment(name: str, obj: Object) -> Verdict:
    progressing = _condition(obj, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Verdict("failed", f"{name}: {progressing.get('message') or 'progress deadline exceeded'}",
                       reason="ProgressDeadlineExceeded")  # fmt: skip
    wanted = _get(obj, "spec", "replicas")
    wanted = 1 if wanted is None else wanted
    updated = _count(obj, "status", "updatedReplicas")
    total = _count(obj, "status", "replicas")
    available = _count(obj, "status", "availableReplicas")
    if updated < wanted:
        return Verdict("waiting", f"{name}: {updated} of {wanted} new pods created")
    if total > updated:
        return Verdict("waiting", f"{name}: {total - updated} old pods still terminating")
    if available < updated:
        return Verdict("waiting", f"{name}: {available} of {updated} new pods available")
    return Verdict("ready", f"{name}: {available} of {wanted} pods available")


def _job(name: str, obj: Object) -> Verdict:
    failed = _condition(obj, "Failed")
    if failed.get("status") == "True":
        why = failed.get("message") or failed.get("reason") or "failed"
        return Verdict("failed", f"{name}: {why}", reason=str(failed.get("reason") or "Failed"))
    if _condition(obj, "Complete").get("status") == "True":
        return Verdict("ready", f"{name}: complete")
    return Verdict("waiting", f"{name}: {_count(obj, 'status', 'active')} pods active")


def pod_verdict(pod: Object) -> Verdict | None:
    """A pod state that will not heal, or None."""
    name = str(_get(pod, "metadata", "name") or "?")
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        message = str(scheduled.get("message") or "no node can run it")
        return Verdict("failed", f"pod {name}: Unschedulable: {message}", name, "", "Unschedulable")
    statuses = [*(_get(pod, "status", "initContainerStatuses") or []),
                *(_get(pod, "status", "containerStatuses") or [])]  # fmt: skip
    for status in statuses:
        if not isinstance(status, dict):
            continue
        container = str(status.get("name", ""))
        waiting = _get(status, "state", "waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "")
        last = _get(status, "lastState", "terminated") or {}
        now = _get(status, "state", "terminated") or {}
        killed = "OOMKilled" in (str(last.get("reason")), str(now.get("reason")))
        if killed and (reason == "CrashLoopBackOff" or _count(status, "restartCount") >= 1 or now):
            return Verdict("failed", f"pod {name}, container {container}: OOMKilled (exit 137: out of "
                           "memory at its limit)", name, container, "OOMKilled")  # fmt: skip
        pull_forever = reason == "ErrImagePull" and any(w in message.lower() for w in PULL_FOREVER)
        if reason in HOPELESS or pull_forever:
            exit_code = last.get("exitCode")
            code = f" (last exit {exit_code})" if exit_code is not None else ""
            text = f": {message}" if message else ""
            return Verdict("failed", f"pod {name}, container {container}: {reason}{code}{text}",
                           name, container, reason)  # fmt: skip
    return None


def owned_pods(
    workload: Object, kind: str, pods: Sequence[Object], replicasets: Sequence[Object]
) -> list[Object]:
    """The pods of a workload's newest template (a Deployment's old pods are not its verdict)."""
    live = [p for p in pods if not _get(p, "metadata", "deletionTimestamp")]
    if kind != "Deployment":
        return live
    template = _normal(_get(workload, "spec", "template") or {})
    uid = _get(workload, "metadata", "uid")
    newest = [
        rs for rs in replicasets
        if any(o.get("uid") == uid for o in _get(rs, "metadata", "ownerReferences") or [])
        and _normal(_get(rs, "spec", "template") or {}) == template
    ]  # fmt: skip
    if not newest:  # the controller has not made the new ReplicaSet yet: every pod is an old one
        return []
    hashes = {_get(rs, "metadata", "labels", "pod-template-hash") for rs in newest}
    return [p for p in live if _get(p, "metadata", "labels", "pod-template-hash") in hashes]


def _normal(template: Object) -> str:
    """A pod template compared without what controllers add (the hash label, a null timestamp)."""
    copy = json.loads(json.dumps(template))
    meta = copy.get("metadata") or {}
    (meta.get("labels") or {}).pop("pod-template-hash", None)
    meta.pop("creationTimestamp", None)
    return json.dumps(copy, sort_keys=True)


def judge(workloads: Sequence[tuple[str, Object, list[Object]]]) -> Verdict:
    """The rollout's verdict over (kind, workload, its newest pods): failed first, then waiting."""
    waiting = []
    for kind, obj, pods in workloads:
        for pod in pods:
            found = pod_verdict(pod)
            if found is not None:
                return found
        verdict = workload_verdict(kind, obj)
        if verdict.state == "failed":
            return verdict
        if verdict.state == "waiting":
            waiting.append(verdict.detail)
    if waiting:
        return Verdict("waiting", "; ".join(waiting))
    return Verdict("ready", f"{len(workloads)} workload(s) rolled out")


def pod_rows(pods: Sequence[Object]) -> list[dict[str, Any]]:
    """Each pod's name, phase, readiness, restarts and why it is not ready (for status and evidence)."""
    rows = []
    for pod in pods:
        statuses = _get(pod, "status", "containerStatuses") or []
        ready = sum(1 for s in statuses if isinstance(s, dict) and s.get("ready"))
        restarts = sum(_count(s, "restartCount") for s in statuses if isinstance(s, dict))
        reasons = [
            str(_get(s, "state", "waiting", "reason") or _get(s, "state", "terminated", "reason") or "")
            for s in statuses if isinstance(s, dict)
        ]  # fmt: skip
        images = [
            str(c.get("image", "")) for c in _get(pod, "spec", "containers") or [] if isinstance(c, dict)
        ]
        rows.append({
            "name": str(_get(pod, "metadata", "name") or ""),
            "phase": str(_get(pod, "status", "phase") or ""),
            "ready": f"{ready}/{len(statuses) or len(images)}",
            "restarts": restarts,
            "reason": ", ".join(r for r in reasons if r),
            "images": images,
        })  # fmt: skip
    return rows

"""Migrations as Kubernetes Jobs made from a workload of the release: its image, env and service account.

A Job is built (pure) from the pod template the release rendered, so it runs the new release's code
and reaches its database the way the release does. Running it follows the Job until it completes or
fails; a pod state that will not heal (an image that cannot be pulled) ends the wait at once, and a
deadline or a signal deletes the Job (and with it its pod) before the error is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from pipeline.engine.cancel import Call
from pipeline.errors import DeadlineExceeded, StageError
from pipeline.helm import Workload
from pipeline.kube import Kube, KubeError, Object
from pipeline.rollout import pod_verdict, workload_verdict
from pipeline.targets.helmcore import LOG_LINES, POLL
from pipeline.targets.kubestate import MANAGED_BY

KEPT_FOR = 86400  # seconds a failed Job stays for inspection (ttlSecondsAfterFinished)
_COPIED = ("image", "imagePullPolicy", "env", "envFrom", "volumeMounts", "workingDir", "resources",
           "securityContext")  # fmt: skip
_POD_COPIED = ("serviceAccountName", "imagePullSecrets", "volumes", "securityContext", "nodeSelector",
               "tolerations", "affinity")  # fmt: skip


def pick(workloads: Sequence[Workload], wanted: str) -> Workload | None:
    """The workload named ``Kind/name`` (or the first Deployment, else the first workload)."""
    if wanted:
        return next((w for w in workloads if w.label == wanted), None)
    return next((w for w in workloads if w.kind == "Deployment"), workloads[0] if workloads else None)


def job_body(
    release: str, workload: Workload, container: str, argv: Sequence[str], purpose: str, deadline: float,
    run: str,
) -> Object:  # fmt: skip
    """A Job running ``argv`` in a copy of the workload's container (by name, else its first)."""
    spec = dict(workload.template.get("spec") or {})
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    chosen = next((c for c in containers if c.get("name") == container), None) if container else None
    chosen = chosen or (containers[0] if containers else None)
    if chosen is None:
        raise StageError("migrate", f"{workload.label} has no container to copy for the migration Job")
    copied = {k: chosen[k] for k in _COPIED if k in chosen}
    pod: dict[str, Any] = {k: spec[k] for k in _POD_COPIED if k in spec}
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "invoke-pipeline/release": release,
              "invoke-pipeline/purpose": purpose, "invoke-pipeline/run": run}  # fmt: skip
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": f"{release[:40]}-{purpose}-", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, int(deadline)),
            "ttlSecondsAfterFinished": KEPT_FOR,
            "template": {
                "metadata": {"labels": labels},
                "spec": {**pod, "restartPolicy": "Never",
                         "containers": [{"name": purpose, **copied, "command": list(argv)}]},
            },
        },
    }  # fmt: skip


def run_job(
    kube: Kube, body: Object, call: Call, sleep: Callable[[float], None] = time.sleep
) -> tuple[bool, str, str, str]:
    """Create the Job and follow it: (succeeded, its pod's log, why it failed, its name). A deadline
    or a signal deletes it and raises; so does a pod that will never start."""
    created = kube.create("job", body, call.timeout())
    name = str(created["metadata"]["name"])
    try:
        while True:
            call.check()
            job = kube.get("job", name, call.timeout())
            if job is None:
                raise StageError(call.stage, f"the Job {name} disappeared", call.unit)
            verdict = workload_verdict("Job", job)
            pods = kube.select("pod", call.timeout(), selector=f"job-name={name}")
            if verdict.state != "waiting":
                return verdict.state == "ready", _log(kube, pods, call), verdict.detail, name
            for pod in pods:
                stuck = pod_verdict(pod)
                if stuck is not None:
                    raise StageError(
                        call.stage, f"Job {name}: {stuck.detail}", call.unit, _log(kube, pods, call)
                    )
            sleep(min(POLL, max(0.0, call.remaining())))
            if call.remaining() <= 0:
                raise DeadlineExceeded(
                    call.stage, f"the Job {name} passed its deadline of {call.seconds:g} s", call.unit,
                    _log(kube, pods, call),
                )  # fmt: skip
    except BaseException:  # a deadline, a signal, a pod that never starts: nothing of ours keeps running
        _delete(kube, name)
        raise


def finished(kube: Kube, name: str, ok: bool) -> None:
    """A Job that succeeded is deleted (its log is kept by the caller); a failed one stays to inspect."""
    if ok:
        _delete(kube, name)


def _delete(kube: Kube, name: str) -> None:
    with suppress(KubeError):  # the ttl removes it later; the error that brought us here is what matters
        kube.delete("job", name, 10.0)


def _log(kube: Kube, pods: list[Object], call: Call) -> str:
    for pod in pods:
        try:
            return kube.log(str(pod["metadata"]["name"]), "", max(1.0, min(10.0, call.remaining() or 10.0)),
                            tail=LOG_LINES)  # fmt: skip
        except KubeError:
            continue
    return ""

"""The pipeline's own records in the cluster, beside the release: the ledger and the deploy lock.

The ledger is a ConfigMap holding the same journal lines the compose target keeps on a host (helm's
history alone cannot say which revision was *healthy*, nor where the database was). The lock is a
Lease created in one request (201, or 409 when held) with its holder in an annotation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

from pipeline.engine.values import LockInfo, parse_lock
from pipeline.journal import Damaged, Entry, read_journal
from pipeline.kube import Kube, KubeError, Object

MANAGED_BY = "invoke-pipeline"
JOURNAL_KEY = "journal.jsonl"
HOLDER = "invoke-pipeline/holder"
KEEP_LINES = 2000  # the ledger keeps its newest lines: a ConfigMap holds at most 1 MiB
MAX_READ = 2 * 1024 * 1024
WRITE_TRIES = 5


def ledger_name(release: str) -> str:
    """The ConfigMap of a release's ledger."""
    return f"{release}.pipeline-ledger"


def lock_name(release: str) -> str:
    """The Lease that is a release's deploy lock."""
    return f"{release}.pipeline-lock"


def _labels(release: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "invoke-pipeline/release": release}


def read_ledger(kube: Kube, release: str, timeout: float) -> tuple[list[Entry], list[Damaged], bool, str]:
    """The ledger's entries, its damaged lines, whether it was cut, and why it is unreadable (or "")."""
    found = kube.get("configmap", ledger_name(release), timeout)
    if found is None:
        return [], [], False, ""
    text = (found.get("data") or {}).get(JOURNAL_KEY, "")
    if not isinstance(text, str):
        return [], [], False, f"{JOURNAL_KEY} is not text"
    cut = len(text) > MAX_READ
    if cut:
        text = text[-MAX_READ:].split("\n", 1)[-1]
    entries, damaged = read_journal(text, from_end=cut)
    return entries, damaged, cut, ""


def append_ledger(kube: Kube, release: str, lines: str, timeout: float) -> None:
    """Append journal lines, at the ConfigMap's resourceVersion (retried when another write won)."""
    name = ledger_name(release)
    for _ in range(WRITE_TRIES):
        found = kube.get("configmap", name, timeout)
        if found is None:
            body: Object = {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": _labels(release)},
                "data": {JOURNAL_KEY: lines},
            }  # fmt: skip
            try:
                kube.create("configmap", body, timeout)
                return
            except KubeError as exc:
                if exc.code != 409:
                    raise
                continue
        data = found.get("data") or {}
        text = str(data.get(JOURNAL_KEY) or "") + lines
        kept = text.splitlines(keepends=True)[-KEEP_LINES:]
        found["data"] = {**data, JOURNAL_KEY: "".join(kept)}
        try:
            kube.replace("configmap", found, timeout)
            return
        except KubeError as exc:
            if exc.code != 409:
                raise
    raise KubeError(f"the ledger {name} kept changing under {WRITE_TRIES} writes", 409, "Conflict")


def read_lock(kube: Kube, release: str, timeout: float) -> LockInfo | None:
    """Who holds the release's deploy lock, or None."""
    lease = kube.get("lease", lock_name(release), timeout)
    return None if lease is None else _holder(lease)


def _holder(lease: Object) -> LockInfo:
    """The holder in the annotation, and how long ago the lease was renewed and for how long."""
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    holder = parse_lock(str(annotations.get(HOLDER, "")))
    spec = lease.get("spec") or {}
    renewed, duration = _seconds_since(spec.get("renewTime")), spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int) or isinstance(duration, bool):
        return holder
    return replace(holder, renewed=renewed, lease=float(duration))


def _seconds_since(stamp: object) -> float | None:
    """Seconds since a MicroTime such as ``2026-12-01T02:40:00.123456Z`` (None when it is not one)."""
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.strptime(stamp.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return max(0.0, time.time() - when.replace(tzinfo=timezone.utc).timestamp())


def micro_now() -> str:
    """Now as a Kubernetes MicroTime."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def take_lock(
    kube: Kube, release: str, info: LockInfo, timeout: float, take_over: str = "", lease_seconds: int = 30
) -> LockInfo | None:
    """Create the Lease with its holder in one request; the holder found when it is held.

    ``take_over`` names the interrupted run whose lease may be replaced (at its resourceVersion).
    """
    body: Object = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": lock_name(release), "labels": _labels(release),
                     "annotations": {HOLDER: info.to_json()}},
        "spec": {"holderIdentity": info.run or info.who, "leaseDurationSeconds": lease_seconds,
                 "acquireTime": micro_now(), "renewTime": micro_now()},
    }  # fmt: skip
    for _ in range(WRITE_TRIES):  # a lease released between our create and our read: create again
        try:
            kube.create("lease", body, timeout)
            return None
        except KubeError as exc:
            if exc.code != 409:
                raise
        lease = kube.get("lease", lock_name(release), timeout)
        if lease is not None:
            break
    else:
        raise KubeError(f"the lease {lock_name(release)} kept appearing and vanishing", 409, "Conflict")
    holder = _holder(lease)
    if not take_over or holder.damaged or holder.run != take_over:
        return holder
    body["metadata"]["resourceVersion"] = (lease.get("metadata") or {}).get("resourceVersion")
    try:
        kube.replace("lease", body, timeout)
    except KubeError as exc:
        if exc.code == 409:
            return read_lock(kube, release, timeout) or holder
        raise
    return None


def renew_lock(kube: Kube, release: str, run: str, timeout: float) -> bool:
    """Renew the lease the run holds (False when it holds it no more: released or taken over)."""
    for _ in range(WRITE_TRIES):
        lease = kube.get("lease", lock_name(release), timeout)
        if lease is None or _holder(lease).run != run:
            return False
        lease.setdefault("spec", {})["renewTime"] = micro_now()
        try:
            kube.replace("lease", lease, timeout)
            return True
        except KubeError as exc:
            if exc.code != 409:
                raise
    return True


class Heartbeat:
    """Renews a run's lease every third of its duration until stopped: a run still going shows as
    running; one killed outright (SIGKILL) stops renewing, and its lease expires."""

    def __init__(self, kube: Kube, release: str, run: str, lease: int) -> None:
        self.kube, self.release, self.run = kube, release, run
        self.every = max(1.0, lease / 3)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"lease {release}", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                if not renew_lock(self.kube, self.release, self.run, self.every):
                    return
            except KubeError:
                continue  # the next beat tries again; the lease outlives a few missed ones

    def stop(self) -> None:
        """Stop renewing (before the lease is deleted, or when the run ends)."""
        self.stopped.set()
        self.thread.join(10)


def drop_lock(kube: Kube, release: str, timeout: float) -> None:
    """Delete the Lease (already gone is fine)."""
    kube.delete("lease", lock_name(release), timeout)

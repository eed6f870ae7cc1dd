"""The pipeline's own records in the cluster, beside the release: the ledger and the deploy lock.

The ledger is a ConfigMap holding the same journal lines the compose target keeps on a host (helm's
history alone cannot say which revision was *healthy*, nor where the database was). The lock is a
Lease created in one request (201, or 409 when held) with its holder in an annotation.
"""

from __future__ import annotations

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
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    return parse_lock(str(annotations.get(HOLDER, "")))


def take_lock(
    kube: Kube, release: str, info: LockInfo, timeout: float, take_over: str = ""
) -> LockInfo | None:
    """Create the Lease with its holder in one request; the holder found when it is held.

    ``take_over`` names the interrupted run whose lease may be replaced (at its resourceVersion).
    """
    body: Object = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": lock_name(release), "labels": _labels(release),
                     "annotations": {HOLDER: info.to_json()}},
        "spec": {"holderIdentity": info.run or info.who},
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


def drop_lock(kube: Kube, release: str, timeout: float) -> None:
    """Delete the Lease (already gone is fine)."""
    kube.delete("lease", lock_name(release), timeout)

"""The fake's object store: one resourceVersion counter, API-server write semantics, watch events.

Objects are keyed ``(group_version, plural, namespace, name)`` (namespace "" for cluster-scoped kinds).
Writes follow the real server where clients notice: ``uid``/``creationTimestamp`` on create,
``generation`` bumped only by a spec change, client writes never change ``status`` and ``/status`` writes
change nothing else, no-op writes keep the resourceVersion, 409 on an existing name or a stale
resourceVersion, 404 for a missing namespace. Deletion is immediate (no finalizers, no graceful
period); dependents found through ``ownerReferences`` are deleted with it unless the policy is Orphan.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from .defaults import apply_defaults
from .discovery import Kind, kind_of

Key = tuple[str, str, str, str]
GENERATION_KINDS = {
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "Service",
    "Ingress",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "PersistentVolumeClaim",
}
MAX_EVENTS = 20000


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=n))


class ApiError(Exception):
    """A failure the API answers with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{kind.qualified} "{name}" not found',
        {"name": name, "group": kind.group, "kind": kind.plural},
    )


def require_kind(group_version: str, plural: str) -> Kind:
    kind = kind_of(group_version, plural)
    if kind is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return kind


def without_meta(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    """Objects, the resourceVersion counter and the event log watches read from."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[tuple[int, str, Key, dict[str, Any]]] = []
        self.applied: dict[tuple[Key, str], dict[str, Any]] = {}  # last apply body per field manager
        self.rv = 0
        self.closed = False
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create("v1", "namespaces", "", {"metadata": {"name": ns}})

    # ------------------------------------------------------------------------------------------ reads
    def get(self, gv: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((gv, plural, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def must_get(self, gv: str, plural: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.get(gv, plural, ns, name)
        if obj is None:
            raise not_found(require_kind(gv, plural), name)
        return obj

    def select(
        self,
        gv: str,
        plural: str,
        ns: str | None = None,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (g, p, n, _), o in sorted(self.objects.items())
                if g == gv and p == plural and (ns is None or n == ns) and (match is None or match(o))
            ]
            return items, self.rv

    def owned_by(self, owner: dict[str, Any], gv: str, plural: str) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        items, _ = self.select(
            gv,
            plural,
            owner["metadata"].get("namespace", ""),
            lambda o: any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []),
        )
        return items

    # ------------------------------------------------------------------------------------------ writes
    def _commit(self, event: str, key: Key, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if event == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.events.append((self.rv, event, key, copy.deepcopy(obj)))
        if len(self.events) > MAX_EVENTS:
            del self.events[: MAX_EVENTS // 4]
        self.changed.notify_all()

    def _check_namespace(self, kind: Kind, ns: str) -> None:
        if kind.namespaced and ("v1", "namespaces", "", ns) not in self.objects:
            raise ApiError(
                404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
            )

    def create(
        self,
        gv: str,
        plural: str,
        ns: str,
        body: dict[str, Any],
        *,
        dry_run: bool = False,
        keep_status: bool = False,
    ) -> dict[str, Any]:
        """POST: a new object (409 AlreadyExists when the name is taken)."""
        kind = require_kind(gv, plural)
        ns = ns if kind.namespaced else ""
        with self.lock:
            self._check_namespace(kind, ns)
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise ApiError(
                        422,
                        "Invalid",
                        f"{kind.kind}.{kind.group or 'core'} is invalid: "
                        "metadata.name: Required value: name or generateName is required",
                    )
                while True:
                    meta["name"] = meta["generateName"] + random_suffix()
                    if (gv, plural, ns, meta["name"]) not in self.objects:
                        break
            key = (gv, plural, ns, meta["name"])
            if key in self.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{kind.qualified} "{meta["name"]}" already exists',
                    {"name": meta["name"], "group": kind.group, "kind": kind.plural},
                )
            obj["apiVersion"], obj["kind"] = gv, kind.kind
            if kind.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta.pop("managedFields", None)
            meta.pop("deletionTimestamp", None)
            if kind.kind in GENERATION_KINDS:
                meta["generation"] = 1
            if not keep_status and kind.kind != "Namespace":
                obj.pop("status", None)
            if kind.kind == "Job":
                self._job_selector(obj)
            apply_defaults(kind.kind, obj)
            if kind.kind == "Pod":
                obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
            if dry_run:
                return obj
            self._commit("ADDED", key, obj)
            return copy.deepcopy(obj)

    @staticmethod
    def _job_selector(job: dict[str, Any]) -> None:
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        spec = job.setdefault("spec", {})
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        if not spec.get("selector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        tpl_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        tpl_meta["labels"] = {**(tpl_meta.get("labels") or {}), **labels}

    def replace(
        self,
        gv: str,
        plural: str,
        ns: str,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
        client: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT (and every other write of an existing object): optimistic concurrency on resourceVersion."""
        kind = require_kind(gv, plural)
        ns = ns if kind.namespaced else ""
        key = (gv, plural, ns, name)
        with self.lock:
            old = self.objects.get(key)
            if old is None:
                raise not_found(kind, name)
            expected = (body.get("metadata") or {}).get("resourceVersion")
            if expected and expected != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {kind.qualified} "{name}": '
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                    {"name": name, "group": kind.group, "kind": kind.plural},
                )
            if subresource == "status":
                new = copy.deepcopy(old)
                new["status"] = copy.deepcopy(body.get("status"))
                if new["status"] is None:
                    new.pop("status")
            else:
                new = copy.deepcopy(body)
                meta = new.setdefault("metadata", {})
                for field in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace"):
                    if field in old["metadata"]:
                        meta[field] = old["metadata"][field]
                meta["name"] = name
                meta.pop("managedFields", None)
                new["apiVersion"], new["kind"] = gv, kind.kind
                if client or "status" not in new:
                    new.pop("status", None)
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                apply_defaults(kind.kind, new)
                if kind.kind in GENERATION_KINDS and without_meta(new) != without_meta(old):
                    meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old or dry_run:
                return copy.deepcopy(new)
            self._commit("MODIFIED", key, new)
            return copy.deepcopy(new)

    def update(
        self,
        gv: str,
        plural: str,
        ns: str,
        name: str,
        change: Callable[[dict[str, Any]], None],
        *,
        status: bool = False,
    ) -> dict[str, Any] | None:
        """A controller's read-modify-write under the lock (None when the object is gone)."""
        with self.lock:
            obj = self.get(gv, plural, ns, name)
            if obj is None:
                return None
            change(obj)
            obj["metadata"].pop("resourceVersion", None)
            return self.replace(
                gv, plural, ns, name, obj, subresource="status" if status else None, client=False
            )

    def delete(
        self,
        gv: str,
        plural: str,
        ns: str,
        name: str,
        propagation: str | None = None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """DELETE: gone at once; dependents deleted too (Background/Foreground) or orphaned (Orphan)."""
        kind = require_kind(gv, plural)
        ns = ns if kind.namespaced else ""
        key = (gv, plural, ns, name)
        with self.lock:
            obj = self.objects.get(key)
            if obj is None:
                raise not_found(kind, name)
            if dry_run:
                return copy.deepcopy(obj)
            if propagation is None:
                propagation = "Orphan" if kind.kind == "Job" else "Background"
            uid = obj["metadata"]["uid"]
            if kind.kind == "Namespace":
                for inside in [k for k in self.objects if k[2] == name and k[0:2] != ("v1", "namespaces")]:
                    if inside in self.objects:
                        self.delete(*inside, propagation="Background")
            for dep_key, dep in list(self.objects.items()):
                refs = dep["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs) or dep_key not in self.objects:
                    continue
                if propagation == "Orphan":
                    orphan = copy.deepcopy(dep)
                    orphan["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    self._commit("MODIFIED", dep_key, orphan)
                else:
                    self.delete(*dep_key, propagation=propagation)
            gone = copy.deepcopy(obj)
            gone["metadata"]["deletionTimestamp"] = now()
            self._commit("DELETED", key, gone)
            for applied in [k for k in self.applied if k[0] == key]:
                del self.applied[applied]
            return copy.deepcopy(gone)

    # ------------------------------------------------------------------------------------------ watch
    def events_after(self, rv: int) -> list[tuple[int, str, Key, dict[str, Any]]]:
        with self.lock:
            if self.events and rv < self.events[0][0] - 1:
                raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.events[0][0]})")
            lo, hi = 0, len(self.events)
            while lo < hi:
                mid = (lo + hi) // 2
                if self.events[mid][0] <= rv:
                    lo = mid + 1
                else:
                    hi = mid
            return self.events[lo:]

    def wait(self, rv: int, timeout: float) -> None:
        """Block until something newer than ``rv`` is written, the store closes, or ``timeout``."""
        with self.lock:
            if self.rv <= rv and not self.closed:
                self.changed.wait(timeout)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()

    def keys(self) -> Iterator[Key]:
        with self.lock:
            return iter(list(self.objects))

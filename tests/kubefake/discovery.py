"""The kinds the fake serves, and the static discovery and OpenAPI documents real clients read first.

Discovery is answered in the legacy form (``APIVersions``, ``APIGroupList``, ``APIResourceList``) even
when a client asks for aggregated discovery: client-go falls back. ``/openapi/v3`` lists, per
group-version, one PATCH operation per kind that takes ``fieldValidation``: client-go then leaves
validation to the server (which does none), so helm and ``kubectl apply`` need no
``--disable-openapi-validation``, hook manifests included.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "fake",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Kind:
    """One resource type: where it lives and what it is called."""

    group_version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.group_version.split("/")[0] if "/" in self.group_version else ""

    @property
    def version(self) -> str:
        return self.group_version.split("/")[-1]

    @property
    def qualified(self) -> str:
        """How error messages name it: ``deployments.apps``, ``configmaps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS = [
    Kind("v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    Kind("v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Kind("v1", "secrets", "Secret"),
    Kind("v1", "services", "Service", short_names=("svc",), subresources=("status", "proxy")),
    Kind("v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    Kind("v1", "pods", "Pod", short_names=("po",), subresources=("status", "log", "proxy", "exec")),
    Kind("v1", "events", "Event", short_names=("ev",)),
    Kind(
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        subresources=("status",),
    ),
    Kind("v1", "endpoints", "Endpoints", short_names=("ep",)),
    Kind("apps/v1", "deployments", "Deployment", short_names=("deploy",), subresources=("status", "scale")),
    Kind("apps/v1", "replicasets", "ReplicaSet", short_names=("rs",), subresources=("status", "scale")),
    Kind("apps/v1", "statefulsets", "StatefulSet", short_names=("sts",), subresources=("status", "scale")),
    Kind("apps/v1", "daemonsets", "DaemonSet", short_names=("ds",), subresources=("status",)),
    Kind("apps/v1", "controllerrevisions", "ControllerRevision"),
    Kind("batch/v1", "jobs", "Job", subresources=("status",)),
    Kind("coordination.k8s.io/v1", "leases", "Lease"),
    Kind("networking.k8s.io/v1", "ingresses", "Ingress", short_names=("ing",), subresources=("status",)),
    Kind(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        subresources=("status",),
    ),
    Kind("events.k8s.io/v1", "events", "Event", short_names=("ev",)),
    Kind(
        "policy/v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        subresources=("status",),
    ),
]

BY_PATH = {(k.group_version, k.plural): k for k in KINDS}
GROUP_VERSIONS = list(dict.fromkeys(k.group_version for k in KINDS))


def kind_of(group_version: str, plural: str) -> Kind | None:
    """The kind served at ``group_version``/``plural``, or None."""
    return BY_PATH.get((group_version, plural))


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list() -> dict[str, Any]:
    groups = []
    for gv in GROUP_VERSIONS:
        if "/" not in gv:
            continue
        group, version = gv.split("/")
        entry = {"groupVersion": gv, "version": version}
        groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    for g in api_group_list()["groups"]:
        if g["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **g}
    return None


def resource_list(group_version: str) -> dict[str, Any] | None:
    kinds = [k for k in KINDS if k.group_version == group_version]
    if not kinds:
        return None
    resources = []
    for k in kinds:
        resources.append(
            {
                "name": k.plural,
                "singularName": k.kind.lower(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ALL_VERBS,
                "shortNames": list(k.short_names),
            }
        )
        for sub in k.subresources:
            verbs = {"log": ["get"], "proxy": ["create", "delete", "get", "patch", "update"]}.get(
                sub, ["get", "patch", "update"]
            )
            kind = "Scale" if sub == "scale" else k.kind
            resources.append(
                {
                    "name": f"{k.plural}/{sub}",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def openapi_path(group_version: str) -> str:
    return ("api/" if "/" not in group_version else "apis/") + group_version


def openapi_root() -> dict[str, Any]:
    paths = {}
    for gv in GROUP_VERSIONS:
        digest = hashlib.sha256(json.dumps(openapi_document(gv), sort_keys=True).encode()).hexdigest()[:16]
        paths[openapi_path(gv)] = {
            "serverRelativeURL": f"/openapi/v3/{openapi_path(gv)}?hash={digest.upper()}"
        }
    return {"paths": paths}


def openapi_document(group_version: str) -> dict[str, Any]:
    """One PATCH operation per kind, taking ``fieldValidation``: enough for client-go's query-param check."""
    paths = {}
    for k in KINDS:
        if k.group_version != group_version:
            continue
        scope = "namespaces/{namespace}/" if k.namespaced else ""
        paths[f"/{openapi_path(group_version)}/{scope}{k.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{k.kind}",
                "x-kubernetes-group-version-kind": {"group": k.group, "version": k.version, "kind": k.kind},
                "x-kubernetes-action": "patch",
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "schema": {"type": "string", "uniqueItems": True},
                    },
                    {
                        "name": "fieldManager",
                        "in": "query",
                        "schema": {"type": "string", "uniqueItems": True},
                    },
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (fake)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }

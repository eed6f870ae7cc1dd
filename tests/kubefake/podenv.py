"""A container's environment as the kubelet builds it: envFrom, env, valueFrom and ``$(VAR)`` expansion."""

from __future__ import annotations

import base64
import re
from typing import Any

from .store import ApiError, Store


def expand(text: str, env: dict[str, str]) -> str:
    """``$(VAR)`` as the kubelet expands it in command, args and env values (``$$`` escapes)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


class PodEnvironment:
    """Env resolution for a pod worker (mixed into ``PodWorker``)."""

    store: Store
    pod: dict[str, Any]
    ns: str
    name: str
    uid: str
    ip: str | None
    node_ip: str

    def environment(self, spec: dict[str, Any]) -> dict[str, str]:
        """The container's env (envFrom, then env); ApiError when a source is missing."""
        ns, env = self.ns, {}

        def source(plural: str, ref: dict[str, Any]) -> dict[str, str] | None:
            obj = self.store.get("v1", plural, ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    return None
                raise ApiError(400, "Missing", f'{plural[:-1]} "{ref.get("name")}" not found')
            data = obj.get("data") or {}
            if plural == "secrets":
                return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
            return dict(data)

        for item in spec.get("envFrom") or []:
            plural, ref = (
                ("configmaps", item["configMapRef"])
                if "configMapRef" in item
                else ("secrets", item.get("secretRef", {}))
            )
            for k, v in (source(plural, ref) or {}).items():
                env[item.get("prefix", "") + k] = v
        for item in spec.get("env") or []:
            if "valueFrom" not in item:
                env[item["name"]] = expand(str(item.get("value", "")), env)
                continue
            frm = item["valueFrom"]
            if "fieldRef" in frm:
                env[item["name"]] = self.field(frm["fieldRef"]["fieldPath"])
                continue
            if "resourceFieldRef" in frm:
                env[item["name"]] = "0"
                continue
            plural, ref = (
                ("secrets", frm["secretKeyRef"])
                if "secretKeyRef" in frm
                else ("configmaps", frm["configMapKeyRef"])
            )
            data = source(plural, ref)
            if data is None:
                continue
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                kind = "Secret" if plural == "secrets" else "ConfigMap"
                raise ApiError(400, "Missing", f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
            env[item["name"]] = data[ref["key"]]
        return env

    def field(self, path: str) -> str:
        meta = self.pod["metadata"]
        m = re.match(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        return {
            "metadata.name": self.name,
            "metadata.namespace": self.ns,
            "metadata.uid": self.uid,
            "status.podIP": self.ip or "",
            "status.hostIP": self.node_ip,
            "spec.nodeName": self.pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default"),
        }.get(path, "")

"""Pod volumes as host directories bind-mounted into the containers (the engine shares this filesystem).

Supported: ``emptyDir`` (shared by the pod's containers, init containers included), ``configMap`` and
``secret`` (each key a file, ``items`` honoured; written once when the pod starts, not kept in sync).
Other volume types (PVCs, hostPath, projected ...) become empty directories.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

from .store import ApiError, Store


def files_of(store: Store, namespace: str, volume: dict[str, Any]) -> dict[str, bytes] | None:
    """The files of a configMap/secret volume (None for other types); ApiError when its source is missing."""
    if "configMap" in volume:
        source, plural, kind = volume["configMap"], "configmaps", "configmap"
    elif "secret" in volume:
        source, plural, kind = volume["secret"], "secrets", "secret"
    else:
        return None
    name = source.get("name") or source.get("secretName", "")
    obj = store.get("v1", plural, namespace, name)
    if obj is None:
        if source.get("optional"):
            return {}
        raise ApiError(
            400,
            "FailedMount",
            f'MountVolume.SetUp failed for volume "{volume["name"]}" : {kind} "{name}" not found',
        )
    data: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        data[key] = base64.b64decode(value) if plural == "secrets" else str(value).encode()
    for key, value in (obj.get("binaryData") or {}).items():
        data[key] = base64.b64decode(value)
    items = source.get("items")
    if items:
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}
    return data


def prepare(store: Store, root: Path, pod: dict[str, Any]) -> dict[str, Path]:
    """Make the pod's volume directories under ``root`` (once); their host paths by volume name."""
    dirs: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        path = root / volume["name"]
        if not path.exists():
            files = files_of(store, pod["metadata"]["namespace"], volume)
            path.mkdir(parents=True)
            path.chmod(0o777)
            for name, content in (files or {}).items():
                target = path / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                target.chmod(0o644)
        dirs[volume["name"]] = path
    return dirs


def binds(container: dict[str, Any], dirs: dict[str, Path]) -> list[str]:
    """Docker bind specs (``host:container:ro|rw``) for the container's volumeMounts."""
    result = []
    for mount in container.get("volumeMounts") or []:
        host = dirs.get(mount["name"])
        if host is None:
            continue
        if mount.get("subPath"):
            host = host / mount["subPath"]
        mode = "ro" if mount.get("readOnly") else "rw"
        result.append(f"{host}:{mount['mountPath']}:{mode}")
    return result


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)

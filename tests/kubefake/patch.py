"""PATCH bodies: JSON merge patch, an approximate strategic merge patch, JSON patch, and server-side apply.

Strategic merge here: a JSON merge patch whose lists of objects merge by a key (``name``, else
``containerPort``/``port``/``mountPath``/``ip``), whose ``{"$patch": "delete"}`` items delete, whose
``$patch: replace`` maps replace, and whose other ``$`` directives (``$setElementOrder``,
``$retainKeys``, ``$deleteFromPrimitiveList``) are honoured only where it matters or dropped.
Server-side apply: a strategic merge of the applied body, after pruning every field the same field
manager set last time and no longer sets (so a removed env var or limit vanishes); no managedFields,
no conflicts between managers.
"""

from __future__ import annotations

import copy
from typing import Any

from .store import ApiError

MERGE_KEYS = ("name", "containerPort", "port", "mountPath", "devicePath", "ip")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_key(items: list[Any]) -> str | None:
    dicts = [i for i in items if isinstance(i, dict)]
    if not dicts or len(dicts) != len(items):
        return None
    for key in MERGE_KEYS:
        if all(key in d or d.get("$patch") for d in dicts) and any(key in d for d in dicts):
            return key
    return None


def strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [
            strip_directives(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")
        ]
    return value


def merge_list(target: Any, patch: list[Any], order: list[Any] | None) -> list[Any]:
    current = target if isinstance(target, list) else []
    key = merge_key(patch) or merge_key(current) if patch or current else None
    if key is None or not all(isinstance(i, dict) for i in current + patch):
        return strip_directives(patch)
    result = [copy.deepcopy(i) for i in current]
    for item in patch:
        index = next((n for n, i in enumerate(result) if i.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strip_directives(item))
        else:
            result[index] = strategic_merge(result[index], item)
    if order:
        rank = {o.get(key): n for n, o in enumerate(order) if isinstance(o, dict)}
        result.sort(key=lambda i: rank.get(i.get(key), len(rank)))
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch (approximate, see the module docstring)."""
    if not isinstance(patch, dict):
        return strip_directives(patch)
    if patch.get("$patch") == "replace":
        return strip_directives(patch)
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = merge_list(result.get(key), value, patch.get(f"$setElementOrder/{key}"))
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    return result


def json_patch(target: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902: add, remove, replace, test, move, copy."""
    doc = copy.deepcopy(target)

    def split(path: str) -> list[str]:
        return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]

    def parent(path: str) -> tuple[Any, str]:
        parts = split(path)
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    def get(path: str) -> Any:
        node = doc
        for part in split(path):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        try:
            if kind == "test":
                if get(path) != op.get("value"):
                    raise ApiError(
                        422,
                        "Invalid",
                        f"the server rejected our request due to an error in our "
                        f"request: testing value {path} failed",
                    )
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(get(op["from"]))
                if kind == "move":
                    node, last = parent(op["from"])
                    node.pop(int(last)) if isinstance(node, list) else node.pop(last)
                kind, op = "add", {"path": path, "value": value}
            node, last = parent(path)
            if kind == "add":
                if isinstance(node, list):
                    node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
                else:
                    node[last] = copy.deepcopy(op["value"])
            elif kind == "replace":
                if isinstance(node, list):
                    node[int(last)] = copy.deepcopy(op["value"])
                else:
                    if last not in node:
                        raise KeyError(last)
                    node[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                node.pop(int(last)) if isinstance(node, list) else node.pop(last)
            else:
                raise ApiError(400, "BadRequest", f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: "
                f"{kind} operation does not apply: doc is missing path: {path!r} ({exc})",
            ) from exc
    return doc


def prune(live: Any, previous: Any, applied: Any) -> Any:
    """Remove from ``live`` what the manager set in ``previous`` and no longer sets in ``applied``."""
    if isinstance(live, dict) and isinstance(previous, dict):
        applied = applied if isinstance(applied, dict) else {}
        result = dict(live)
        for key, value in previous.items():
            if key not in applied:
                result.pop(key, None)
            elif key in result:
                result[key] = prune(result[key], value, applied[key])
        return result
    if isinstance(live, list) and isinstance(previous, list) and isinstance(applied, list):
        key = merge_key(previous) or merge_key(applied)
        if key is None:
            return live
        wanted = {i.get(key): i for i in applied if isinstance(i, dict)}
        before = {i.get(key): i for i in previous if isinstance(i, dict)}
        result = []
        for item in live:
            name = item.get(key) if isinstance(item, dict) else None
            if name in before and name not in wanted:
                continue
            if name in before:
                item = prune(item, before[name], wanted[name])
            result.append(item)
        return result
    return live


def apply(
    live: dict[str, Any] | None, previous: dict[str, Any] | None, applied: dict[str, Any]
) -> dict[str, Any]:
    """Server-side apply of ``applied`` onto ``live`` (None: create), given the manager's last body."""
    if live is None:
        return strip_directives(copy.deepcopy(applied))
    base = prune(copy.deepcopy(live), previous, applied) if previous is not None else copy.deepcopy(live)
    return strategic_merge(base, applied)

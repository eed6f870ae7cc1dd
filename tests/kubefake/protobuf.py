"""Decode the protobuf request bodies client-go's typed clients send (Secrets, ConfigMaps, Namespaces).

Helm's release storage (Secrets) and ``kubectl create configmap|secret|namespace`` send
``application/vnd.kubernetes.protobuf`` and do not retry in JSON after a 415, so the fake reads them:
the ``k8s\\0`` magic, the ``runtime.Unknown`` envelope {1 typeMeta {1 apiVersion, 2 kind}, 2 raw}, then
the object. Only the fields those clients send are mapped; responses are always JSON.
"""

from __future__ import annotations

import base64
from typing import Any

from .store import ApiError

MAGIC = b"k8s\x00"
Fields = list[tuple[int, int, Any]]


def varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> Fields:
    """(field number, wire type, value) for each field: ints for varints, bytes for length-delimited."""
    out: Fields = []
    pos = 0
    while pos < len(data):
        tag, pos = varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 2:
            length, pos = varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def first(fs: Fields, number: int, default: Any = None) -> Any:
    return next((v for n, _, v in fs if n == number), default)


def string_map(fs: Fields, number: int, as_base64: bool = False) -> dict[str, str]:
    result = {}
    for n, _, entry in fs:
        if n != number:
            continue
        kv = fields(entry)
        key, value = first(kv, 1, b"").decode(), first(kv, 2, b"")
        result[key] = base64.b64encode(value).decode() if as_base64 else value.decode()
    return result


def owner_reference(data: bytes) -> dict[str, Any]:
    fs = fields(data)
    ref: dict[str, Any] = {
        "kind": first(fs, 1, b"").decode(),
        "name": first(fs, 3, b"").decode(),
        "uid": first(fs, 4, b"").decode(),
        "apiVersion": first(fs, 5, b"").decode(),
    }
    if first(fs, 6) is not None:
        ref["controller"] = bool(first(fs, 6))
    if first(fs, 7) is not None:
        ref["blockOwnerDeletion"] = bool(first(fs, 7))
    return ref


def object_meta(data: bytes) -> dict[str, Any]:
    fs = fields(data)
    meta: dict[str, Any] = {}
    for number, name in (
        (1, "name"),
        (2, "generateName"),
        (3, "namespace"),
        (5, "uid"),
        (6, "resourceVersion"),
    ):
        value = first(fs, number)
        if value:
            meta[name] = value.decode()
    for number, name in ((11, "labels"), (12, "annotations")):
        value = string_map(fs, number)
        if value:
            meta[name] = value
    refs = [owner_reference(v) for n, _, v in fs if n == 13]
    if refs:
        meta["ownerReferences"] = refs
    finalizers = [v.decode() for n, _, v in fs if n == 14]
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded Secret, ConfigMap or Namespace."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
    envelope = fields(body[len(MAGIC) :])
    type_meta = fields(first(envelope, 1, b""))
    api_version, kind = first(type_meta, 1, b"").decode(), first(type_meta, 2, b"").decode()
    raw = fields(first(envelope, 2, b""))
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": object_meta(first(raw, 1, b"")),
    }
    if kind == "Secret":
        obj["data"] = string_map(raw, 2, as_base64=True)
        secret_type = first(raw, 3)
        if secret_type:
            obj["type"] = secret_type.decode()
        string_data = string_map(raw, 4)
        if string_data:
            obj["stringData"] = string_data
        if first(raw, 5) is not None:
            obj["immutable"] = bool(first(raw, 5))
    elif kind == "ConfigMap":
        obj["data"] = string_map(raw, 2)
        binary = string_map(raw, 3, as_base64=True)
        if binary:
            obj["binaryData"] = binary
        if first(raw, 4) is not None:
            obj["immutable"] = bool(first(raw, 4))
    elif kind == "Namespace":
        pass
    elif kind == "DeleteOptions":
        obj = {"apiVersion": api_version, "kind": kind}
        if first(raw, 1) is not None:
            obj["gracePeriodSeconds"] = first(raw, 1)
        if first(raw, 4):
            obj["propagationPolicy"] = first(raw, 4).decode()
        if first(raw, 3) is not None:
            obj["orphanDependents"] = bool(first(raw, 3))
    else:
        raise ApiError(
            415, "UnsupportedMediaType", f"the fake cannot decode protobuf {kind or 'objects'}; send JSON"
        )
    return obj

"""``pods/NAME/exec`` over a WebSocket: the ``v4.channel.k8s.io`` protocol the kubernetes client speaks.

Each server frame is binary: one byte naming the channel (1 stdout, 2 stderr, 3 the Status at the end),
then the bytes. The command runs with ``docker exec`` in the pod's container; no stdin, no tty, no resize.
A client that closes the socket early leaves the command running, as on a real cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import urllib.parse
from typing import TYPE_CHECKING, Any

from .store import ApiError

if TYPE_CHECKING:
    from .server import Handler

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STDOUT, STDERR, STATUS = 1, 2, 3


def frame(payload: bytes, opcode: int = 2) -> bytes:
    """One unmasked, final frame (servers never mask)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + payload


def status(code: int) -> dict[str, Any]:
    """The Status the API server sends on the error channel when the command ends."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": f"command terminated with non-zero exit code: error executing command, exit code {code}",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }  # fmt: skip


def serve(handler: Handler, namespace: str, name: str) -> None:
    """Upgrade the request, run the command in the pod's container, stream its output and its end."""
    cluster = handler.server.cluster
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
    command = query.get("command") or []
    if not command:
        raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    pod = cluster.store.must_get("v1", "pods", namespace, name)
    containers = [c["name"] for c in pod["spec"]["containers"]]
    container = (query.get("container") or [containers[0]])[-1]
    runtime = cluster.controllers.runtime if cluster.controllers else None
    worker = runtime.worker(pod) if runtime else None
    box = worker.boxes.get(container) if worker else None
    if runtime is None or box is None or not box.id or "running" not in box.state:
        raise ApiError(400, "BadRequest", f"container {container} is not running in pod {name}")
    key = handler.headers.get("Sec-WebSocket-Key")
    if not key or "websocket" not in (handler.headers.get("Upgrade") or "").lower():
        raise ApiError(400, "BadRequest", "exec needs a WebSocket upgrade (SPDY is not served by this fake)")
    offered = [
        p.strip() for p in (handler.headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()
    ]
    protocol = "v4.channel.k8s.io" if "v4.channel.k8s.io" in offered else (offered[0] if offered else "")
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    if protocol:
        handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.close_connection = True
    api = runtime.client.api
    made = api.exec_create(box.id, command, stdout=True, stderr=True, stdin=False, tty=False)
    try:
        for out, err in api.exec_start(made["Id"], stream=True, demux=True):
            for channel, data in ((STDOUT, out), (STDERR, err)):
                if data:
                    handler.wfile.write(frame(bytes([channel]) + data))
                    handler.wfile.flush()
        code = int(api.exec_inspect(made["Id"]).get("ExitCode") or 0)
        handler.wfile.write(frame(bytes([STATUS]) + json.dumps(status(code)).encode()))
        handler.wfile.write(frame(struct.pack("!H", 1000), opcode=8))
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        return  # the client went away: the command goes on in the container

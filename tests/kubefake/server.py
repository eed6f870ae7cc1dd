"""HTTP front of the fake API server: routing, bodies, Status errors, lists, watches, logs, proxies.

Plain http on 127.0.0.1 (stdlib ``ThreadingHTTPServer``), no authentication: any bearer token passes.
"""

from __future__ import annotations

import contextlib
import json
import queue
import select
import socket
import sys
import threading
import traceback
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import yaml

from . import discovery, execws, patch, protobuf, tables
from .selectors import field_selector, label_selector
from .store import ApiError, Store, require_kind

if TYPE_CHECKING:
    from .cluster import FakeCluster

WATCH_CAP = 30.0


@dataclass
class Route:
    """A parsed resource path."""

    gv: str
    plural: str
    namespace: str
    name: str
    sub: str
    rest: str


def parse_route(path: str) -> Route | None:
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["api", "v1"]:
        gv, parts = "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        gv, parts = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    if not parts:
        return None
    if parts[0] == "namespaces" and len(parts) >= 3:
        ns, parts = parts[1], parts[2:]
    else:
        ns = ""
    plural = parts[0]
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    rest = "/".join(parts[3:])
    if plural == "namespaces" and ns == "" and name:
        return Route(gv, plural, "", name, sub, rest)
    return Route(gv, plural, ns, name, sub, rest)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stalls
    server: ApiServer

    def log_message(self, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    # ------------------------------------------------------------------------------------------ plumbing
    def send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, code: int, text: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def decoded_body(self) -> Any:
        raw = self.raw
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if not raw:
            return {}
        if kind == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(raw)
        try:
            if kind == "application/apply-patch+yaml":
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"the body of the request could not be decoded: {exc}") from exc

    def handle_any(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        self.server.cluster.requests.append((method, self.path, self.headers.get("Content-Type") or ""))
        length = int(self.headers.get("Content-Length") or 0)
        self.raw = self.rfile.read(length) if length else b""
        try:
            self.dispatch(method, url.path, query)
        except ApiError as err:
            self.send_json(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: answer like a server would, and say so on stderr
            traceback.print_exc(file=sys.stderr)
            self.send_json(500, ApiError(500, "InternalError", f"kubefake: {exc!r}").status())

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def do_PUT(self) -> None:
        self.handle_any("PUT")

    def do_PATCH(self) -> None:
        self.handle_any("PATCH")

    def do_DELETE(self) -> None:
        self.handle_any("DELETE")

    # ------------------------------------------------------------------------------------------ routing
    def dispatch(self, method: str, path: str, query: dict[str, str]) -> None:
        static = self.static(path)
        if static is not None:
            self.send_json(200, static)
            return
        route = parse_route(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.sub == "exec" and route.plural == "pods" and method in ("GET", "POST"):
            execws.serve(self, route.namespace, route.name)
            return
        if route.sub in ("log", "proxy") and route.plural in ("pods", "services"):
            self.subresource_io(method, route, query)
            return
        kind = require_kind(route.gv, route.plural)
        store: Store = self.server.cluster.store
        dry_run = "dryRun" in query
        if method == "GET" and not route.name:
            if query.get("watch") in ("true", "1"):
                self.watch(route, query)
            else:
                self.send_list(route, query)
        elif method == "GET" and route.sub == "scale":
            self.send_json(200, scale_of(store.must_get(route.gv, route.plural, route.namespace, route.name)))
        elif method == "GET":
            obj = store.must_get(route.gv, route.plural, route.namespace, route.name)
            if tables.wants_table(self.headers.get("Accept") or ""):
                obj = tables.table(kind.kind, [obj], store.rv, query.get("includeObject", ""))
            self.send_json(200, obj)
        elif method == "POST" and not route.name:
            body = self.decoded_body()
            self.send_json(201, store.create(route.gv, route.plural, route.namespace, body, dry_run=dry_run))
        elif method == "PUT" and route.name:
            body = self.decoded_body()
            if route.sub == "scale":
                self.send_json(200, self.set_scale(route, body.get("spec", {}).get("replicas")))
                return
            self.send_json(
                200,
                store.replace(
                    route.gv,
                    route.plural,
                    route.namespace,
                    route.name,
                    body,
                    subresource=route.sub or None,
                    dry_run=dry_run,
                ),
            )
        elif method == "PATCH" and route.name:
            self.patch(route, query, dry_run)
        elif method == "DELETE":
            raw = self.decoded_body() or {}
            policy = query.get("propagationPolicy") or raw.get("propagationPolicy")
            if policy is None and (query.get("orphanDependents") == "true" or raw.get("orphanDependents")):
                policy = "Orphan"
            if route.name:
                self.send_json(
                    200,
                    store.delete(
                        route.gv, route.plural, route.namespace, route.name, policy, dry_run=dry_run
                    ),
                )
            else:
                items, _ = store.select(
                    route.gv, route.plural, route.namespace if kind.namespaced else None, self.matcher(query)
                )
                for item in items:
                    store.delete(
                        route.gv,
                        route.plural,
                        item["metadata"].get("namespace", ""),
                        item["metadata"]["name"],
                        policy,
                        dry_run=dry_run,
                    )
                self.send_json(200, list_of(kind, items, store.rv))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def static(self, path: str) -> Any:
        path = path.rstrip("/")
        if path == "/version":
            return discovery.SERVER_VERSION
        if path == "/api":
            return discovery.api_versions()
        if path == "/apis":
            return discovery.api_group_list()
        if path == "/openapi/v3":
            return discovery.openapi_root()
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/") :].split("/")
            gv = rest[1] if rest[0] == "api" else "/".join(rest[1:3])
            if gv in discovery.GROUP_VERSIONS:
                return discovery.openapi_document(gv)
            return None
        if path in ("/healthz", "/readyz", "/livez"):
            return "ok"
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"]:
            return discovery.resource_list("v1")
        if parts[0] == "apis" and len(parts) == 3:
            return discovery.resource_list(f"{parts[1]}/{parts[2]}")
        if parts[0] == "apis" and len(parts) == 2:
            return discovery.api_group(parts[1])
        return None

    def matcher(self, query: dict[str, str]) -> Any:
        labels, fields_ = (
            label_selector(query.get("labelSelector")),
            field_selector(query.get("fieldSelector")),
        )
        return lambda obj: labels(obj) and fields_(obj)

    def send_list(self, route: Route, query: dict[str, str]) -> None:
        kind = require_kind(route.gv, route.plural)
        items, rv = self.server.cluster.store.select(
            route.gv, route.plural, route.namespace if kind.namespaced else None, self.matcher(query)
        )
        if tables.wants_table(self.headers.get("Accept") or ""):
            self.send_json(200, tables.table(kind.kind, items, rv, query.get("includeObject", "")))
            return
        self.send_json(200, list_of(kind, items, rv))

    def patch(self, route: Route, query: dict[str, str], dry_run: bool) -> None:
        store = self.server.cluster.store
        kind_of_patch = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self.decoded_body()
        with store.lock:
            key = (
                route.gv,
                route.plural,
                route.namespace if require_kind(route.gv, route.plural).namespaced else "",
                route.name,
            )
            live = store.get(*key)
            if route.sub == "scale":
                if live is None:
                    store.must_get(*key)
                replicas = patch.merge_patch(scale_of(live), body).get("spec", {}).get("replicas")
                self.send_json(200, self.set_scale(route, replicas))
                return
            if kind_of_patch == "application/apply-patch+yaml":
                manager = query.get("fieldManager", "")
                previous = store.applied.get((key, manager))
                new = patch.apply(live, previous, body)
                if live is None:
                    result = store.create(route.gv, route.plural, route.namespace, new, dry_run=dry_run)
                    code = 201
                else:
                    new.setdefault("metadata", {}).pop("resourceVersion", None)
                    result = store.replace(*key, new, subresource=route.sub or None, dry_run=dry_run)
                    code = 200
                if not dry_run:
                    store.applied[((route.gv, route.plural, key[2], result["metadata"]["name"]), manager)] = (
                        body
                    )
                self.send_json(code, result)
                return
            if live is None:
                store.must_get(*key)
            if kind_of_patch == "application/json-patch+json":
                new = patch.json_patch(live, body)
            elif kind_of_patch == "application/merge-patch+json":
                new = patch.merge_patch(live, body)
            else:
                new = patch.strategic_merge(live, body)
            wanted_rv = ((body if isinstance(body, dict) else {}).get("metadata") or {}).get(
                "resourceVersion"
            )
            new.setdefault("metadata", {})["resourceVersion"] = (
                wanted_rv or live["metadata"]["resourceVersion"]
            )
            self.send_json(200, store.replace(*key, new, subresource=route.sub or None, dry_run=dry_run))

    def set_scale(self, route: Route, replicas: Any) -> dict[str, Any]:
        store = self.server.cluster.store
        obj = store.update(
            route.gv,
            route.plural,
            route.namespace,
            route.name,
            lambda o: o["spec"].__setitem__("replicas", int(replicas)),
        )
        if obj is None:
            store.must_get(route.gv, route.plural, route.namespace, route.name)
        return scale_of(obj)

    # ------------------------------------------------------------------------------------------ watch
    def watch(self, route: Route, query: dict[str, str]) -> None:
        store: Store = self.server.cluster.store
        kind = require_kind(route.gv, route.plural)
        match = self.matcher(query)
        ns = route.namespace if kind.namespaced else None
        timeout = min(float(query.get("timeoutSeconds") or WATCH_CAP), WATCH_CAP)
        rv_text = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") == "true" or rv_text in ("", "0")
        if initial:
            items, rv = store.select(route.gv, route.plural, ns, match)
        else:
            items, rv = [], int(rv_text)
            store.events_after(rv)  # 410 when too old
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(event: dict[str, Any]) -> None:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for item in items:
            emit({"type": "ADDED", "object": item})
        if query.get("sendInitialEvents") == "true" and query.get("allowWatchBookmarks") == "true":
            emit(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": kind.kind,
                        "apiVersion": kind.group_version,
                        "metadata": {
                            "resourceVersion": str(rv),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                }
            )
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set() and not store.closed:
                for ev_rv, ev_type, key, obj in store.events_after(rv):
                    rv = ev_rv
                    if (
                        key[0] == route.gv
                        and key[1] == route.plural
                        and (ns is None or key[2] == ns)
                        and match(obj)
                    ):
                        emit({"type": ev_type, "object": obj})
                store.wait(rv, 0.5)
            self.wfile.write(b"0\r\n\r\n")
        except ApiError:
            self.wfile.write(b"0\r\n\r\n")
        finally:
            timer.cancel()
        self.close_connection = True

    # ------------------------------------------------------------------------------------------ log, proxy
    def follow_log(self, stream: Any) -> None:
        """Stream a followed log as a kubelet does: chunked ``text/plain``, each chunk as docker gives it,
        until the container ends (then the last chunk), the client goes, or the server stops."""
        chunks: queue.Queue[bytes | None] = queue.Queue()

        def read() -> None:
            try:
                for chunk in stream:
                    chunks.put(chunk)
            except Exception:  # the stream was closed under us: its end
                pass
            finally:
                chunks.put(None)

        reader = threading.Thread(target=read, name="kubefake-log-follow", daemon=True)
        reader.start()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while not self.server.cluster.store.closed:
                try:
                    chunk = chunks.get(timeout=0.2)
                except queue.Empty:
                    if self.client_gone():
                        break
                    continue
                if chunk is None:
                    self.wfile.write(b"0\r\n\r\n")
                    break
                if chunk:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
        except OSError:  # the client went while we wrote
            pass
        finally:
            with contextlib.suppress(Exception):
                stream.close()
            reader.join(5)
        self.close_connection = True

    def client_gone(self) -> bool:
        """Whether the client closed its end (a log follower stopped reading)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def subresource_io(self, method: str, route: Route, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        if route.sub == "log":
            if query.get("follow") in ("true", "1") and query.get("previous") not in ("true", "1"):
                self.follow_log(cluster.pod_log_stream(route.namespace, route.name, query))
                return
            text = cluster.pod_log(route.namespace, route.name, query)
            self.send_text(200, text)
            return
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the fake proxies GET only")
        path = "/" + route.rest
        url_query = urllib.parse.urlsplit(self.path).query
        code, headers, body = cluster.proxy(route.plural, route.namespace, route.name, path, url_query)
        self.send_response(code)
        for name, value in headers:
            if name.lower() in ("content-type", "cache-control", "location"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def list_of(kind: discovery.Kind, items: list[dict[str, Any]], rv: int) -> dict[str, Any]:
    return {
        "kind": f"{kind.kind}List",
        "apiVersion": kind.group_version,
        "metadata": {"resourceVersion": str(rv)},
        "items": items,
    }


def scale_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    obj = obj or {}
    meta = obj.get("metadata", {})
    selector = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
        },
    }


class ApiServer(ThreadingHTTPServer):
    """The HTTP server; ``close`` ends every open connection so that no handler thread outlives it."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), Handler)

    def close(self) -> None:
        self.shutdown()
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()

"""``FakeCluster``: the API server, its store and its controllers, started and stopped as one."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .controllers import Controllers
from .selectors import match_labels
from .server import ApiServer
from .store import ApiError, Store


class FakeCluster:
    """A one-node fake Kubernetes cluster for tests; see the package docstring for what it is not."""

    def __init__(
        self,
        docker_host: str | None = None,
        node_ip: str = "127.0.0.1",
        capacity: dict[str, str] | None = None,
    ) -> None:
        self.docker_host = docker_host
        self.node_ip = node_ip
        self.capacity = dict(capacity or {"cpu": "4", "memory": "8Gi"})
        self.store = Store()
        self.requests: list[tuple[str, str, str]] = []
        self.server: ApiServer | None = None
        self.thread: threading.Thread | None = None
        self.controllers: Controllers | None = None
        self.url = ""

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> FakeCluster:
        """Bind 127.0.0.1 on a free port, serve, and start the controllers."""
        if self.server is not None:
            return self
        self.server = ApiServer(self)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="kubefake-http", daemon=True
        )
        self.thread.start()
        self.controllers = Controllers(self.store, self.docker_host, self.node_ip, self.capacity)
        self.controllers.start()
        return self

    def stop(self) -> None:
        """Stop serving, stop the controllers and remove every container this cluster started (by id)."""
        self.store.close()
        if self.server is not None:
            self.server.close()
            if self.thread is not None:
                self.thread.join(10)
            self.server = None
        if self.controllers is not None:
            self.controllers.stop()
            self.controllers = None

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def kubeconfig(self, path: str | Path, context: str = "fake", namespace: str = "default") -> Path:
        """Write a kubeconfig for this cluster (a dummy token: the fake does no auth) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: {context}\n  cluster:\n    server: {self.url}\n"
            f"users:\n- name: {context}\n  user:\n    token: fake-token\n"
            f"contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n"
            f"    namespace: {namespace}\n"
            f"current-context: {context}\n"
        )
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------------------------------ assertions
    def get(self, group_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        return self.store.get(group_version, plural, namespace or "", name)

    def objects(self, group_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every stored object of a kind (in one namespace, or all)."""
        items, _ = self.store.select(group_version, plural, namespace)
        return items

    # ------------------------------------------------------------------------------------------ pods I/O
    def pod_log(self, namespace: str, name: str, query: dict[str, str]) -> bytes:
        """``GET .../pods/NAME/log`` without ``follow``: what the container logged, as the query asks."""
        pod, container, runtime = self._log_target(namespace, name, query)
        return runtime.logs(
            pod,
            container,
            previous=query.get("previous") in ("true", "1"),
            tail=_tail_lines(query),
            timestamps=query.get("timestamps") in ("true", "1"),
            since=_log_since(query),
        )

    def pod_log_stream(self, namespace: str, name: str, query: dict[str, str]) -> Any:
        """``GET .../pods/NAME/log?follow=true``: docker's stream of the container's log (ends when the
        container does; ``close()`` ends it sooner)."""
        pod, container, runtime = self._log_target(namespace, name, query)
        timestamps = query.get("timestamps") in ("true", "1")
        return runtime.follow(pod, container, _tail_lines(query), timestamps, _log_since(query))

    def _log_target(
        self, namespace: str, name: str, query: dict[str, str]
    ) -> tuple[dict[str, Any], str, Any]:
        pod = self.store.must_get("v1", "pods", namespace, name)
        names = [c["name"] for c in pod["spec"].get("initContainers") or []] + [
            c["name"] for c in pod["spec"]["containers"]
        ]
        container = query.get("container") or ""
        if not container:
            if len(pod["spec"]["containers"]) != 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]",
                )
            container = (
                names[-1] if not pod["spec"].get("initContainers") else pod["spec"]["containers"][0]["name"]
            )
        if container not in names:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        runtime = self.controllers.runtime if self.controllers else None
        if runtime is None:
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
            )
        return pod, container, runtime

    def proxy(
        self, plural: str, namespace: str, name: str, path: str, query: str
    ) -> tuple[int, list[Any], bytes]:
        """Forward a GET to a Ready pod (of the service, or the pod itself) through its published port."""
        name, _, port = name.partition(":")
        runtime = self.controllers.runtime if self.controllers else None
        if plural == "services":
            svc = self.store.must_get("v1", "services", namespace, name)
            ports = svc["spec"].get("ports") or []
            chosen = next(
                (p for p in ports if not port or str(p.get("name")) == port or str(p["port"]) == port), None
            )
            if chosen is None:
                raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
            target = chosen.get("targetPort", chosen["port"])
            selector = svc["spec"].get("selector") or {}
            pods, _ = self.store.select(
                "v1",
                "pods",
                namespace,
                lambda p: (
                    bool(selector) and match_labels({"matchLabels": selector}, p["metadata"].get("labels"))
                ),
            )
            pods = [p for p in pods if ready(p)]
            if not pods or runtime is None:
                raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
            pod = pods[0]
        else:
            pod = self.store.must_get("v1", "pods", namespace, name)
            target = port or next(
                (p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []), 80
            )
            if runtime is None or pod["status"].get("phase") != "Running":
                raise ApiError(503, "ServiceUnavailable", f'pod "{name}" is not running')
        address = runtime.address(pod, target)
        if address is None:
            raise ApiError(
                503, "ServiceUnavailable", f"no published port {target} on pod {pod['metadata']['name']}"
            )
        url = f"http://{address[0]}:{address[1]}{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, list(response.headers.items()), response.read()
        except urllib.error.HTTPError as err:
            return err.code, list(err.headers.items()), err.read()
        except OSError as err:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {err}") from err


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _tail_lines(query: dict[str, str]) -> int | None:
    text = query.get("tailLines")
    if text is None:
        return None
    if not text.lstrip("-").isdigit():
        raise ApiError(400, "BadRequest", f"tailLines: Invalid value: {text!r}")
    return max(int(text), 0)


def _log_since(query: dict[str, str]) -> float | None:
    """``sinceSeconds`` or ``sinceTime`` (at most one, as the API server checks), in epoch seconds."""
    seconds, moment = query.get("sinceSeconds"), query.get("sinceTime")
    if seconds is not None and moment is not None:
        raise ApiError(400, "BadRequest", "at most one of sinceTime or sinceSeconds may be specified")
    if seconds is not None:
        if not seconds.isdigit() or int(seconds) < 1:
            raise ApiError(400, "BadRequest", "sinceSeconds: Invalid value: must be greater than 0")
        return time.time() - int(seconds)
    if moment is not None:
        try:
            return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ApiError(400, "BadRequest", f"sinceTime: Invalid value: {moment!r}") from None
    return None

"""The Kubernetes API through the official client: objects as plain dicts, errors translated here.

``kubernetes`` is imported only by ``Kube.connect`` (its configuration and ``ApiClient``, 0.2-0.5 s),
never on the path of ``invoke --list`` or ``invoke preflight``; the typed API classes (0.9 s more) only
for ``run: exec``. Every request carries a timeout; a Kubernetes ``Status`` error becomes a
``KubeError`` with its code and reason, and a connection failure a ``KubeError`` with code 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, PipelineError

Object = dict[str, Any]
REQUEST_TIMEOUT = 15.0  # seconds for one request when the stage leaves more


class KubeError(PipelineError):
    """The API server refused a request (``code``, ``reason``), or could not be reached (code 0)."""

    def __init__(self, message: str, code: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def kubeconfig_path(configured: str, environ: dict[str, str] | os._Environ[str]) -> str:
    """The kubeconfig file: the configured one, else the first of $KUBECONFIG, else ~/.kube/config."""
    if configured:
        return os.path.expanduser(configured)
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed[0] if listed else os.path.expanduser("~/.kube/config")


class Kube:
    """Namespaced CRUD, pod logs, events, exec and the service proxy of one cluster.

    Requests go through the client's ``ApiClient`` (its kubeconfig handling, auth and TLS) by path:
    the typed API classes would cost about 0.9 s more to import (their models are pydantic classes)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    @classmethod
    def connect(cls, kubeconfig: str, context: str, namespace: str, key: str) -> Kube:
        """A client from the kubeconfig file; a missing file or context is a ConfigError naming ``key``."""
        if not Path(kubeconfig).is_file():
            raise ConfigError(f"{key}.kubeconfig: {kubeconfig} does not exist (set it, or $KUBECONFIG)")
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        try:
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context or None
            )
        except ConfigException as exc:
            what = f"context {context!r}" if context else "the current context"
            raise ConfigError(f"{key}.kube_context: {what} of {kubeconfig} cannot be used: {exc}") from None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{key}.kubeconfig: {kubeconfig} is not a kubeconfig: {exc}") from None
        api.configuration.retries = 1
        return cls(api, namespace)

    def close(self) -> None:
        """Close the client's connection pool."""
        self.api.close()

    # -- requests ------------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, timeout: float, query: dict[str, str] | None = None, body: Any = None
    ) -> tuple[int, str]:
        """One request under a timeout: the status and the body's text. A connection failure is a
        KubeError with code 0; a status is returned as it is."""
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json, */*"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        seconds = max(0.5, min(timeout, REQUEST_TIMEOUT))
        try:
            params = self.api.param_serialize(
                method=method, resource_path=path, query_params=list((query or {}).items()),
                header_params=headers, body=body, auth_settings=["BearerToken"],
            )  # fmt: skip
            response = self.api.call_api(*params, _request_timeout=seconds)
            response.read()
        except (HTTPError, OSError) as exc:
            raise KubeError(f"the API server cannot be reached: {type(exc).__name__}: {exc}") from None
        return int(response.status), bytes(response.data or b"").decode("utf-8", errors="replace")

    def _object(self, method: str, path: str, timeout: float, **kwargs: Any) -> Object:
        """A request whose answer is a JSON object; a status of 400 or more is a KubeError."""
        status, text = self.request(method, path, timeout, **kwargs)
        if status >= 400:
            raise _translated(status, text)
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            raise KubeError("the API server answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise KubeError("the API server answered something that is not a JSON object")
        return data

    def path(self, kind: str, name: str = "") -> str:
        """The path of a kind (``configmap``, ``lease``, ``job``...) in the namespace, or of an object."""
        prefix, plural = _KINDS[kind]
        base = f"{prefix}/namespaces/{self.namespace}/{plural}"
        return f"{base}/{name}" if name else base

    def get(self, kind: str, name: str, timeout: float) -> Object | None:
        """One object, None when it does not exist."""
        try:
            return self._object("GET", self.path(kind, name), timeout)
        except KubeError as exc:
            if exc.code == 404:
                return None
            raise

    def select(self, kind: str, timeout: float, selector: str = "", fields: str = "") -> list[Object]:
        """Objects of ``kind`` in the namespace matching a label (and field) selector."""
        query = {k: v for k, v in (("labelSelector", selector), ("fieldSelector", fields)) if v}
        items: list[Object] = self._object("GET", self.path(kind), timeout, query=query).get("items") or []
        return items

    def create(self, kind: str, body: Object, timeout: float) -> Object:
        """Create an object; 409 (it exists) is a KubeError with code 409."""
        return self._object("POST", self.path(kind), timeout, body=body)

    def replace(self, kind: str, body: Object, timeout: float) -> Object:
        """Replace an object at its ``metadata.resourceVersion`` (409 when someone wrote it since)."""
        return self._object("PUT", self.path(kind, body["metadata"]["name"]), timeout, body=body)

    def delete(self, kind: str, name: str, timeout: float, resource_version: str = "") -> bool:
        """Delete an object (its dependents in the background); False when it was already gone."""
        options: Object = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if resource_version:
            options["preconditions"] = {"resourceVersion": resource_version}
        try:
            self._object("DELETE", self.path(kind, name), timeout, body=options)
        except KubeError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def create_namespace(self, timeout: float) -> None:
        """Create the namespace (it existing already is fine)."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        try:
            self._object("POST", "/api/v1/namespaces", timeout, body=body)
        except KubeError as exc:
            if exc.code != 409:
                raise

    def log(self, pod: str, container: str, timeout: float, previous: bool = False, tail: int = 200) -> str:
        """The last ``tail`` lines of a container's log (of its previous run with ``previous``)."""
        query = {"tailLines": str(tail), **({"container": container} if container else {})}
        if previous:
            query["previous"] = "true"
        status, text = self.request("GET", self.path("pod", pod) + "/log", timeout, query=query)
        if status >= 400:
            raise _translated(status, text)
        return text

    def open_log(self, pod: str, query: dict[str, str], timeout: tuple[float, float | None]) -> Any:
        """A pod's log as a stream (``follow=true`` keeps it open while the container runs): the urllib3
        response, read with ``stream()``; ``timeout`` is (connect, read), read None for no limit."""
        from urllib3.exceptions import HTTPError

        try:
            params = self.api.param_serialize(
                method="GET", resource_path=self.path("pod", pod) + "/log",
                query_params=list(query.items()), header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
            )  # fmt: skip
            response = self.api.call_api(*params, _request_timeout=timeout)
            if int(response.status) >= 400:
                text = bytes(response.read() or b"").decode("utf-8", errors="replace")
                raise _translated(int(response.status), text)
        except (HTTPError, OSError) as exc:
            raise KubeError(f"the API server cannot be reached: {type(exc).__name__}: {exc}") from None
        return response.response

    def events(self, name: str, timeout: float) -> list[Object]:
        """The events about an object, oldest first."""
        items = self.select("event", timeout, fields=f"involvedObject.name={name}")
        return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def exec(
        self, pod: str, container: str, argv: list[str], timeout: float, interrupt: Any = None
    ) -> tuple[int | None, str, str]:
        """Run argv in a container (the API server's exec, over a WebSocket): exit code, stdout, stderr.
        The code is None when ``timeout`` passed or ``interrupt()`` said stop first (the stream is closed
        then). Only here is the typed API imported (about 0.6 s): only ``run: exec`` needs it."""
        import time

        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream
        from urllib3.exceptions import HTTPError

        try:
            client = stream(
                CoreV1Api(self.api).connect_get_namespaced_pod_exec, pod, self.namespace, command=argv,
                container=container or None, stdout=True, stderr=True, stdin=False, tty=False,
                _preload_content=False, _request_timeout=max(1.0, min(timeout, REQUEST_TIMEOUT)),
            )  # fmt: skip
        except ApiException as exc:
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            raise _translated(int(exc.status or 0), body, str(exc.reason or "")) from None
        except (HTTPError, OSError) as exc:
            raise KubeError(f"exec in {pod} failed: {type(exc).__name__}: {exc}") from None
        out: list[str] = []
        err: list[str] = []
        end = time.monotonic() + timeout
        try:
            while client.is_open():
                if time.monotonic() >= end or (interrupt is not None and interrupt()):
                    return None, "".join(out), "".join(err)
                client.update(timeout=min(0.5, max(0.0, end - time.monotonic())))
                if client.peek_stdout():
                    out.append(client.read_stdout())
                if client.peek_stderr():
                    err.append(client.read_stderr())
            out.append(client.read_stdout() or "")
            err.append(client.read_stderr() or "")
            try:
                code = client.returncode
            except (KeyError, IndexError, TypeError, ValueError):
                code = 1
            return (1 if code is None else int(code)), "".join(out), "".join(err)
        except (OSError, ValueError) as exc:  # the websocket broke
            raise KubeError(f"exec in {pod} broke off: {type(exc).__name__}: {exc}") from None
        finally:
            client.close()

    def proxy_get(self, service: str, path: str, timeout: float) -> tuple[int, str]:
        """GET ``path`` of a Service (``name:port``) through the API server's proxy: status and body."""
        return self.request("GET", self.path("service", service) + "/proxy/" + path.lstrip("/"), timeout)


_KINDS = {
    "configmap": ("/api/v1", "configmaps"), "pod": ("/api/v1", "pods"), "event": ("/api/v1", "events"),
    "service": ("/api/v1", "services"), "lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "job": ("/apis/batch/v1", "jobs"), "deployment": ("/apis/apps/v1", "deployments"),
    "statefulset": ("/apis/apps/v1", "statefulsets"), "daemonset": ("/apis/apps/v1", "daemonsets"),
    "replicaset": ("/apis/apps/v1", "replicasets"),
}  # fmt: skip


def _translated(status: int, body: str, reason: str = "") -> KubeError:
    """An error answer as a KubeError with the Status message the server sent."""
    message = body.strip()[:300]
    try:
        found = json.loads(body)
        if isinstance(found, dict):
            message = str(found.get("message") or message)
            reason = str(found.get("reason") or reason)
    except ValueError:
        pass
    return KubeError(
        f"the API server answered {status} {reason}: {message}".replace("  ", " "), status, reason
    )

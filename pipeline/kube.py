"""The Kubernetes API through the official client: objects as plain dicts, errors translated here.

``kubernetes`` is imported only by ``Kube.connect`` (0.3-0.8 s): never on the path of ``invoke --list``
or ``invoke preflight``. Every request carries a timeout; a Kubernetes ``Status`` error becomes a
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
    """Namespaced CRUD, pod logs, events and the service proxy of one cluster."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.api = api
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.leases = client.CoordinationV1Api(api)

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

    def _call(self, method: Any, *args: Any, timeout: float, raw: bool = False, **kwargs: Any) -> Any:
        """One request under a timeout; the response as a dict (or text with ``raw``)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        seconds = max(0.5, min(timeout, REQUEST_TIMEOUT))
        try:
            response = method(*args, _preload_content=False, _request_timeout=seconds, **kwargs)
            data = response.data.decode("utf-8", errors="replace")
        except ApiException as exc:
            raise _translated(exc) from None
        except (HTTPError, OSError) as exc:
            raise KubeError(f"the API server cannot be reached: {type(exc).__name__}: {exc}") from None
        if raw:
            return data
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise KubeError("the API server answered something that is not JSON") from None

    def get(self, kind: str, name: str, timeout: float) -> Object | None:
        """One object of ``kind`` (configmap, lease, deployment, ...), None when it does not exist."""
        try:
            found: Object = self._call(self._read(kind), name, self.namespace, timeout=timeout)
            return found
        except KubeError as exc:
            if exc.code == 404:
                return None
            raise

    def select(self, kind: str, timeout: float, selector: str = "", fields: str = "") -> list[Object]:
        """Objects of ``kind`` in the namespace matching a label (and field) selector."""
        method = getattr(self._api(kind), f"list_namespaced_{_KINDS[kind]}")
        data = self._call(
            method, self.namespace, label_selector=selector, field_selector=fields, timeout=timeout
        )
        items: list[Object] = data.get("items") or []
        return items

    def create(self, kind: str, body: Object, timeout: float) -> Object:
        """Create an object; 409 (it exists) is a KubeError with code 409."""
        method = getattr(self._api(kind), f"create_namespaced_{_KINDS[kind]}")
        created: Object = self._call(method, self.namespace, body, timeout=timeout)
        return created

    def replace(self, kind: str, body: Object, timeout: float) -> Object:
        """Replace an object at its ``metadata.resourceVersion`` (409 when someone wrote it since)."""
        method = getattr(self._api(kind), f"replace_namespaced_{_KINDS[kind]}")
        replaced: Object = self._call(method, body["metadata"]["name"], self.namespace, body, timeout=timeout)
        return replaced

    def delete(self, kind: str, name: str, timeout: float, resource_version: str = "") -> bool:
        """Delete an object (its dependents in the background); False when it was already gone."""
        from kubernetes import client

        method = getattr(self._api(kind), f"delete_namespaced_{_KINDS[kind]}")
        options = client.V1DeleteOptions(
            propagation_policy="Background",
            preconditions=client.V1Preconditions(resource_version=resource_version)
            if resource_version
            else None,
        )
        try:
            self._call(method, name, self.namespace, body=options, timeout=timeout)
        except KubeError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def create_namespace(self, timeout: float) -> None:
        """Create the namespace (it existing already is fine)."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        try:
            self._call(self.core.create_namespace, body, timeout=timeout)
        except KubeError as exc:
            if exc.code != 409:
                raise

    def log(self, pod: str, container: str, timeout: float, previous: bool = False, tail: int = 200) -> str:
        """The last ``tail`` lines of a container's log (of its previous run with ``previous``)."""
        text: str = self._call(
            self.core.read_namespaced_pod_log, pod, self.namespace, container=container or None,
            previous=previous, tail_lines=tail, timeout=timeout, raw=True,
        )  # fmt: skip
        return text

    def events(self, name: str, timeout: float) -> list[Object]:
        """The events about an object, oldest first."""
        items = self.select("event", timeout, fields=f"involvedObject.name={name}")
        return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def proxy_get(self, service: str, path: str, timeout: float) -> tuple[int, str]:
        """GET ``path`` of a Service (``name:port``) through the API server's proxy: status and body."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response: Any = self.core.connect_get_namespaced_service_proxy_with_path(
                service, self.namespace, path.lstrip("/"), _preload_content=False,
                _request_timeout=max(0.5, timeout),
            )  # fmt: skip
            return response.status, response.data.decode("utf-8", errors="replace")
        except ApiException as exc:
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            return int(exc.status or 0), body
        except (HTTPError, OSError) as exc:
            raise KubeError(f"the API server cannot be reached: {type(exc).__name__}: {exc}") from None

    def exec(
        self, pod: str, container: str, argv: list[str], timeout: float, interrupt: Any = None
    ) -> tuple[int | None, str, str]:
        """Run argv in a container (the API server's exec): exit code, stdout, stderr. The code is None
        when ``timeout`` passed or ``interrupt()`` said stop first; the stream is closed then."""
        import time

        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream
        from urllib3.exceptions import HTTPError

        try:
            client = stream(
                self.core.connect_get_namespaced_pod_exec, pod, self.namespace, command=argv,
                container=container or None, stdout=True, stderr=True, stdin=False, tty=False,
                _preload_content=False, _request_timeout=max(1.0, min(timeout, REQUEST_TIMEOUT)),
            )  # fmt: skip
        except ApiException as exc:
            raise _translated(exc) from None
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

    def _api(self, kind: str) -> Any:
        return {
            "configmap": self.core, "pod": self.core, "event": self.core, "service": self.core,
            "lease": self.leases, "job": self.batch, "deployment": self.apps, "statefulset": self.apps,
            "daemonset": self.apps, "replicaset": self.apps,
        }[kind]  # fmt: skip

    def _read(self, kind: str) -> Any:
        return getattr(self._api(kind), f"read_namespaced_{_KINDS[kind]}")


_KINDS = {
    "configmap": "config_map", "pod": "pod", "event": "event", "service": "service", "lease": "lease",
    "job": "job", "deployment": "deployment", "statefulset": "stateful_set", "daemonset": "daemon_set",
    "replicaset": "replica_set",
}  # fmt: skip


def _translated(exc: Any) -> KubeError:
    """An ApiException as a KubeError with the Status message the server sent."""
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    message, reason = body.strip()[:300], str(exc.reason or "")
    try:
        status = json.loads(body)
        if isinstance(status, dict):
            message = str(status.get("message") or message)
            reason = str(status.get("reason") or reason)
    except ValueError:
        pass
    return KubeError(
        f"the API server answered {exc.status} {reason}: {message}", int(exc.status or 0), reason
    )

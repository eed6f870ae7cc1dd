"""Readiness and liveness probes (httpGet, tcpSocket, exec) against a pod's published ports.

Periods and initial delays are multiplied by ``PROBE_SCALE`` (0.25; the period is at least 0.5 s).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import Any, Protocol

from .events import record
from .store import Store

PROBE_SCALE = 0.25


class BoxLike(Protocol):
    name: str
    id: str | None
    ports: dict[int, int]
    probe_next: dict[str, float]
    probe_fails: dict[str, int]


class Probes:
    """Probe running for a pod worker (mixed into ``PodWorker``)."""

    store: Store
    pod: dict[str, Any]
    ip: str | None
    node_ip: str
    docker: Any

    def container_port(self, target: Any) -> int | None:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ probes
    def probe(self, box: BoxLike, spec: dict[str, Any], kind: str, default: bool) -> bool:
        """The probe's verdict so far (runs it when due); True without a probe (readiness once running)."""
        probe = spec.get(kind)
        if not probe:
            return default
        t = time.monotonic()
        due = box.probe_next.get(kind)
        if due is None:
            box.probe_next[kind] = t + float(probe.get("initialDelaySeconds", 0)) * PROBE_SCALE
            return kind != "readinessProbe"
        verdict_ok = box.probe_fails.get(kind, 0) == 0 and kind + ":ok" in box.probe_next
        if t < due:
            return (
                verdict_ok
                if kind == "readinessProbe"
                else box.probe_fails.get(kind, 0) < int(probe.get("failureThreshold", 3))
            )
        box.probe_next[kind] = t + max(0.5, float(probe.get("periodSeconds", 10)) * PROBE_SCALE)
        ok, detail = self.run_probe(box, probe)
        if ok:
            box.probe_fails[kind] = 0
            box.probe_next[kind + ":ok"] = t
            return True
        box.probe_fails[kind] = box.probe_fails.get(kind, 0) + 1
        name = "Readiness" if kind == "readinessProbe" else "Liveness"
        record(
            self.store,
            self.pod,
            "Unhealthy",
            f"{name} probe failed: {detail}",
            "Warning",
            f"spec.containers{{{box.name}}}",
        )
        threshold = int(probe.get("failureThreshold", 3))
        if kind == "readinessProbe":
            return verdict_ok and box.probe_fails[kind] < threshold
        return box.probe_fails[kind] < threshold

    def run_probe(self, box: BoxLike, probe: dict[str, Any]) -> tuple[bool, str]:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            result = self.docker.containers.get(box.id).exec_run(probe["exec"].get("command") or [])
            return result.exit_code == 0, result.output.decode(errors="replace").strip()
        action = probe.get("httpGet") or probe.get("tcpSocket") or {}
        port = box.ports.get(self.container_port(action.get("port")) or -1)
        if port is None:
            return False, f"port {action.get('port')} is not published"
        if "tcpSocket" in probe:
            try:
                with socket.create_connection((self.node_ip, port), timeout):
                    return True, ""
            except OSError as err:
                return False, f"dial tcp {self.ip}:{action.get('port')}: {err}"
        url = f"http://{self.node_ip}:{port}{action.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return 200 <= response.status < 400, f"HTTP probe failed with statuscode: {response.status}"
        except urllib.error.HTTPError as err:
            return False, f"HTTP probe failed with statuscode: {err.code}"
        except OSError as err:
            return False, f'Get "{url}": {err}'

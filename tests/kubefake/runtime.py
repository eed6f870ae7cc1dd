"""The pods' Docker engine: one bridge network per cluster, the pod workers, logs, published ports.

Every container the fake starts carries the label ``io.kubefake.cluster=<id>``; ``stop`` removes them
by id, and the network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from .kubelet import LABEL, PodWorker
from .store import ApiError, Store

SUBNETS = [f"172.{n}.0.0/16" for n in range(20, 32)] + [f"10.{n}.0.0/16" for n in range(120, 140)]


class Runtime:
    """The pods' containers on one Docker engine, and the workers that drive them."""

    def __init__(self, store: Store, docker_host: str, node_ip: str) -> None:
        self.store, self.docker_host, self.node_ip = store, docker_host, node_ip
        self.cluster_id = uuid.uuid4().hex[:8]
        self.client: Any = None
        self.network: str | None = None
        self.hosts: list[str] = []
        self.workers: dict[str, PodWorker] = {}
        self.started: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def start(self) -> None:
        import docker

        self.client = docker.DockerClient(base_url=self.docker_host, timeout=120)
        self.root = Path(tempfile.mkdtemp(prefix=f"kubefake-{self.cluster_id}-"))  # pod volumes
        ipam_pool, ipam_config = docker.types.IPAMPool, docker.types.IPAMConfig
        for subnet in SUBNETS:
            net = ipaddress.ip_network(subnet)
            gateway = str(net.network_address + 1)
            try:
                self.client.networks.create(
                    f"kubefake-{self.cluster_id}",
                    driver="bridge",
                    labels={LABEL: self.cluster_id},
                    ipam=ipam_config(pool_configs=[ipam_pool(subnet=subnet, gateway=gateway)]),
                )
            except docker.errors.APIError:
                continue
            self.network = f"kubefake-{self.cluster_id}"
            self.hosts = [str(h) for h in list(net.hosts())[1:4000]]
            break

    def allocate_ip(self) -> str | None:
        with self.lock:
            return self.hosts.pop(0) if self.hosts else None

    def sync(self) -> None:
        pods, _ = self.store.select("v1", "pods")
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if pod["spec"].get("nodeName") and uid not in self.workers and not self.stopping.is_set():
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
        for uid, worker in list(self.workers.items()):
            if not worker.is_alive():
                del self.workers[uid]

    def stop(self) -> None:
        """Stop every worker (each removes its containers), then anything left with our label, by id."""
        self.stopping.set()
        for worker in list(self.workers.values()):
            worker.join(60)
        if self.client is None:
            return
        left = {
            c.id
            for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.cluster_id}"})
        }
        for cid in left | self.started:
            self.remove(cid, force=True)
        if self.network:
            with contextlib.suppress(Exception):
                self.client.networks.get(self.network).remove()
        self.client.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def remove(self, cid: str | None, timeout: int = 0, force: bool = False) -> None:
        if not cid:
            return
        import docker

        try:
            container = self.client.containers.get(cid)
            if not force and container.status == "running":
                container.stop(timeout=timeout)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if "removal of container" not in str(err) and "is already in progress" not in str(err):
                raise
        self.started.discard(cid)

    # ------------------------------------------------------------------------------------------ reads
    def worker(self, pod: dict[str, Any]) -> PodWorker | None:
        return self.workers.get(pod["metadata"]["uid"])

    def address(self, pod: dict[str, Any], target: Any) -> tuple[str, int] | None:
        worker = self.worker(pod)
        if worker is None:
            return None
        port = worker.container_port(target)
        for box in worker.boxes.values():
            if port in box.ports:
                return self.node_ip, box.ports[port]
        return None

    def logs(
        self,
        pod: dict[str, Any],
        container: str,
        previous: bool,
        tail: int | None,
        timestamps: bool,
        since: float | None = None,
    ) -> bytes:
        return docker_logs(self.client, self.log_container(pod, container, previous), tail, timestamps, since)

    def follow(
        self,
        pod: dict[str, Any],
        container: str,
        tail: int | None,
        timestamps: bool,
        since: float | None = None,
    ) -> Any:
        """The container's log from ``tail``/``since`` on, then each new line while it runs, as docker
        streams it (its own order of stdout and stderr); ``close()`` ends it from another thread."""
        cid = self.log_container(pod, container, previous=False)
        kwargs: dict[str, Any] = {"tail": "all" if tail is None else tail}
        if since is not None:
            kwargs["since"] = max(since, 0.001)
        return self.client.api.logs(cid, stream=True, follow=True, timestamps=timestamps, **kwargs)

    def log_container(self, pod: dict[str, Any], container: str, previous: bool) -> str:
        """The container whose log a request reads (the previous one when asked, or while the current
        one waits to restart), or the API server's 400 when there is none."""
        worker = self.worker(pod)
        name = pod["metadata"]["name"]
        box = worker.boxes.get(container) if worker else None
        if previous:
            if box is None or box.last_state is None or not box.last_id:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{name}" not found',
                )
            return box.last_id
        if box is not None and "waiting" in box.state and box.last_id:
            return box.last_id
        if box is not None and box.id and "waiting" not in box.state:
            return box.id
        reason = (
            box.state.get("waiting", {}).get("reason", "ContainerCreating") if box else "ContainerCreating"
        )
        text = {
            "ErrImagePull": "image can't be pulled",
            "ImagePullBackOff": "trying and failing to pull image",
        }.get(reason, reason)
        raise ApiError(
            400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {text}'
        )


def docker_logs(
    client: Any, cid: str, tail: int | None, timestamps: bool, since: float | None = None
) -> bytes:
    """stdout and stderr merged by docker's timestamps (its own merge loses the order). Docker stamps a line
    when it reads it from the pipe, so lines written within ~1 ms of each other on the two streams may
    still come out swapped. ``since``: only lines logged from then on (seconds since the epoch)."""
    lines: list[tuple[bytes, int, bytes]] = []
    extra = {} if since is None else {"since": max(since, 0.001)}
    for order, (out, err) in enumerate(((True, False), (False, True))):
        raw = client.api.logs(cid, stdout=out, stderr=err, timestamps=True, tail="all", **extra)
        for line in raw.splitlines(keepends=True):
            ts, _, text = line.partition(b" ")
            lines.append((ts, order, text))
    lines.sort(key=lambda x: sortable(x[0]))  # stable: equal stamps keep stdout before stderr
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return b"".join((ts + b" " + text) if timestamps else text for ts, _, text in lines)


def sortable(ts: bytes) -> bytes:
    """RFC 3339 with the fraction padded to nanoseconds (docker trims zeros): bytes then sort as times."""
    head, _, frac = ts.rstrip(b"Z").partition(b".")
    return head + b"." + frac.ljust(9, b"0")

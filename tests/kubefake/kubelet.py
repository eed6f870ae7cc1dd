"""The fake kubelet: each scheduled pod's containers run as real containers on a Docker engine.

One worker thread per pod polls ``docker inspect`` every 0.4 s and writes the pod's status when it
changes. Scaled down from the real kubelet, so that tests stay fast:

* crash back-off (restartPolicy Always/OnFailure) is 1 s, 2 s, 4 s ... capped at 10 s (real: 10 s,
  20 s ... 5 min); image pull back-off likewise;
* probe ``periodSeconds``/``initialDelaySeconds`` are multiplied by 0.25 (period at least 0.5 s);
* ``terminationGracePeriodSeconds`` is capped at 5 s (containers run with ``init=True``, so SIGTERM
  stops them at once anyway).

Networking: one Docker bridge network per cluster; each pod's first container gets the pod IP
(allocated before it starts, so ``status.podIP`` can be passed in env), other containers of the pod
get addresses of their own (no shared network namespace, no localhost between them). Container ports
(and probe ports) are published on the node IP with random host ports; probes and proxies go there.
Init containers run one after the other before the app containers. The previous (exited) container is
kept until the next restart, for ``log?previous=true``. Volumes: see volumes.py. Logs take ``tailLines``,
``sinceSeconds``/``sinceTime`` and ``timestamps``; ``follow=true`` streams new lines (chunked, as docker
streams them) until the container ends or the client goes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import volumes
from .common import quantity
from .events import record
from .podenv import PodEnvironment, expand
from .probes import Probes
from .store import ApiError, now

if TYPE_CHECKING:
    from .runtime import Runtime

POLL = 0.4
LABEL = "io.kubefake.cluster"
GRACE_CAP = 5


def stamp(docker_time: str) -> str:
    """Docker's nanosecond timestamp as the API's seconds."""
    return docker_time[:19] + "Z" if docker_time and not docker_time.startswith("0001") else now()


@dataclass
class Box:
    """What the fake kubelet knows about one container of a pod."""

    name: str
    init: bool = False
    id: str | None = None
    last_id: str | None = None  # the container lastState.terminated describes (previous logs)
    last_state: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    restarts: int = 0
    backoff_until: float = 0.0
    pulled: bool = False
    pull_failures: int = 0
    pull_until: float = 0.0
    ready: bool = False
    done: bool = False  # exited and will not be restarted
    image_id: str = ""
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> published host port
    probe_next: dict[str, float] = field(default_factory=dict)
    probe_fails: dict[str, int] = field(default_factory=dict)


class PodWorker(threading.Thread, Probes, PodEnvironment):
    """Drives one pod: pulls, creates, restarts, probes, reports status; removes its containers at the end."""

    def __init__(self, runtime: Runtime, pod: dict[str, Any]) -> None:
        super().__init__(name=f"kubefake-pod-{pod['metadata']['name']}", daemon=True)
        self.runtime, self.store = runtime, runtime.store
        self.node_ip, self.docker = runtime.node_ip, runtime.client
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.ns, self.name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.ip = runtime.allocate_ip()
        self.volume_root = runtime.root / self.uid
        self.started_at = now()
        specs = [(c, True) for c in pod["spec"].get("initContainers") or []] + [
            (c, False) for c in pod["spec"]["containers"]
        ]
        self.boxes = {c["name"]: Box(c["name"], init) for c, init in specs}
        self.last_status: dict[str, Any] | None = None

    def run(self) -> None:
        try:
            while not self.runtime.stopping.is_set():
                pod = self.store.get("v1", "pods", self.ns, self.name)
                if pod is None or pod["metadata"]["uid"] != self.uid:
                    self.teardown(graceful=True)
                    return
                self.pod = pod
                with contextlib.suppress(ApiError):
                    self.step()
                self.runtime.stopping.wait(POLL)
        finally:
            self.teardown(graceful=False)

    def teardown(self, graceful: bool) -> None:
        grace = min(int(self.pod["spec"].get("terminationGracePeriodSeconds", 30)), GRACE_CAP)
        for box in self.boxes.values():
            if box.id and graceful and "running" in box.state:
                record(
                    self.store,
                    self.pod,
                    "Killing",
                    f"Stopping container {box.name}",
                    field_path=f"spec.containers{{{box.name}}}",
                )
            for cid in {box.id, box.last_id}:
                self.runtime.remove(cid, timeout=grace, force=not graceful)
            box.id = box.last_id = None
        volumes.remove(self.volume_root)

    def spec_of(self, name: str) -> dict[str, Any]:
        return next(
            c
            for c in (self.pod["spec"].get("initContainers") or []) + self.pod["spec"]["containers"]
            if c["name"] == name
        )

    def container_port(self, target: Any) -> int | None:
        for c in self.pod["spec"]["containers"]:
            for p in c.get("ports") or []:
                if str(p.get("name")) == str(target) or str(p["containerPort"]) == str(target):
                    return int(p["containerPort"])
        return int(target) if str(target).isdigit() else None

    # ------------------------------------------------------------------------------------------ driving
    def step(self) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        init_done = True
        for box in self.boxes.values():
            if not box.init:
                continue
            if not init_done:
                break
            self.drive(box, "OnFailure" if policy == "Always" else policy)
            init_done = box.done and box.state.get("terminated", {}).get("exitCode") == 0
        if init_done:
            for box in self.boxes.values():
                if not box.init:
                    self.drive(box, policy)
        self.report(init_done)

    def drive(self, box: Box, policy: str) -> None:
        if box.done:
            return
        spec = self.spec_of(box.name)
        if box.id is None:
            if time.monotonic() < box.backoff_until:
                return
            if self.pull(box, spec):
                self.create(box, spec)
            return
        info = self.inspect(box.id)
        if info is None:
            box.id = None
            return
        state = info["State"]
        if state.get("Running"):
            box.state = {"running": {"startedAt": stamp(state.get("StartedAt", ""))}}
            box.ready = self.probe(box, spec, "readinessProbe", True)
            if not self.probe(box, spec, "livenessProbe", True) and box.probe_fails.get(
                "livenessProbe", 0
            ) >= int((spec.get("livenessProbe") or {}).get("failureThreshold", 3)):
                record(
                    self.store,
                    self.pod,
                    "Killing",
                    f"Container {box.name} failed liveness probe, will be restarted",
                )
                box.probe_fails["livenessProbe"] = 0
                self.docker.containers.get(box.id).kill()
            return
        if "running" in box.state or (
            "waiting" in box.state and box.state["waiting"]["reason"] == "ContainerCreating"
        ):
            code = int(state.get("ExitCode", 0))
            reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
            terminated = {
                "exitCode": code,
                "reason": reason,
                "startedAt": stamp(state.get("StartedAt", "")),
                "finishedAt": stamp(state.get("FinishedAt", "")),
                "containerID": f"docker://{box.id}",
            }
            box.ready = False
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart:
                box.state, box.done = {"terminated": terminated}, True
                return
            delay = min(2.0**box.restarts, 10.0)
            if box.last_id and box.last_id != box.id:
                self.runtime.remove(box.last_id, force=True)
            box.last_state, box.last_id = {"terminated": terminated}, box.id
            box.backoff_until = time.monotonic() + delay
            box.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {int(delay)}s restarting failed container={box.name} "
                    f"pod={self.name}_{self.ns}({self.uid})",
                }
            }
            record(
                self.store,
                self.pod,
                "BackOff",
                f"Back-off restarting failed container {box.name} in pod {self.name}_{self.ns}({self.uid})",
                "Warning",
                f"spec.containers{{{box.name}}}",
            )
            return
        if "waiting" in box.state and time.monotonic() >= box.backoff_until:
            old, box.id = box.id, None
            box.restarts += 1
            if self.pull(box, spec) and self.create(box, spec):
                if old != box.last_id:
                    self.runtime.remove(old, force=True)
            else:
                box.id = old
                box.restarts -= 1

    def inspect(self, cid: str) -> dict[str, Any] | None:
        import docker

        try:
            return dict(self.docker.api.inspect_container(cid))
        except docker.errors.NotFound:
            return None

    def pull(self, box: Box, spec: dict[str, Any]) -> bool:
        import docker

        image, policy = spec["image"], spec.get("imagePullPolicy", "IfNotPresent")
        client = self.docker
        try:
            present = client.images.get(image)
        except docker.errors.ImageNotFound:
            present = None
        where = f"spec.containers{{{box.name}}}"
        if present is not None and (policy != "Always" or box.pulled):
            box.image_id = present.id
            return True
        if policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            box.state = {"waiting": {"reason": "ErrImageNeverPull", "message": message}}
            record(self.store, self.pod, "ErrImageNeverPull", message, "Warning", where)
            return False
        if time.monotonic() < box.pull_until:
            if box.state.get("waiting", {}).get("reason") != "ImagePullBackOff":
                box.state = {
                    "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
                }
                record(self.store, self.pod, "BackOff", f'Back-off pulling image "{image}"', "Normal", where)
            return False
        record(self.store, self.pod, "Pulling", f'Pulling image "{image}"', field_path=where)
        t0 = time.monotonic()
        try:
            pulled = client.images.pull(*docker.utils.parse_repository_tag(image))
        except docker.errors.APIError as err:
            box.pull_failures += 1
            box.pull_until = time.monotonic() + min(2.0 ** (box.pull_failures - 1), 10.0)
            detail = err.explanation or str(err)
            box.state = {
                "waiting": {"reason": "ErrImagePull", "message": f'failed to pull image "{image}": {detail}'}
            }
            record(
                self.store, self.pod, "Failed", f'Failed to pull image "{image}": {detail}', "Warning", where
            )
            record(self.store, self.pod, "Failed", "Error: ErrImagePull", "Warning", where)
            return False
        box.pulled, box.image_id = True, pulled.id
        record(
            self.store,
            self.pod,
            "Pulled",
            f'Successfully pulled image "{image}" in {time.monotonic() - t0:.3f}s',
            field_path=where,
        )
        return True

    def create(self, box: Box, spec: dict[str, Any]) -> bool:
        import docker

        where = f"spec.containers{{{box.name}}}"
        try:
            env = self.environment(spec)
        except ApiError as err:
            box.state = {"waiting": {"reason": "CreateContainerConfigError", "message": err.message}}
            record(self.store, self.pod, "Failed", f"Error: {err.message}", "Warning", where)
            box.backoff_until = time.monotonic() + 2.0  # the kubelet retries too, with a back-off
            return False
        try:
            mounts = volumes.binds(spec, volumes.prepare(self.store, self.volume_root, self.pod))
        except ApiError as err:
            box.state = {"waiting": {"reason": "ContainerCreating"}}
            record(self.store, self.pod, "FailedMount", err.message, "Warning")
            box.backoff_until = time.monotonic() + 2.0
            return False
        ports = {int(p["containerPort"]) for p in spec.get("ports") or []}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            action = (spec.get(probe) or {}).get("httpGet") or (spec.get(probe) or {}).get("tcpSocket")
            if action and str(action.get("port", "")).isdigit():
                ports.add(int(action["port"]))
        limits = (spec.get("resources") or {}).get("limits") or {}
        kwargs: dict[str, Any] = {
            "name": f"k8s_{box.name}_{self.name}_{self.ns}_{self.runtime.cluster_id}_{box.restarts}",
            "environment": env,
            "volumes": mounts,
            "working_dir": spec.get("workingDir"),
            "hostname": self.name[:63],
            "labels": {
                LABEL: self.runtime.cluster_id,
                "io.kubernetes.pod.namespace": self.ns,
                "io.kubernetes.pod.name": self.name,
                "io.kubernetes.container.name": box.name,
                "io.kubernetes.pod.uid": self.uid,
            },
            "init": True,
            "detach": True,
            "ports": {f"{p}/tcp": (self.node_ip, None) for p in ports},
        }
        if spec.get("command"):
            kwargs["entrypoint"] = [expand(str(a), env) for a in spec["command"]]
        if spec.get("args"):
            kwargs["command"] = [expand(str(a), env) for a in spec["args"]]
        elif spec.get("command"):
            kwargs["command"] = []
        if "memory" in limits:
            kwargs["mem_limit"] = kwargs["memswap_limit"] = int(quantity(limits["memory"]))
        if "cpu" in limits:
            kwargs["nano_cpus"] = int(quantity(limits["cpu"]) * 1e9)
        if self.runtime.network:
            kwargs["network"] = self.runtime.network
            first = not box.init and box.name == self.pod["spec"]["containers"][0]["name"]
            if first and self.ip:
                endpoint = self.docker.api.create_endpoint_config(ipv4_address=self.ip)
                kwargs["networking_config"] = {self.runtime.network: endpoint}
        try:
            container = self.docker.containers.create(spec["image"], **kwargs)
            self.runtime.started.add(container.id)
            record(self.store, self.pod, "Created", f"Created container {box.name}", field_path=where)
            container.start()
        except docker.errors.APIError as err:
            box.state = {
                "waiting": {"reason": "CreateContainerError", "message": err.explanation or str(err)}
            }
            record(self.store, self.pod, "Failed", f"Error: {err.explanation or err}", "Warning", where)
            return False
        record(self.store, self.pod, "Started", f"Started container {box.name}", field_path=where)
        box.id = container.id
        info = self.inspect(container.id) or {}
        box.ports = {}
        for key, bindings in ((info.get("NetworkSettings") or {}).get("Ports") or {}).items():
            if bindings:
                box.ports[int(key.split("/")[0])] = int(bindings[0]["HostPort"])
        if not self.ip:
            nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
            self.ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)
        box.state = {"running": {"startedAt": stamp((info.get("State") or {}).get("StartedAt", ""))}}
        box.probe_next, box.probe_fails = {}, {}
        return True

    # ------------------------------------------------------------------------------------------ status
    def report(self, init_done: bool) -> None:
        def status_of(box: Box) -> dict[str, Any]:
            spec = self.spec_of(box.name)
            running = "running" in box.state
            entry = {
                "name": box.name,
                "image": spec["image"],
                "imageID": box.image_id,
                "ready": box.ready,
                "started": running,
                "restartCount": box.restarts,
                "state": box.state,
                "lastState": box.last_state or {},
            }
            if box.id:
                entry["containerID"] = f"docker://{box.id}"
            return entry

        apps = [b for b in self.boxes.values() if not b.init]
        inits = [b for b in self.boxes.values() if b.init]
        if apps and all(b.done for b in apps):
            codes = [b.state["terminated"]["exitCode"] for b in apps]
            phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
        elif any(b.done and b.state["terminated"]["exitCode"] != 0 for b in inits):
            phase = "Failed"
        elif any("running" in b.state or b.restarts or b.last_state for b in apps):
            phase = "Running"
        else:
            phase = "Pending"
        ready = bool(apps) and all(b.ready for b in apps)
        unready = [b.name for b in apps if not b.ready]

        def cond(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
            old = next((c for c in (self.last_status or {}).get("conditions", []) if c["type"] == kind), None)
            status = "True" if ok else "False"
            if old and old["status"] == status:
                return old
            c = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now()}
            if not ok and reason:
                c.update(reason=reason, message=message)
            return c

        not_ready_msg = f"containers with unready status: [{' '.join(unready)}]"
        done_reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        status = {
            "phase": phase,
            "hostIP": self.node_ip,
            "hostIPs": [{"ip": self.node_ip}],
            "startTime": self.started_at,
            "qosClass": "BestEffort",
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond(
                    "Initialized", init_done, "ContainersNotInitialized", "containers with incomplete status"
                ),
                cond("Ready", ready, done_reason, not_ready_msg),
                cond("ContainersReady", ready, done_reason, not_ready_msg),
                cond("PodScheduled", True),
            ],
            "containerStatuses": [status_of(b) for b in apps],
        }
        if inits:
            status["initContainerStatuses"] = [status_of(b) for b in inits]
        if self.ip:
            status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        if status != self.last_status:
            self.last_status = status
            self.store.update(
                "v1", "pods", self.ns, self.name, lambda o: o.__setitem__("status", status), status=True
            )

"""The fake Kubernetes cluster with real pods: containers on the sandbox's pod engine, real helm --wait.

What a deploy target built on it relies on: a Deployment becomes Ready and serves through the service
proxy; a crash loop, a missing image, an OOM kill and an oversized request each show up the way a real
cluster shows them; a Job reaches PostgreSQL; helm 3 and helm 4 install, wait, and roll back.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubefake import FakeCluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HTTPD = "mkdir -p /www && echo $MESSAGE > /www/index.html && exec busybox httpd -f -p 8080 -h /www"

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": "image: busybox\nmessage: one\nreplicas: 2\n",
    "templates/service.yaml": """apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{name: http, port: 80, targetPort: http}]
""",
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: {{ .Values.image }}
        command: ["busybox", "sh", "-c", {{ .Values.command | quote }}]
        env: [{name: MESSAGE, value: {{ .Values.message | quote }}}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 2}
""",
}


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``probe`` every 0.1 s until it returns something truthy; fail naming ``what`` at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def core(cluster: FakeCluster, tmp_path: Path) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig(tmp_path / "kubeconfig"))))


def pod(cluster: FakeCluster, name: str, *containers: dict[str, Any], **spec: Any) -> None:
    body = {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": list(containers), **spec},
    }
    cluster.store.create("v1", "pods", "default", body)


def container_state(cluster: FakeCluster, name: str) -> dict[str, Any]:
    found = cluster.get("v1", "pods", "default", name) or {}
    statuses = found.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def waiting(cluster: FakeCluster, name: str, reason: str) -> dict[str, Any] | None:
    status = container_state(cluster, name)
    return status if status.get("state", {}).get("waiting", {}).get("reason") == reason else None


def test_a_deployment_becomes_ready_and_serves_through_the_service_proxy(
    kube_cluster: FakeCluster, sandbox: dict[str, Any], tmp_path: Path
) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": sandbox["busybox_image"],
                    "command": ["sh", "-c", HTTPD],
                    "env": [{"name": "MESSAGE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
                }
            ]
        },
    }
    kube_cluster.store.create(
        "apps/v1",
        "deployments",
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        },
    )
    kube_cluster.store.create(
        "v1",
        "services",
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )

    def available() -> bool:
        status = (kube_cluster.get("apps/v1", "deployments", "default", "web") or {}).get("status", {})
        return status.get("availableReplicas") == 2 and status.get("observedGeneration") == 1

    wait_until(available, 30, "2 available replicas")
    body = core(kube_cluster, tmp_path).connect_get_namespaced_service_proxy_with_path(
        "web:http", "default", ""
    )
    pods = {p["metadata"]["name"] for p in kube_cluster.objects("v1", "pods", "default")}
    assert body.strip() in pods  # the page names the pod that served it (env from fieldRef)
    conditions = {
        c["type"]: c["reason"]
        for c in kube_cluster.get("apps/v1", "deployments", "default", "web")["status"]["conditions"]
    }
    assert conditions == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}

    doomed = sorted(pods)[0]
    container = kube_cluster.get("v1", "pods", "default", doomed)["status"]["containerStatuses"][0][
        "containerID"
    ]
    core(kube_cluster, tmp_path).delete_namespaced_pod(doomed, "default")
    replaced = wait_until(
        lambda: (
            available()
            and {p["metadata"]["name"] for p in kube_cluster.objects("v1", "pods", "default")} - pods
        ),
        30,
        "a replacement pod, Ready",
    )
    assert len(replaced) == 1 and doomed not in replaced
    engine = docker_engine(sandbox)
    try:
        wait_until(
            lambda: not engine.containers.list(all=True, filters={"id": container.split("//")[1]}),
            10,
            "the deleted pod's container removed",
        )
    finally:
        engine.close()


def docker_engine(sandbox: dict[str, Any]) -> Any:
    import docker

    return docker.DockerClient(base_url=sandbox["kube_docker_host"])


def test_statefulset_and_daemonset_pods_run_and_report_ready(
    kube_cluster: FakeCluster, sandbox: dict[str, Any]
) -> None:
    def template(app: str) -> dict[str, Any]:
        return {
            "metadata": {"labels": {"app": app}},
            "spec": {
                "containers": [
                    {"name": "main", "image": sandbox["busybox_image"], "command": ["sleep", "600"]}
                ]
            },
        }

    kube_cluster.store.create(
        "apps/v1",
        "statefulsets",
        "default",
        {
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": template("db"),
            },
        },
    )
    kube_cluster.store.create(
        "apps/v1",
        "daemonsets",
        "default",
        {
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")},
        },
    )

    def rolled_out() -> bool:
        sts = (kube_cluster.get("apps/v1", "statefulsets", "default", "db") or {}).get("status", {})
        ds = (kube_cluster.get("apps/v1", "daemonsets", "default", "agent") or {}).get("status", {})
        return (
            sts.get("readyReplicas") == 2
            and sts.get("currentRevision") == sts.get("updateRevision")
            and ds.get("numberReady") == 1
            and ds.get("updatedNumberScheduled") == 1
        )

    wait_until(rolled_out, 30, "StatefulSet 2/2 and DaemonSet 1/1 ready")
    names = sorted(p["metadata"]["name"] for p in kube_cluster.objects("v1", "pods", "default"))
    assert names[0].startswith("agent-") and names[1:] == ["db-0", "db-1"]


def test_a_crashing_container_backs_off_and_keeps_its_previous_logs(
    kube_cluster: FakeCluster, sandbox: dict[str, Any], tmp_path: Path
) -> None:
    t0 = time.monotonic()
    pod(
        kube_cluster,
        "crash",
        {
            "name": "app",
            "image": sandbox["busybox_image"],
            "command": ["sh", "-c", "echo starting; sleep 0.1; echo broken config >&2; exit 3"],
        },
    )
    status = wait_until(
        lambda: (s := waiting(kube_cluster, "crash", "CrashLoopBackOff")) and s["restartCount"] >= 1 and s,
        30,
        "CrashLoopBackOff after a restart",
    )
    print(f"\nCrashLoopBackOff with restartCount>=1 after {time.monotonic() - t0:.1f} s")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert kube_cluster.get("v1", "pods", "default", "crash")["status"]["phase"] == "Running"
    log = core(kube_cluster, tmp_path).read_namespaced_pod_log(
        "crash", "default", container="app", previous=True
    )
    assert log == "starting\nbroken config\n"
    reasons = {e["reason"] for e in kube_cluster.objects("v1", "events", "default")}
    assert {"Scheduled", "Created", "Started", "BackOff"} <= reasons


def test_an_image_that_does_not_exist_ends_in_image_pull_back_off(
    kube_cluster: FakeCluster, sandbox: dict[str, Any]
) -> None:
    t0 = time.monotonic()
    image = f"{sandbox['registry']}/nothing/here:1.0"
    pod(kube_cluster, "ghost", {"name": "app", "image": image})
    wait_until(lambda: waiting(kube_cluster, "ghost", "ImagePullBackOff"), 30, "ImagePullBackOff")
    print(f"\nImagePullBackOff after {time.monotonic() - t0:.1f} s")
    failed = [
        e["message"] for e in kube_cluster.objects("v1", "events", "default") if e["reason"] == "Failed"
    ]
    assert any(m.startswith(f'Failed to pull image "{image}"') for m in failed), failed
    assert kube_cluster.get("v1", "pods", "default", "ghost")["status"]["phase"] == "Pending"


def test_a_memory_limit_really_oom_kills(kube_cluster: FakeCluster, sandbox: dict[str, Any]) -> None:
    t0 = time.monotonic()
    pod(
        kube_cluster,
        "hog",
        {
            "name": "app",
            "image": sandbox["base_image"],
            "command": ["python3", "-c", "s = 'x' * (256 << 20)"],
            "resources": {"limits": {"memory": "48Mi"}},
        },
        restartPolicy="Never",
    )
    done = wait_until(
        lambda: container_state(kube_cluster, "hog").get("state", {}).get("terminated"), 30, "exit"
    )
    print(f"\nOOMKilled after {time.monotonic() - t0:.1f} s")
    assert (done["reason"], done["exitCode"]) == ("OOMKilled", 137)
    assert kube_cluster.get("v1", "pods", "default", "hog")["status"]["phase"] == "Failed"


def test_a_pod_asking_more_than_the_node_has_is_unschedulable(
    kube_cluster: FakeCluster, sandbox: dict[str, Any]
) -> None:
    pod(
        kube_cluster,
        "huge",
        {
            "name": "app",
            "image": sandbox["busybox_image"],
            "resources": {"requests": {"cpu": "100m", "memory": "64Gi"}},
        },
    )

    def unschedulable() -> dict[str, Any] | None:
        conditions = kube_cluster.get("v1", "pods", "default", "huge")["status"].get("conditions") or []
        return next((c for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    assert wait_until(unschedulable, 10, "PodScheduled False")["reason"] == "Unschedulable"
    events = [e for e in kube_cluster.objects("v1", "events", "default") if e["reason"] == "FailedScheduling"]
    assert [(e["type"], e["message"]) for e in events] == [
        ("Warning", "0/1 nodes are available: 1 Insufficient memory.")
    ]


def job(cluster: FakeCluster, name: str, image: str, command: list[str], **spec: Any) -> None:
    container: dict[str, Any] = {"name": "main", "image": image, "command": command}
    container.update(spec.pop("container", {}))
    cluster.store.create(
        "batch/v1",
        "jobs",
        "default",
        {
            "metadata": {"name": name},
            "spec": {**spec, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        },
    )


def job_condition(cluster: FakeCluster, name: str) -> dict[str, Any] | None:
    found = cluster.get("batch/v1", "jobs", "default", name) or {}
    return next(
        (
            c
            for c in found.get("status", {}).get("conditions") or []
            if c["type"] in ("Complete", "Failed") and c["status"] == "True"
        ),
        None,
    )


def test_jobs_reach_postgresql_or_fail_with_their_logs(
    kube_cluster: FakeCluster, sandbox: dict[str, Any], tmp_path: Path
) -> None:
    kube_cluster.store.create(
        "v1", "secrets", "default", {"metadata": {"name": "db"}, "stringData": {"url": sandbox["db_url"]}}
    )
    query = (
        "import os, psycopg2; c = psycopg2.connect(os.environ['DATABASE_URL']); cur = c.cursor(); "
        "cur.execute('select 41 + 1'); print('answer', cur.fetchone()[0])"
    )
    job(
        kube_cluster,
        "migrate",
        sandbox["base_image"],
        ["python3", "-c", query],
        container={
            "env": [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]
        },
    )
    job(
        kube_cluster,
        "broken",
        sandbox["busybox_image"],
        ["sh", "-c", "echo migration 7 failed; exit 2"],
        backoffLimit=1,
    )
    assert (
        wait_until(lambda: job_condition(kube_cluster, "migrate"), 30, "migrate finished")["type"]
        == "Complete"
    )
    api = core(kube_cluster, tmp_path)
    (migrate,) = [
        p["metadata"]["name"]
        for p in kube_cluster.objects("v1", "pods", "default")
        if p["metadata"]["labels"].get("job-name") == "migrate"
    ]
    assert api.read_namespaced_pod_log(migrate, "default") == "answer 42\n"
    failed = wait_until(lambda: job_condition(kube_cluster, "broken"), 30, "broken finished")
    assert (failed["type"], failed["reason"]) == ("Failed", "BackoffLimitExceeded")
    status = kube_cluster.get("batch/v1", "jobs", "default", "broken")["status"]
    assert status["failed"] == 2 and not status.get("succeeded")
    broken = [
        p["metadata"]["name"]
        for p in kube_cluster.objects("v1", "pods", "default")
        if p["metadata"]["labels"].get("job-name") == "broken"
    ]
    assert [api.read_namespaced_pod_log(n, "default", tail_lines=1) for n in broken] == [
        "migration 7 failed\n"
    ] * 2
    kube_cluster.store.delete("batch/v1", "jobs", "default", "broken", "Background")
    assert not [p for p in kube_cluster.objects("v1", "pods", "default") if p["metadata"]["name"] in broken]


def test_a_job_past_its_active_deadline_is_killed(kube_cluster: FakeCluster, sandbox: dict[str, Any]) -> None:
    job(kube_cluster, "slow", sandbox["busybox_image"], ["sleep", "600"], activeDeadlineSeconds=2)
    failed = wait_until(lambda: job_condition(kube_cluster, "slow"), 30, "slow finished")
    assert (failed["type"], failed["reason"]) == ("Failed", "DeadlineExceeded")
    assert kube_cluster.get("batch/v1", "jobs", "default", "slow")["status"].get("active", 0) == 0
    assert not kube_cluster.objects("v1", "pods", "default")  # its running pod was deleted


@pytest.mark.parametrize("major", [3, 4])
def test_real_helm_waits_for_the_rollout_and_rolls_back(
    major: int, kube_cluster: FakeCluster, sandbox: dict[str, Any], tmp_path: Path
) -> None:
    helm = Path(os.environ.get(f"PIPELINE_HELM{major}") or ROOT / f".cache/helm/v{major}/helm")
    assert helm.is_file(), f"helm {major} not found at {helm}: run scripts/helm-binaries"
    chart = tmp_path / "chart"
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    env = {
        **os.environ,
        "KUBECONFIG": str(kube_cluster.kubeconfig(tmp_path / "kubeconfig")),
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    wait = ["--wait", "--timeout", "60s"] if major == 3 else ["--wait=watcher", "--timeout", "60s"]

    def helm_run(*args: str) -> float:
        t0 = time.monotonic()
        done = subprocess.run([str(helm), *args, *wait], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
        return time.monotonic() - t0

    def serving() -> tuple[set[str], str]:
        images = {p["spec"]["containers"][0]["image"] for p in kube_cluster.objects("v1", "pods", "default")}
        page = kube_cluster.proxy("services", "default", "web", "/", "")[2].decode().strip()
        return images, page

    first = ["--set", f"image={sandbox['busybox_image']}", "--set-string", f"command={HTTPD}"]
    took = helm_run("upgrade", "--install", "web", str(chart), *first)
    print(f"\nhelm {major} upgrade --install --wait: {took:.1f} s")
    assert serving() == ({sandbox["busybox_image"]}, "one")
    second = [
        "--set",
        f"image={sandbox['base_image']}",
        "--set-string",
        f"command={HTTPD}",
        "--set",
        "message=two",
    ]
    helm_run("upgrade", "--install", "web", str(chart), *second)
    # helm returns once the new pods are Ready; the old ones go a moment later, as on a real cluster
    wait_until(
        lambda: serving() == ({sandbox["base_image"]}, "two"), 15, "only the new pods after the upgrade"
    )
    took = helm_run("rollback", "web", "1")
    print(f"helm {major} rollback --wait: {took:.1f} s")
    wait_until(
        lambda: serving() == ({sandbox["busybox_image"]}, "one"), 15, "old pods gone after the rollback"
    )
    replicasets = kube_cluster.objects("apps/v1", "replicasets", "default")
    assert len(replicasets) == 2  # the rollback reused the first ReplicaSet


def test_init_containers_and_volumes_prepare_the_app_and_a_failing_liveness_probe_restarts_it(
    kube_cluster: FakeCluster, sandbox: dict[str, Any], tmp_path: Path
) -> None:
    kube_cluster.store.create(
        "v1", "configmaps", "default", {"metadata": {"name": "settings"}, "data": {"greeting": "hello\n"}}
    )
    mounts = [
        {"name": "work", "mountPath": "/work"},
        {"name": "conf", "mountPath": "/conf", "readOnly": True},
    ]
    init = {
        "name": "prepare",
        "image": sandbox["busybox_image"],
        "volumeMounts": mounts,
        "command": ["sh", "-c", "cp /conf/greeting /work/page"],
    }
    main = {
        "name": "main",
        "image": sandbox["busybox_image"],
        "volumeMounts": mounts[:1],
        "command": ["sh", "-c", "cat /work/page; exec sleep 600"],
        "livenessProbe": {"exec": {"command": ["test", "-e", "/work/alive"]}, "failureThreshold": 1},
    }
    pod(
        kube_cluster,
        "prepared",
        main,
        initContainers=[init],
        volumes=[{"name": "work", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "settings"}}],
    )
    restarted = wait_until(
        lambda: (s := container_state(kube_cluster, "prepared")).get("restartCount", 0) >= 1 and s,
        30,
        "a restart after the liveness probe failed",
    )
    assert restarted["lastState"]["terminated"]["exitCode"] == 137
    prepared = kube_cluster.get("v1", "pods", "default", "prepared")["status"]["initContainerStatuses"][0]
    assert prepared["state"]["terminated"]["reason"] == "Completed"
    api = core(kube_cluster, tmp_path)
    assert api.read_namespaced_pod_log("prepared", "default", container="main", previous=True) == "hello\n"
    killing = [
        e["message"] for e in kube_cluster.objects("v1", "events", "default") if e["reason"] == "Killing"
    ]
    assert killing == ["Container main failed liveness probe, will be restarted"]

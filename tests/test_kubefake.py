"""The fake Kubernetes API server (tests/kubefake) without a Docker engine: the API as real clients see it.

Real helm 3 and helm 4 binaries and the kubernetes Python client talk to it; pods are scheduled but never
run (``docker_host=None``), so nothing here waits for readiness.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubefake import FakeCluster
from kubefake.controllers import template_hash
from kubefake.patch import apply, json_patch, strategic_merge
from kubefake.protobuf import decode
from kubefake.selectors import field_selector, label_selector

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: '1.0'\n",
    "values.yaml": "image: app:1\nenv: {}\n",
    "templates/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n"
    "data:\n  image: {{ .Values.image | quote }}\n",
    "templates/hook.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
data:
  image: {{ .Values.image | quote }}
""",
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
        env:
        {{- range $k, $v := .Values.env }}
        - {name: {{ $k }}, value: {{ $v | quote }}}
        {{- end }}
""",
}


def helm_binary(major: int) -> Path:
    """The helm binary: ``PIPELINE_HELM<major>`` or ``.cache/helm/v<major>/helm``; fails if absent."""
    path = Path(os.environ.get(f"PIPELINE_HELM{major}") or ROOT / f".cache/helm/v{major}/helm")
    if not path.is_file():
        pytest.fail(
            f"helm {major} not found at {path}: run scripts/helm-binaries (or set PIPELINE_HELM{major})"
        )
    return path


def fake_threads() -> list[str]:
    """Threads of a fake cluster still alive: its server, request handlers, controllers, pod workers."""
    names = [t.name for t in threading.enumerate()]
    return [n for n in names if n.startswith("kubefake") or "process_request_thread" in n]


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    """An API-only fake cluster; every thread of it is gone after the test."""
    with FakeCluster(docker_host=None) as c:
        yield c
    assert fake_threads() == []


@pytest.fixture
def api(cluster: FakeCluster, tmp_path: Path) -> Iterator[Any]:
    """A kubernetes Python ``ApiClient`` configured from the fake's kubeconfig."""
    from kubernetes import config

    api_client = config.new_client_from_config(str(cluster.kubeconfig(tmp_path / "kubeconfig")))
    yield api_client
    api_client.close()


def http(
    cluster: FakeCluster, method: str, path: str, body: Any = None, kind: str = "application/json"
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        cluster.url + path, data=data, method=method, headers={"Content-Type": kind}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        return json.load(err)


# ---------------------------------------------------------------------------------------------- pure parts
def test_label_selectors_support_equality_sets_and_existence() -> None:
    obj = {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    assert label_selector("app=web,tier==front")(obj)
    assert not label_selector("app!=web")(obj)
    assert label_selector("app in (api, web),tier notin (back)")(obj)
    assert not label_selector("app notin (web)")(obj)
    assert label_selector("tier,!canary")(obj)
    assert not label_selector("!tier")(obj)


def test_field_selectors_compare_dotted_paths() -> None:
    event = {"involvedObject": {"name": "web-1", "kind": "Pod"}, "type": "Warning"}
    assert field_selector("involvedObject.name=web-1,involvedObject.kind=Pod")(event)
    assert field_selector("type!=Normal")(event)
    assert not field_selector("involvedObject.name=web-2")(event)


def test_strategic_merge_merges_containers_by_name_and_honours_delete() -> None:
    live = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x:1", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y:1"},
            ]
        }
    }
    patch = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x:2", "env": [{"$patch": "delete", "name": "K"}]},
                {"$patch": "delete", "name": "b"},
            ],
            "$setElementOrder/containers": [{"name": "a"}],
        }
    }
    assert strategic_merge(live, patch) == {
        "spec": {"containers": [{"name": "a", "image": "x:2", "env": []}]}
    }


def test_json_patch_adds_replaces_removes_and_tests() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "items": [1, 2]}
    ops = [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
        {"op": "replace", "path": "/items/0", "value": 9},
        {"op": "remove", "path": "/items/1"},
    ]
    assert json_patch(doc, ops) == {"metadata": {"labels": {"a": "1", "b/c": "2"}}, "items": [9]}


def test_server_side_apply_prunes_what_the_manager_stopped_setting() -> None:
    first = {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "app:1",
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"limits": {"memory": "64Mi"}},
                }
            ]
        }
    }
    live = apply(None, None, first)
    live["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"  # set by the server, not the manager
    second = {"spec": {"containers": [{"name": "web", "image": "app:2"}]}}
    assert apply(live, first, second) == {
        "spec": {"containers": [{"name": "web", "image": "app:2", "imagePullPolicy": "IfNotPresent"}]}
    }


def test_protobuf_bodies_kubectl_sent_decode_to_objects() -> None:
    configmap = decode((DATA / "kubectl-create-configmap.pb").read_bytes())
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "greeting"
    assert configmap["data"] == {"hello": "world", "lang": "en"}
    secret = decode((DATA / "kubectl-create-secret.pb").read_bytes())
    assert secret["kind"] == "Secret" and secret["data"] == {"token": "czNjcjN0"}


def test_template_hash_ignores_the_null_creation_timestamp_rollout_undo_sends() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    undo = {
        "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}, "creationTimestamp": None},
        "spec": template["spec"],
    }
    assert template_hash(template) == template_hash(undo)


# ---------------------------------------------------------------------------------------------- API semantics
def test_writes_follow_the_api_servers_rules(cluster: FakeCluster) -> None:
    ns = "/apis/apps/v1/namespaces/default/deployments"
    body = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "w"}},
            "template": {
                "metadata": {"labels": {"app": "w"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
        "status": {"replicas": 99},
    }
    created = http(cluster, "POST", ns, body)
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    assert created.get("status", {}).get("replicas") != 99  # clients never write status
    again = http(cluster, "POST", ns, body)
    assert (again["kind"], again["reason"], again["code"]) == ("Status", "AlreadyExists", 409)
    labelled = http(
        cluster, "PATCH", f"{ns}/web", {"metadata": {"labels": {"x": "1"}}}, "application/merge-patch+json"
    )
    assert labelled["metadata"]["generation"] == 1  # metadata only: no new generation
    scaled = http(cluster, "PATCH", f"{ns}/web", {"spec": {"replicas": 2}}, "application/merge-patch+json")
    assert scaled["metadata"]["generation"] == 2
    stale = {
        **scaled,
        "metadata": {**scaled["metadata"], "resourceVersion": created["metadata"]["resourceVersion"]},
    }
    conflict = http(cluster, "PUT", f"{ns}/web", stale)
    assert (conflict["reason"], conflict["code"]) == ("Conflict", 409)
    status = http(cluster, "PUT", f"{ns}/web/status", {**scaled, "status": {"replicas": 5}})
    assert status["status"]["replicas"] == 5 and status["metadata"]["generation"] == 2
    missing = http(cluster, "POST", "/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "c"}})
    assert (missing["reason"], missing["code"], missing["message"]) == (
        "NotFound",
        404,
        'namespaces "nowhere" not found',
    )
    secret = http(
        cluster,
        "POST",
        "/api/v1/namespaces/default/secrets",
        {"metadata": {"generateName": "s-"}, "stringData": {"k": "v"}},
    )
    assert secret["metadata"]["name"].startswith("s-") and secret["data"] == {"k": "dg=="}
    assert "stringData" not in secret


def test_deleting_an_owner_cascades_unless_orphaned(cluster: FakeCluster) -> None:
    store = cluster.store
    for name in ("keep", "drop"):
        owner = store.create("v1", "configmaps", "default", {"metadata": {"name": name}})
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": owner["metadata"]["uid"]}
        store.create(
            "v1", "configmaps", "default", {"metadata": {"name": f"{name}-child", "ownerReferences": [ref]}}
        )
    http(cluster, "DELETE", "/api/v1/namespaces/default/configmaps/keep", {"propagationPolicy": "Orphan"})
    http(cluster, "DELETE", "/api/v1/namespaces/default/configmaps/drop?propagationPolicy=Background")
    assert cluster.get("v1", "configmaps", "default", "keep-child")["metadata"]["ownerReferences"] == []
    assert cluster.get("v1", "configmaps", "default", "drop-child") is None


def test_watchlist_sends_initial_events_a_bookmark_then_changes(cluster: FakeCluster) -> None:
    cluster.store.create("v1", "configmaps", "default", {"metadata": {"name": "before"}})
    url = (
        f"{cluster.url}/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true"
        "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=5"
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        first = json.loads(response.readline())
        bookmark = json.loads(response.readline())
        cluster.store.create("v1", "configmaps", "default", {"metadata": {"name": "after"}})
        later = json.loads(response.readline())
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "before")
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert (later["type"], later["object"]["metadata"]["name"]) == ("ADDED", "after")


def test_a_deployment_gets_a_replicaset_and_pods_that_stay_pending_without_docker(
    cluster: FakeCluster,
) -> None:
    cluster.store.create(
        "v1",
        "pods",
        "default",
        {
            "metadata": {"name": "huge"},
            "spec": {
                "containers": [{"name": "c", "image": "i", "resources": {"requests": {"memory": "64Gi"}}}]
            },
        },
    )
    cluster.store.create(
        "apps/v1",
        "deployments",
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "progressDeadlineSeconds": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    events = wait_for(
        lambda: [e for e in cluster.objects("v1", "events") if e["reason"] == "FailedScheduling"]
    )
    assert events[0]["message"] == "0/1 nodes are available: 1 Insufficient memory."
    pods = wait_for(
        lambda: [
            p
            for p in cluster.objects("v1", "pods", "default")
            if p["metadata"]["name"] != "huge" and p["spec"].get("nodeName")
        ],
        count=2,
    )
    rs = cluster.objects("apps/v1", "replicasets", "default")
    assert len(rs) == 1 and rs[0]["metadata"]["ownerReferences"][0]["controller"] is True
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {
        rs[0]["metadata"]["labels"]["pod-template-hash"]
    }
    assert {p["status"]["phase"] for p in pods} == {"Pending"}

    def progressing() -> list[dict[str, Any]]:
        status = cluster.get("apps/v1", "deployments", "default", "web").get("status", {})
        return [
            c for c in status.get("conditions", []) if c["type"] == "Progressing" and c["status"] == "False"
        ]

    assert wait_for(progressing)[0]["reason"] == "ProgressDeadlineExceeded"
    cluster.store.delete("apps/v1", "deployments", "default", "web", "Background")
    assert [p["metadata"]["name"] for p in cluster.objects("v1", "pods", "default")] == ["huge"]
    assert cluster.objects("apps/v1", "replicasets", "default") == []


def test_a_statefulset_creates_its_pods_in_order_and_waits_for_each(cluster: FakeCluster) -> None:
    template = {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    spec = {
        "replicas": 2,
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": template,
    }
    cluster.store.create("apps/v1", "statefulsets", "default", {"metadata": {"name": "db"}, "spec": spec})
    wait_for(
        lambda: (
            cluster.get("apps/v1", "statefulsets", "default", "db").get("status", {}).get("updateRevision")
        )
    )
    status = cluster.get("apps/v1", "statefulsets", "default", "db")["status"]
    assert [p["metadata"]["name"] for p in cluster.objects("v1", "pods", "default")] == [
        "db-0"
    ]  # never Ready
    assert (status["replicas"], status["readyReplicas"], status["observedGeneration"]) == (1, 0, 1)
    assert status["currentRevision"] == status["updateRevision"]


def wait_for(probe: Any, count: int = 1, timeout: float = 5.0) -> Any:
    """Poll ``probe`` until it returns at least ``count`` items, or a non-empty string (the controllers run
    every 0.3 s)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        have = len(found) if found else 0
        if have >= count or time.monotonic() > deadline:
            assert have >= count, f"only {found!r} after {timeout} s"
            return found
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------- real clients
def test_python_client_crud_on_leases_and_configmaps(api: Any) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core, coordination = client.CoreV1Api(api), client.CoordinationV1Api(api)
    lease = coordination.create_namespaced_lease(
        "default", {"metadata": {"name": "deploy-lock"}, "spec": {"holderIdentity": "runner-1"}}
    )
    lease.spec.holder_identity = "runner-2"
    coordination.replace_namespaced_lease("deploy-lock", "default", lease)
    with pytest.raises(ApiException) as stale:
        coordination.replace_namespaced_lease("deploy-lock", "default", lease)  # same resourceVersion again
    assert stale.value.status == 409
    assert coordination.read_namespaced_lease("deploy-lock", "default").spec.holder_identity == "runner-2"
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg", "labels": {"app": "x"}}, "data": {"a": "1"}}
    )
    core.patch_namespaced_config_map("cfg", "default", {"data": {"b": "2"}})
    listed = core.list_namespaced_config_map("default", label_selector="app=x")
    assert [(c.metadata.name, c.data) for c in listed.items] == [("cfg", {"a": "1", "b": "2"})]
    core.delete_namespaced_config_map("cfg", "default")
    coordination.delete_namespaced_lease("deploy-lock", "default")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("cfg", "default")
    assert gone.value.status == 404 and json.loads(gone.value.body)["reason"] == "NotFound"


@pytest.mark.parametrize("major", [3, 4])
def test_real_helm_installs_upgrades_rolls_back_and_uninstalls(
    major: int, cluster: FakeCluster, tmp_path: Path
) -> None:
    helm = helm_binary(major)
    chart = tmp_path / "chart"
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig(tmp_path / "kubeconfig")),
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }

    def run(*args: str) -> str:
        done = subprocess.run([str(helm), *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
        return done.stdout

    def container() -> dict[str, Any]:
        return cluster.get("apps/v1", "deployments", "default", "demo")["spec"]["template"]["spec"][
            "containers"
        ][0]

    run("upgrade", "--install", "demo", str(chart), "--set", "env.DEBUG=1")
    assert container()["env"] == [{"name": "DEBUG", "value": "1"}]
    run("upgrade", "--install", "demo", str(chart), "--set", "image=app:2")
    assert container()["image"] == "app:2"
    assert not container().get("env")  # removed by the upgrade (helm 4: server-side apply prunes it)
    assert cluster.get("v1", "configmaps", "default", "demo-hook")["data"] == {"image": "app:2"}  # a hook
    assert any(
        path.startswith("/openapi/v3/api") for _, path, _ in cluster.requests
    )  # validated, no flag needed
    run("rollback", "demo", "1")
    assert container()["image"] == "app:1"
    history = json.loads(run("history", "demo", "-o", "json"))
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "deployed"),
    ]
    assert json.loads(run("status", "demo", "-o", "json"))["info"]["description"] == "Rollback to 1"
    run("uninstall", "demo")
    assert cluster.get("apps/v1", "deployments", "default", "demo") is None
    assert cluster.objects("v1", "secrets", "default") == []
    kinds = {c for m, _, c in cluster.requests if m in ("POST", "PUT")}
    assert "application/vnd.kubernetes.protobuf" in kinds  # helm's release Secrets


def test_kubectl_applies_prints_tables_and_rollout_undo_reuses_the_old_replicaset(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    kubectl = helm_binary(3).parent / "kubectl"  # scripts/helm-binaries unpacks kubectl beside helm
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig(tmp_path / "kubeconfig"))}
    manifest = tmp_path / "web.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, image: 'app:1'}]}\n"
    )

    def run(*args: str) -> str:
        done = subprocess.run([str(kubectl), *args], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    run("apply", "-f", str(manifest))
    wait_for(lambda: cluster.objects("apps/v1", "replicasets", "default"))
    run("set", "image", "deployment/web", "web=app:2")
    wait_for(lambda: cluster.objects("apps/v1", "replicasets", "default"), count=2)
    run("rollout", "undo", "deployment/web")
    image = run("get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image == "app:1"
    assert len(cluster.objects("apps/v1", "replicasets", "default")) == 2
    header = run("get", "pods").splitlines()[0].split()
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    run("create", "configmap", "greeting", "--from-literal=hello=world")  # a protobuf body
    assert cluster.get("v1", "configmaps", "default", "greeting")["data"] == {"hello": "world"}

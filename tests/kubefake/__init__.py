"""kubefake: a FAKE Kubernetes API server for tests. Not a Kubernetes; never use it for anything else.

What it covers: enough of the API for real clients (helm 3.18 and 4.1, kubectl get/logs/apply, the
kubernetes Python client) to install, upgrade, roll back, list, watch, patch and delete the usual
namespaced kinds (discovery, a minimal ``/openapi/v3``, protobuf Secret/ConfigMap request bodies,
strategic-merge/merge/JSON patches, server-side apply, watches with WatchList bookmarks, label and
field selectors, resourceVersion conflicts, owner-reference cascades); controllers for Deployments,
ReplicaSets, StatefulSets, DaemonSets and Jobs; and, given a Docker engine, pods as real containers
(image pulls, env from Secrets/ConfigMaps, emptyDir/configMap/secret volumes, init containers, memory
limits and OOM kills, crash back-off, probes, logs, Events, and the service/pod proxy).

What it does not: one node and no scheduler beyond a requests-vs-capacity check; no network policy,
no DNS, no kube-proxy (reach pods through the proxy or their published ports); apply semantics are
approximate (no managedFields, no conflicts between field managers); strategic merge is approximate;
deletion is immediate (no finalizers, no graceful deletion); no admission, no validation, no auth (any
token passes), plain http on 127.0.0.1; protobuf request bodies only for Secrets, ConfigMaps, Namespaces
and DeleteOptions (``kubectl create deployment`` fails: use ``kubectl apply``); no CRDs, no RBAC kinds.
Timings (back-offs, probe periods) are scaled down: see kubelet.py.

    from kubefake import FakeCluster
    with FakeCluster(docker_host=None) as cluster:   # API only: pods are scheduled but never run
        cluster.kubeconfig(tmp / "kubeconfig")
"""

from .cluster import FakeCluster

__all__ = ["FakeCluster"]

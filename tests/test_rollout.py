"""Readiness verdicts from Kubernetes objects shaped as the API server returns them (JSON, camelCase)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeline.rollout import Verdict, judge, owned_pods, pod_rows, pod_verdict, workload_verdict

Object = dict[str, Any]
UID = "5f0c7a52-6f0e-4c1a-9d0e-1b2c3d4e5f60"
TEMPLATE: Object = {
    "metadata": {"creationTimestamp": None, "labels": {"app.kubernetes.io/instance": "app"}},
    "spec": {
        "containers": [
            {"name": "web", "image": "registry.example.com/app:2.0.0", "imagePullPolicy": "IfNotPresent",
             "resources": {}, "terminationMessagePath": "/dev/termination-log"},
        ],
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
    },
}  # fmt: skip


def deployment(generation: int = 2, observed: int = 2, conditions: list[Object] | None = None,
               template: Object | None = None, **status: int) -> Object:  # fmt: skip
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "uid": UID, "generation": generation},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app.kubernetes.io/instance": "app"}},
                 "template": template or TEMPLATE},
        "status": {"observedGeneration": observed, "conditions": conditions or [], **status},
    }  # fmt: skip


DONE = {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        ({"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3},
         "Deployment/web: 1 of 3 new pods created"),
        ({"replicas": 5, "updatedReplicas": 3, "availableReplicas": 3},
         "Deployment/web: 2 old pods still terminating"),
        ({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 1},
         "Deployment/web: 1 of 3 new pods available"),
        ({}, "Deployment/web: 0 of 3 new pods created"),
    ],
)  # fmt: skip
def test_a_deployment_still_rolling_is_waiting_and_says_for_what(status: Object, detail: str) -> None:
    assert workload_verdict("Deployment", deployment(**status)) == Verdict("waiting", detail)


def test_a_deployment_whose_new_pods_are_all_available_is_ready() -> None:
    assert workload_verdict("Deployment", deployment(**DONE)) == Verdict(
        "ready", "Deployment/web: 3 of 3 pods available"
    )


def test_a_deployment_the_controller_has_not_seen_yet_waits_even_when_its_old_status_looks_done() -> None:
    assert workload_verdict("Deployment", deployment(generation=3, observed=2, **DONE)) == Verdict(
        "waiting", "Deployment/web: the controller has not seen generation 3 yet"
    )


def test_a_deployment_past_its_progress_deadline_has_failed() -> None:
    stuck = {
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "web-7d9f8b6c5d" has timed out progressing.',
    }  # fmt: skip
    verdict = workload_verdict("Deployment", deployment(conditions=[stuck], replicas=4, updatedReplicas=1))
    assert verdict == Verdict(
        "failed", 'Deployment/web: ReplicaSet "web-7d9f8b6c5d" has timed out progressing.',
        reason="ProgressDeadlineExceeded",
    )  # fmt: skip


def test_a_deployment_still_progressing_is_not_failed() -> None:
    progressing = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
    assert workload_verdict("Deployment", deployment(conditions=[progressing], **DONE)).state == "ready"


def statefulset(**status: Any) -> Object:
    return {
        "kind": "StatefulSet", "metadata": {"name": "db", "generation": 4},
        "spec": {"replicas": 2}, "status": {"observedGeneration": 4, **status},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ({"updatedReplicas": 1, "readyReplicas": 2, "currentRevision": "db-1", "updateRevision": "db-2"},
         Verdict("waiting", "StatefulSet/db: 1 of 2 pods updated")),
        ({"updatedReplicas": 2, "readyReplicas": 2, "currentRevision": "db-1", "updateRevision": "db-2"},
         Verdict("waiting", "StatefulSet/db: 2 of 2 pods updated")),
        ({"updatedReplicas": 2, "readyReplicas": 1, "currentRevision": "db-2", "updateRevision": "db-2"},
         Verdict("waiting", "StatefulSet/db: 1 of 2 pods ready")),
        ({"updatedReplicas": 2, "readyReplicas": 2, "currentRevision": "db-2", "updateRevision": "db-2"},
         Verdict("ready", "StatefulSet/db: 2 of 2 pods ready")),
    ],
)  # fmt: skip
def test_a_statefulset_is_ready_when_every_pod_is_of_the_update_revision_and_ready(
    status: Object, verdict: Verdict
) -> None:
    assert workload_verdict("StatefulSet", statefulset(**status)) == verdict


def daemonset(**status: int) -> Object:
    return {"kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, **status}}  # fmt: skip


def test_a_daemonset_is_ready_when_every_node_runs_an_updated_available_pod() -> None:
    assert workload_verdict("DaemonSet", daemonset(updatedNumberScheduled=2, numberAvailable=3)) == Verdict(
        "waiting", "DaemonSet/agent: 2 updated, 3 of 3 available"
    )
    assert workload_verdict("DaemonSet", daemonset(updatedNumberScheduled=3, numberAvailable=3)) == Verdict(
        "ready", "DaemonSet/agent: 3 of 3 available"
    )


def job(*conditions: Object, active: int = 0) -> Object:
    return {"kind": "Job", "metadata": {"name": "seed", "generation": 1},
            "status": {"active": active, "conditions": list(conditions)}}  # fmt: skip


def test_a_job_is_ready_when_complete_failed_when_failed_and_waiting_while_active() -> None:
    complete = {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-30T10:00:00Z"}
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
              "message": "Job has reached the specified backoff limit"}  # fmt: skip
    assert workload_verdict("Job", job(complete)) == Verdict("ready", "Job/seed: complete")
    assert workload_verdict("Job", job(failed)) == Verdict(
        "failed", "Job/seed: Job has reached the specified backoff limit", reason="BackoffLimitExceeded"
    )
    assert workload_verdict("Job", job(active=1)) == Verdict("waiting", "Job/seed: 1 pods active")


NEW_LABELS = {"app.kubernetes.io/instance": "app", "pod-template-hash": "7d9f8b6c5d"}


def pod(name: str = "web-7d9f8b6c5d-x2kqp", *statuses: Object, phase: str = "Running",
        labels: Object | None = None, **extra: Any) -> Object:  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "prod", "labels": labels or dict(NEW_LABELS), **extra},
        "spec": {"containers": [{"name": "web", "image": "registry.example.com/app:2.0.0"}]},
        "status": {"phase": phase, "containerStatuses": list(statuses)},
    }  # fmt: skip


def waiting(reason: str, message: str = "", restarts: int = 0, last: Object | None = None,
            name: str = "web") -> Object:  # fmt: skip
    return {
        "name": name, "ready": False, "restartCount": restarts, "image": "registry.example.com/app:2.0.0",
        "state": {"waiting": {"reason": reason, **({"message": message} if message else {})}},
        "lastState": {"terminated": last} if last else {},
    }  # fmt: skip


RUNNING = {"name": "web", "ready": True, "restartCount": 0, "lastState": {},
           "state": {"running": {"startedAt": "2026-11-30T10:00:00Z"}}}  # fmt: skip


def test_a_crash_loop_fails_at_once_naming_the_pod_the_container_and_the_last_exit_code() -> None:
    crashed = {"exitCode": 3, "reason": "Error", "startedAt": "2026-11-30T10:00:01Z"}
    message = "back-off 40s restarting failed container=web pod=web-7d9f8b6c5d-x2kqp_prod(1234)"
    verdict = pod_verdict(pod("web-7d9f8b6c5d-x2kqp", waiting("CrashLoopBackOff", message, 3, crashed)))
    assert verdict == Verdict(
        "failed", f"pod web-7d9f8b6c5d-x2kqp, container web: CrashLoopBackOff (last exit 3): {message}",
        "web-7d9f8b6c5d-x2kqp", "web", "CrashLoopBackOff",
    )  # fmt: skip


def test_an_image_that_is_backed_off_fails() -> None:
    message = 'Back-off pulling image "registry.example.com/app:2.0.1"'
    verdict = pod_verdict(pod("web-1", waiting("ImagePullBackOff", message)))
    assert verdict == Verdict(
        "failed", f"pod web-1, container web: ImagePullBackOff: {message}", "web-1", "web", "ImagePullBackOff"
    )


@pytest.mark.parametrize(
    "message",
    [
        'rpc error: code = NotFound desc = failed to pull and unpack image "registry.example.com/app:9.9.9": '
        'failed to resolve reference "registry.example.com/app:9.9.9": '
        "registry.example.com/app:9.9.9: not found",
        "Error response from daemon: manifest for registry.example.com/app:9.9.9 not found: manifest unknown",
        'failed to pull image "ghcr.io/acme/private:1": 401 Unauthorized',
        "pull access denied for app, repository does not exist or may require authorization",
    ],
)
def test_an_image_pull_error_that_says_the_image_will_never_come_fails(message: str) -> None:
    verdict = pod_verdict(pod("web-1", waiting("ErrImagePull", message)))
    assert verdict is not None and (verdict.state, verdict.reason) == ("failed", "ErrImagePull")


@pytest.mark.parametrize(
    "message",
    [
        'failed to pull and unpack image "registry.example.com/app:2.0.0": failed to do request: '
        'Head "https://registry.example.com/v2/app/manifests/2.0.0": dial tcp 10.0.0.9:443: i/o timeout',
        "toomanyrequests: You have reached your pull rate limit.",
        "",
    ],
)
def test_an_image_pull_error_that_may_heal_is_left_to_the_kubelet_to_retry(message: str) -> None:
    assert pod_verdict(pod("web-1", waiting("ErrImagePull", message))) is None


def test_a_container_whose_config_cannot_be_made_fails() -> None:
    message = 'secret "app-database" not found'
    verdict = pod_verdict(pod("web-1", waiting("CreateContainerConfigError", message)))
    assert verdict == Verdict(
        "failed", f"pod web-1, container web: CreateContainerConfigError: {message}",
        "web-1", "web", "CreateContainerConfigError",
    )  # fmt: skip


def test_a_container_killed_out_of_memory_and_restarted_fails_as_oomkilled() -> None:
    oom = {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-11-30T10:00:01Z"}
    restarted = {**RUNNING, "ready": False, "restartCount": 1, "lastState": {"terminated": oom}}
    assert pod_verdict(pod("web-1", restarted)) == Verdict(
        "failed", "pod web-1, container web: OOMKilled (exit 137: out of memory at its limit)",
        "web-1", "web", "OOMKilled",
    )  # fmt: skip


def test_an_init_container_in_a_crash_loop_fails_the_pod() -> None:
    broken = pod("web-1", phase="Pending")
    broken["status"]["initContainerStatuses"] = [waiting("CrashLoopBackOff", restarts=2, name="wait-db")]
    verdict = pod_verdict(broken)
    assert verdict is not None and (verdict.container, verdict.reason) == ("wait-db", "CrashLoopBackOff")


def test_a_pod_no_node_can_take_fails_as_unschedulable() -> None:
    pending = pod("web-1", phase="Pending")
    message = "0/3 nodes are available: 3 Insufficient memory."
    pending["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    ]
    assert pod_verdict(pending) == Verdict(
        "failed", f"pod web-1: Unschedulable: {message}", "web-1", "", "Unschedulable"
    )


def test_a_running_ready_pod_or_one_still_starting_is_no_verdict() -> None:
    assert pod_verdict(pod("web-1", RUNNING)) is None
    assert pod_verdict(pod("web-1", waiting("ContainerCreating"), phase="Pending")) is None
    assert pod_verdict(pod("web-1", phase="Pending")) is None


def replicaset(name: str, hash_: str, template: Object, owner: str = UID) -> Object:
    labelled = copy.deepcopy(template)
    labelled["metadata"]["labels"]["pod-template-hash"] = hash_
    return {
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": {"pod-template-hash": hash_}, "ownerReferences": [
            {"kind": "Deployment", "name": "web", "uid": owner, "controller": True},
        ]},
        "spec": {"template": labelled},
    }  # fmt: skip


OLD_TEMPLATE = copy.deepcopy(TEMPLATE)
OLD_TEMPLATE["spec"]["containers"][0]["image"] = "registry.example.com/app:1.0.0"


def labelled(name: str, hash_: str, **extra: Any) -> Object:
    return pod(
        name, RUNNING, labels={"app.kubernetes.io/instance": "app", "pod-template-hash": hash_}, **extra
    )


def test_a_deployments_pods_are_those_of_the_replicaset_with_its_current_template() -> None:
    sets = [
        replicaset("web-5c6b7a8d9e", "5c6b7a8d9e", OLD_TEMPLATE),
        replicaset("web-7d9f8b6c5d", "7d9f8b6c5d", TEMPLATE),
    ]
    # The API server drops a null creationTimestamp from the ReplicaSet's template: still the same template.
    del sets[1]["spec"]["template"]["metadata"]["creationTimestamp"]
    pods = [
        labelled("web-5c6b7a8d9e-aaaaa", "5c6b7a8d9e"),
        labelled("web-7d9f8b6c5d-bbbbb", "7d9f8b6c5d"),
        labelled("web-7d9f8b6c5d-ccccc", "7d9f8b6c5d", deletionTimestamp="2026-11-30T10:00:00Z"),
    ]
    assert [p["metadata"]["name"] for p in owned_pods(deployment(), "Deployment", pods, sets)] == [
        "web-7d9f8b6c5d-bbbbb"
    ]


def test_a_replicaset_of_another_deployment_with_the_same_template_is_not_the_deployments() -> None:
    sets = [replicaset("other-7d9f8b6c5d", "7d9f8b6c5d", TEMPLATE, owner="another-uid")]
    pods = [labelled("web-5c6b7a8d9e-aaaaa", "5c6b7a8d9e")]
    assert owned_pods(deployment(), "Deployment", pods, sets) == []


def test_before_the_new_replicaset_exists_the_old_pods_are_not_judged_as_the_new_release() -> None:
    sets = [replicaset("web-5c6b7a8d9e", "5c6b7a8d9e", OLD_TEMPLATE)]
    old_labels = {"app.kubernetes.io/instance": "app", "pod-template-hash": "5c6b7a8d9e"}
    crashing = pod("web-5c6b7a8d9e-aaaaa", waiting("CrashLoopBackOff", restarts=9), labels=old_labels)
    mine = owned_pods(deployment(generation=3, observed=2), "Deployment", [crashing], sets)
    assert mine == []
    assert judge([("Deployment", deployment(generation=3, observed=2), mine)]).state == "waiting"


def test_the_pods_of_other_workloads_are_every_pod_not_terminating() -> None:
    pods = [labelled("db-0", "x"), labelled("db-1", "x", deletionTimestamp="2026-11-30T10:00:00Z")]
    assert [p["metadata"]["name"] for p in owned_pods(statefulset(), "StatefulSet", pods, [])] == ["db-0"]


def test_judge_reports_a_pod_that_will_not_heal_before_any_workload_that_waits() -> None:
    rolling = deployment(replicas=4, updatedReplicas=1, availableReplicas=3)
    crashing = pod("web-7d9f8b6c5d-x2kqp", waiting("CrashLoopBackOff", restarts=3))
    verdict = judge(
        [("StatefulSet", statefulset(updatedReplicas=0), []), ("Deployment", rolling, [crashing])]
    )
    assert (verdict.state, verdict.pod, verdict.reason) == (
        "failed",
        "web-7d9f8b6c5d-x2kqp",
        "CrashLoopBackOff",
    )


def test_judge_waits_for_every_workload_and_is_ready_when_all_are() -> None:
    ready = ("Deployment", deployment(**DONE), [pod("web-1", RUNNING)])
    verdict = judge([ready, ("Job", job(active=1), [])])
    assert verdict == Verdict("waiting", "Job/seed: 1 pods active")
    done = {"type": "Complete", "status": "True"}
    assert judge([ready, ("Job", job(done), [])]) == Verdict("ready", "2 workload(s) rolled out")


def test_judge_reports_a_failed_workload() -> None:
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    verdict = judge([("Deployment", deployment(conditions=[stuck]), [])])
    assert verdict == Verdict(
        "failed", "Deployment/web: progress deadline exceeded", reason="ProgressDeadlineExceeded"
    )


def test_pod_rows_show_phase_readiness_restarts_reason_and_images() -> None:
    crashing = pod(
        "web-2", {**RUNNING, "ready": True}, waiting("CrashLoopBackOff", restarts=4, name="sidecar")
    )
    crashing["spec"]["containers"].append({"name": "sidecar", "image": "busybox:1.36"})
    assert pod_rows([pod("web-1", RUNNING), crashing, pod("web-3", phase="Pending")]) == [
        {"name": "web-1", "phase": "Running", "ready": "1/1", "restarts": 0, "reason": "",
         "images": ["registry.example.com/app:2.0.0"]},
        {"name": "web-2", "phase": "Running", "ready": "1/2", "restarts": 4, "reason": "CrashLoopBackOff",
         "images": ["registry.example.com/app:2.0.0", "busybox:1.36"]},
        {"name": "web-3", "phase": "Pending", "ready": "0/1", "restarts": 0, "reason": "",
         "images": ["registry.example.com/app:2.0.0"]},
    ]  # fmt: skip

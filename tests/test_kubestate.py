"""The Helm target's records and waits in the cluster — the ledger ConfigMap, the Lease lock, migration
Jobs and the rollout watch — through the real kubernetes client against the fake API server (API only:
pods are scheduled but never start, so every wait ends at its deadline or a signal)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubefake import FakeCluster

from pipeline.engine.cancel import Call, Cancellation
from pipeline.engine.values import LockInfo, UnitState
from pipeline.errors import Cancelled, DeadlineExceeded
from pipeline.journal import Entry
from pipeline.kube import Kube, KubeError
from pipeline.targets import helmjobs, kubestate


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[Kube, FakeCluster]]:
    with FakeCluster(docker_host=None) as cluster:
        client = Kube.connect(str(cluster.kubeconfig(tmp_path / "kubeconfig")), "", "default", "k")
        try:
            yield client, cluster
        finally:
            client.close()


def renew_time(cluster: FakeCluster) -> str:
    lease = cluster.get("coordination.k8s.io/v1", "leases", "default", "app.pipeline-lock")
    assert lease is not None
    return str(lease["spec"]["renewTime"])


def entry(version: str, result: str = "healthy", revision: str = "") -> Entry:
    return Entry("deploy", version, None, None, None, None, result, "", "ci", "2026-12-01T00:00:00Z",
                 revision=revision)  # fmt: skip


def test_the_ledger_is_created_then_appended_and_read_back_with_helm_revisions(
    kube: tuple[Kube, FakeCluster],
) -> None:
    client, cluster = kube
    assert kubestate.read_ledger(client, "app", 5) == ([], [], False, "")
    kubestate.append_ledger(client, "app", entry("1.0.0", revision="1").line(), 5)
    kubestate.append_ledger(client, "app", entry("2.0.0", "rolled_back", "2").line(), 5)
    entries, damaged, cut, why = kubestate.read_ledger(client, "app", 5)
    assert [(e.version, e.result, e.revision) for e in entries] == [
        ("1.0.0", "healthy", "1"),
        ("2.0.0", "rolled_back", "2"),
    ]
    assert (damaged, cut, why) == ([], False, "")
    stored = cluster.get("v1", "configmaps", "default", "app.pipeline-ledger")
    assert stored is not None
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "invoke-pipeline"


def test_the_ledger_keeps_its_newest_lines_and_marks_a_foreign_line_damaged(
    kube: tuple[Kube, FakeCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = kube
    monkeypatch.setattr(kubestate, "KEEP_LINES", 3)
    for n in range(5):
        kubestate.append_ledger(client, "app", entry(f"1.0.{n}").line(), 5)
    kubestate.append_ledger(client, "app", "not json\n", 5)
    entries, damaged, _, _ = kubestate.read_ledger(client, "app", 5)
    assert [e.version for e in entries] == ["1.0.3", "1.0.4"]
    assert [d.line for d in damaged] == [3]


def test_concurrent_appends_all_land_through_resource_version_conflicts(
    kube: tuple[Kube, FakeCluster],
) -> None:
    client, _ = kube
    kubestate.append_ledger(client, "app", entry("0.0.1").line(), 5)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            kubestate.append_ledger(client, "app", entry(f"1.0.{n}").line(), 5)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    entries = kubestate.read_ledger(client, "app", 5)[0]
    lost = [e for e in errors if not (isinstance(e, KubeError) and e.code == 409)]
    assert not lost, lost
    assert len(entries) == 5 - len(errors)  # each write landed whole, or said it did not


def test_the_lock_is_taken_once_and_names_its_holder_to_the_next(kube: tuple[Kube, FakeCluster]) -> None:
    client, cluster = kube
    mine = LockInfo(who="alice", at="2026-12-01T00:00:00Z", version="2.0.0", run="run-a")
    assert kubestate.take_lock(client, "app", mine, 5) is None
    held = kubestate.take_lock(client, "app", LockInfo(who="bob", run="run-b"), 5)
    assert held is not None and (held.who, held.version, held.run) == ("alice", "2.0.0", "run-a")
    lease = cluster.get("coordination.k8s.io/v1", "leases", "default", "app.pipeline-lock")
    assert lease is not None and lease["spec"]["holderIdentity"] == "run-a"
    kubestate.drop_lock(client, "app", 5)
    assert kubestate.read_lock(client, "app", 5) is None
    kubestate.drop_lock(client, "app", 5)  # already gone is fine


def test_only_the_interrupted_run_named_may_be_taken_over(kube: tuple[Kube, FakeCluster]) -> None:
    client, _ = kube
    kubestate.take_lock(client, "app", LockInfo(who="ci", run="dead-run"), 5)
    other = kubestate.take_lock(client, "app", LockInfo(who="oncall", run="r2"), 5, take_over="another-run")
    assert other is not None and other.run == "dead-run"
    assert (
        kubestate.take_lock(client, "app", LockInfo(who="oncall", run="r2"), 5, take_over="dead-run") is None
    )
    found = kubestate.read_lock(client, "app", 5)
    assert found is not None and (found.who, found.run) == ("oncall", "r2")


def test_a_lease_whose_holder_is_not_ours_is_held_and_never_taken_over(
    kube: tuple[Kube, FakeCluster],
) -> None:
    client, cluster = kube
    cluster.store.create(
        "coordination.k8s.io/v1", "leases", "default",
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "app.pipeline-lock", "annotations": {kubestate.HOLDER: "{not json"}},
         "spec": {"holderIdentity": "someone"}},
    )  # fmt: skip
    held = kubestate.take_lock(client, "app", LockInfo(who="ci", run="r"), 5, take_over="")
    assert held is not None and held.damaged == "not JSON"
    again = kubestate.take_lock(client, "app", LockInfo(who="ci", run="r"), 5, take_over="anything")
    assert again is not None and again.damaged
    annotations = cluster.get("coordination.k8s.io/v1", "leases", "default", "app.pipeline-lock")["metadata"]
    assert json.dumps(annotations).count("not json") == 1  # untouched


def test_a_renewed_lease_is_a_running_deploy_and_an_expired_one_an_interrupted_run(
    kube: tuple[Kube, FakeCluster],
) -> None:
    client, cluster = kube
    assert kubestate.take_lock(client, "app", LockInfo(who="ci", run="r1"), 5, lease_seconds=3) is None
    beat = kubestate.Heartbeat(client, "app", "r1", 3)
    try:
        first = cluster.get("coordination.k8s.io/v1", "leases", "default", "app.pipeline-lock")
        assert first is not None
        deadline = time.monotonic() + 10
        while renew_time(cluster) == first["spec"]["renewTime"]:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.2)
        live = kubestate.read_lock(client, "app", 5)
        assert live is not None and live.live and "running: renewed" in live.describe()
        progress = entry("2.0.0", "in_progress")
        state = UnitState("app", [Entry(**{**progress.__dict__, "run": "r1"})], live)
        assert state.interrupted() == []  # a run still renewing its lease is not interrupted
    finally:
        beat.stop()
    lease = cluster.get("coordination.k8s.io/v1", "leases", "default", "app.pipeline-lock")
    lease["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"  # as if the run died long ago
    cluster.store.replace("coordination.k8s.io/v1", "leases", "default", "app.pipeline-lock", lease)
    dead = kubestate.read_lock(client, "app", 5)
    assert dead is not None and not dead.live and "no longer renewed" in dead.describe()
    state = UnitState("app", [Entry(**{**entry("2.0.0", "in_progress").__dict__, "run": "r1"})], dead)
    assert [e.version for e in state.interrupted()] == ["2.0.0"]


def job(name: str = "migrate") -> dict[str, object]:
    """A Job whose pod never starts here (an API-only cluster runs no containers)."""
    container = {"name": "m", "image": "app:1", "command": ["alembic", "upgrade", "head"]}
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": f"{name}-"},
        "spec": {"backoffLimit": 0,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }  # fmt: skip


def test_a_migration_job_past_its_deadline_is_deleted_before_the_error(
    kube: tuple[Kube, FakeCluster],
) -> None:

    client, cluster = kube
    call = Call("migrate", "default/app", 1.5, Cancellation())
    with pytest.raises(DeadlineExceeded):
        helmjobs.run_job(client, job(), call, sleep=time.sleep)
    assert cluster.objects("batch/v1", "jobs", "default") == []  # nothing of ours keeps running


def test_a_signal_during_a_migration_job_deletes_it(kube: tuple[Kube, FakeCluster]) -> None:

    client, cluster = kube
    cancel = Cancellation(grace=0)
    call = Call("migrate", "default/app", 60, cancel)

    def sleep(seconds: float) -> None:  # the signal arrives while the Job runs
        cancel.request("SIGTERM received")
        time.sleep(min(seconds, 0.05))

    with pytest.raises(Cancelled):
        helmjobs.run_job(client, job(), call, sleep=sleep)
    assert cluster.objects("batch/v1", "jobs", "default") == []


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: "app:1"}]}
"""


def test_a_rollout_not_ready_by_the_health_deadline_fails_with_what_it_waited_for(
    kube: tuple[Kube, FakeCluster],
) -> None:
    import msgspec
    import yaml

    from pipeline.executor import FakeExecutor
    from pipeline.helmconfig import HelmEnvironment
    from pipeline.http import UrllibClient
    from pipeline.targets.helm import HelmTarget

    client, _ = kube
    client.create("deployment", yaml.safe_load(DEPLOYMENT), 5)
    env = msgspec.convert({"target": "helm", "release": "app", "chart": "chart"}, HelmEnvironment)
    target = HelmTarget(env, client, FakeExecutor(), UrllibClient())
    target.newest, target.manifests[1] = 1, DEPLOYMENT  # as after `helm upgrade`: no helm runs while it waits
    result = target.watch(Call("health", "default/app", 1.5, Cancellation()))
    assert not result.ok and result.check == "rollout"
    assert result.detail.startswith("not rolled out after") and "Deployment/app" in result.detail
    assert target.verdict is not None  # the evidence names what was waited for


def test_taking_over_a_killed_runs_lock_stops_the_migration_job_it_left_running(
    kube: tuple[Kube, FakeCluster],
) -> None:
    import msgspec

    from pipeline.executor import FakeExecutor
    from pipeline.helmconfig import HelmEnvironment
    from pipeline.http import UrllibClient
    from pipeline.targets.helm import HelmTarget

    client, cluster = kube
    kubestate.take_lock(client, "app", LockInfo(who="ci", run="dead"), 5)
    for run in ("dead", "other"):
        body = job()
        body["metadata"] = {"generateName": "app-migrate-", "labels": {"invoke-pipeline/run": run}}
        created = client.create("job", body, 5)
        created["status"] = {"active": 1}
        cluster.store.replace("batch/v1", "jobs", "default", created["metadata"]["name"], created,
                              subresource="status")  # fmt: skip
    env = msgspec.convert({"target": "helm", "release": "app", "chart": "chart"}, HelmEnvironment)
    target = HelmTarget(env, client, FakeExecutor(), UrllibClient())
    try:
        call = Call("lock", "default/app", 10, Cancellation())
        assert target.lock("default/app", LockInfo(who="oncall", run="r2"), call, take_over="dead") is None
    finally:
        target.stop_heartbeat()
    left = [
        j["metadata"]["labels"]["invoke-pipeline/run"] for j in cluster.objects("batch/v1", "jobs", "default")
    ]
    assert left == ["other"]

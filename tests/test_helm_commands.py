"""What the Helm target runs, as argv compared exactly, the parsers of what helm prints, and the plan."""

from __future__ import annotations

import json
import shlex
from typing import Any, NoReturn, cast

import pytest

from pipeline.config import load_config
from pipeline.engine.plan import render_plan
from pipeline.engine.values import Release, UnitState
from pipeline.executor import FakeExecutor
from pipeline.helm import (
    Helm,
    HelmRevision,
    Workload,
    description,
    not_found,
    parse_history,
    run_of,
    workloads,
)
from pipeline.helmconfig import HelmEnvironment
from pipeline.http import FakeHttpClient
from pipeline.journal import Entry
from pipeline.kube import Kube
from pipeline.targets.helm import HelmTarget, policy_of

KUBECONFIG = "/home/ci/.kube/config"
FILES = "/tmp/pipeline-release-2.0.0"  # the release's files folder, as of its commit
DESCRIPTION = "invoke-pipeline deploy 2.0.0 run r-42"
NEVER = ("--atomic", "--rollback-on-failure", "--wait", "--wait-for-jobs", "--force", "--cleanup-on-fail")


def environment(**settings: Any) -> HelmEnvironment:
    raw = {"target": "helm", "release": "app", "chart": "chart", **settings}
    env = load_config({"environments": {"k8s": raw}}).environments["k8s"]
    assert isinstance(env, HelmEnvironment)
    return env


def upgrade(env: HelmEnvironment, kubeconfig: str = "", timeout: float = 900.0) -> tuple[str, ...]:
    chart = f"{FILES}/{env.chart}" if env.local_chart else env.chart
    values = [f"{FILES}/{path}" for path in env.values]
    return Helm.of(env, kubeconfig).upgrade(chart, "2.0.0", env, values, DESCRIPTION, timeout)


def tail(timeout: str = "900s", history_max: str = "10") -> tuple[str, ...]:
    return (
        "--set-string", "image.tag=2.0.0", "--history-max", history_max, "--timeout", timeout,
        "--description", DESCRIPTION,
    )  # fmt: skip


def test_a_local_chart_is_upgraded_from_the_release_files_in_the_release_namespace() -> None:
    assert upgrade(environment()) == (
        "helm", "upgrade", "app", f"{FILES}/chart", "--install", "--namespace", "default", *tail(),
    )  # fmt: skip


def test_a_repository_chart_is_named_as_configured_with_its_pinned_version_and_repo() -> None:
    env = environment(chart="app", chart_version="1.2.3", repository="https://charts.example.com")
    assert upgrade(env) == (
        "helm", "upgrade", "app", "app", "--install", "--namespace", "default",
        "--version", "1.2.3", "--repo", "https://charts.example.com", *tail(),
    )  # fmt: skip


def test_an_oci_chart_is_passed_as_its_reference_with_its_version() -> None:
    env = environment(chart="oci://registry.example.com/charts/app", chart_version="0.4.0")
    assert upgrade(env) == (
        "helm", "upgrade", "app", "oci://registry.example.com/charts/app", "--install",
        "--namespace", "default", "--version", "0.4.0", *tail(),
    )  # fmt: skip


def test_every_setting_of_an_environment_reaches_the_upgrade_in_its_place() -> None:
    env = environment(
        release="shop", namespace="prod", chart="deploy/charts/app",
        values=["deploy/values.yaml", "deploy/prod.yaml"],
        version_key="app.image.tag", kube_context="prod-cluster", create_namespace=True, history_max=25,
        helm="/opt/helm/bin/helm",
    )  # fmt: skip
    assert upgrade(env, KUBECONFIG, timeout=120.9) == (
        "/opt/helm/bin/helm", "upgrade", "shop", f"{FILES}/deploy/charts/app", "--install",
        "--namespace", "prod", "--kube-context", "prod-cluster", "--kubeconfig", KUBECONFIG,
        "--create-namespace",
        "--values", f"{FILES}/deploy/values.yaml", "--values", f"{FILES}/deploy/prod.yaml",
        "--set-string", "app.image.tag=2.0.0", "--history-max", "25", "--timeout", "120s",
        "--description", DESCRIPTION,
    )  # fmt: skip


def test_a_timeout_under_a_second_is_passed_to_helm_as_one_second() -> None:
    assert upgrade(environment(), timeout=0.2)[-3:-2] == ("1s",)
    assert Helm("helm", "app", "default").rollback(3, 10, 0.0)[-1] == "1s"


def test_rollback_names_the_revision_recorded_healthy() -> None:
    helm = Helm("helm", "app", "prod", "ctx", KUBECONFIG)
    assert helm.rollback(7, 10, 600) == (
        "helm", "rollback", "app", "7", "--namespace", "prod", "--kube-context", "ctx",
        "--kubeconfig", KUBECONFIG, "--history-max", "10", "--timeout", "600s",
    )  # fmt: skip


def test_history_manifest_and_uninstall_point_at_the_release_namespace_and_cluster() -> None:
    helm = Helm("helm", "app", "prod", "ctx", KUBECONFIG)
    where = ("--namespace", "prod", "--kube-context", "ctx", "--kubeconfig", KUBECONFIG)
    assert helm.history() == ("helm", "history", "app", *where, "--max", "256", "-o", "json")
    assert helm.history(5) == ("helm", "history", "app", *where, "--max", "5", "-o", "json")
    assert helm.manifest(4) == ("helm", "get", "manifest", "app", *where, "--revision", "4")
    assert helm.uninstall() == ("helm", "uninstall", "app", *where)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"create_namespace": True, "kube_context": "c", "kubeconfig": "/k", "values": ["v.yaml"]},
        {"chart": "repo/app", "chart_version": "1.0.0"},
    ],
)
def test_no_command_ever_waits_rolls_back_by_itself_or_forces(settings: dict[str, Any]) -> None:
    env = environment(**settings)
    helm = Helm.of(env, KUBECONFIG)
    built = [upgrade(env, KUBECONFIG), helm.rollback(3, 10, 60), helm.history(), helm.manifest(3)]
    built.append(helm.uninstall())
    for argv in built:
        assert not [a for a in argv if a.split("=")[0] in NEVER], argv


HELM_HISTORY = json.dumps([
    {"revision": 2, "updated": "2026-11-30T10:05:00.5Z", "status": "superseded", "chart": "app-0.1.0",
     "app_version": "1.1.0", "description": "invoke-pipeline deploy 1.1.0 run r-41"},
    {"revision": 1, "updated": "2026-11-30T10:00:00.123456789Z", "status": "superseded", "chart": "app-0.1.0",
     "app_version": "1.0.0", "description": "Install complete"},
    {"revision": 3, "updated": "2026-11-30T10:09:00.1+01:00", "status": "pending-upgrade",
     "chart": "app-0.2.0", "app_version": "2.0.0", "description": "Preparing upgrade"},
])  # fmt: skip


def test_helm_history_is_parsed_oldest_first_with_every_field() -> None:
    revisions = parse_history(HELM_HISTORY)
    assert [r.revision for r in revisions] == [1, 2, 3]
    assert revisions[0] == HelmRevision(
        1, "superseded", "app-0.1.0", "1.0.0", "2026-11-30T10:00:00.123456789Z", "Install complete"
    )
    assert revisions[2].status == "pending-upgrade"


@pytest.mark.parametrize(
    ("status", "pending"),
    [("pending-install", True), ("pending-upgrade", True), ("pending-rollback", True),
     ("deployed", False), ("failed", False), ("superseded", False), ("uninstalling", False)],
)  # fmt: skip
def test_only_an_operation_that_never_finished_is_pending(status: str, pending: bool) -> None:
    assert HelmRevision(1, status).pending is pending


def test_an_empty_answer_is_no_history() -> None:
    assert parse_history("") == []
    assert parse_history("[]") == []


@pytest.mark.parametrize(
    "text",
    [
        "Error: release: not found",
        '{"revision": 1}',
        "[1, 2]",
        '[{"status": "deployed"}]',
        '[{"revision": "1", "status": "deployed"}]',
        '[{"revision": 1.5, "status": "deployed"}]',
        '[{"revision": true, "status": "deployed"}]',
    ],
)
def test_anything_but_a_list_of_numbered_revisions_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_history(text)


@pytest.mark.parametrize(
    "output",
    [
        "Error: release: not found\n",
        "WARNING: Kubernetes configuration file is group-readable.\nError: release: not found\n",
    ],
)
def test_helm_saying_the_release_does_not_exist_is_a_first_install(output: str) -> None:
    assert not_found(output)


@pytest.mark.parametrize(
    "output",
    [
        'Error: Kubernetes cluster unreachable: context "nope" does not exist\n',
        'Error: kubernetes cluster unreachable: Get "https://10.0.0.1:6443/version": dial tcp: i/o timeout\n',
        "Error: Kubernetes cluster unreachable: exec: executable gke-gcloud-auth-plugin not found\n",
        "Error: Kubernetes cluster unreachable: the server responded: 404 page not found\n",
        "",
    ],
)
def test_a_cluster_that_cannot_be_reached_is_not_taken_for_a_missing_release(output: str) -> None:
    assert not not_found(output)


MANIFEST = """---
# Source: app/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.com/app:2.0.0
---
---
# Source: app/templates/empty.yaml
---
apiVersion: batch/v1
kind: Job
metadata:
  name: seed
  namespace: jobs
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: seed, image: "registry.example.com/app:2.0.0"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: cache
spec:
  serviceName: cache
  template:
    spec:
      containers: [{name: redis, image: "redis:7"}]
"""


def test_workloads_are_the_deployments_statefulsets_daemonsets_and_jobs_of_a_manifest_in_order() -> None:
    found = workloads(MANIFEST, "prod")
    assert [(w.label, w.namespace) for w in found] == [
        ("Deployment/web", "prod"),
        ("Job/seed", "jobs"),
        ("StatefulSet/cache", "prod"),
    ]
    assert found[0].template == {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "registry.example.com/app:2.0.0"}]},
    }


def test_a_manifest_of_only_comments_and_separators_has_no_workloads() -> None:
    assert workloads("---\n# Source: x\n---\n\n---\n", "prod") == []
    assert workloads("", "prod") == []


def test_the_description_of_a_revision_names_the_run_that_made_it() -> None:
    text = description("r-42", "2.0.0")
    assert text == DESCRIPTION
    assert run_of(HelmRevision(5, "deployed", description=text)) == "r-42"
    assert run_of(HelmRevision(6, "deployed", description=description("r-43", "1.0.0", "rollback"))) == "r-43"


@pytest.mark.parametrize(
    "text", ["Install complete", "Upgrade complete", "Rollback to 3", "invoke-pipeline deploy 2.0.0 run", ""]
)
def test_a_revision_not_made_by_the_pipeline_has_no_run(text: str) -> None:
    assert run_of(HelmRevision(1, "deployed", description=text)) == ""


class NoCluster:
    """A Kube that fails the test if anything reaches the cluster (the plan must not)."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"the plan used the cluster: kube.{name}")


def target(env: HelmEnvironment, environ: dict[str, str] | None = None) -> HelmTarget:
    from pipeline.secrets import redactor_for

    redactor = redactor_for(env, environ or {})
    return HelmTarget(
        env, cast(Kube, NoCluster()), FakeExecutor(), FakeHttpClient(), KUBECONFIG, redactor=redactor
    )


FULL = environment(
    namespace="prod", values=["deploy/prod.yaml"], migrate={"workload": "Deployment/web"},
    health=[{"service": "web:http", "path": "/health"}, {"http": "https://ops:s3cret-pass@app.example.com/v"}],
)  # fmt: skip
UNIT = "prod/app"
RELEASE = Release("2.0.0", "b" * 40, files=FILES)


def entry(version: str, revision: str = "") -> Entry:
    return Entry("deploy", version, None, None, None, None, "healthy", "", "ci", "2026-11-30T10:00:00Z",
                 revision=revision)  # fmt: skip


def test_the_plan_of_a_deploy_is_the_exact_upgrade_command() -> None:
    helm = target(FULL)
    helm.run = "r-42"
    argv = helm.upgrade_argv(RELEASE, 900)
    assert argv == (
        "helm", "upgrade", "app", f"{FILES}/chart", "--install", "--namespace", "prod",
        "--kubeconfig", KUBECONFIG, "--values", f"{FILES}/deploy/prod.yaml", *tail(),
    )  # fmt: skip
    dry = target(FULL).describe(UNIT, "deploy", RELEASE)
    assert dry == [f"  deploy   [{UNIT}] {shlex.join(argv).replace('r-42', 'dry-run')}"]


def test_the_plan_of_each_other_operation_says_what_it_would_do() -> None:
    helm = target(FULL)
    assert helm.describe(UNIT, "lock", RELEASE) == [
        f"  lock     [{UNIT}] create Lease prod/app.pipeline-lock holding this run"
    ]
    job = f"[{UNIT}] Job from Deployment/web:"
    assert helm.describe(UNIT, "migrate", RELEASE) == [
        f"  migrate  {job} alembic current",
        f"  migrate  {job} alembic upgrade head",
        f"  migrate  {job} alembic current",
        f"  migrate  {job} alembic heads",
    ]
    assert helm.describe(UNIT, "downgrade", RELEASE, revision="0003") == [
        f"  downgrade {job} alembic downgrade 0003"
    ]
    assert helm.describe(UNIT, "health", RELEASE) == [
        f"  health   [{UNIT}] rollout of every Deployment, StatefulSet, DaemonSet and Job of the release",
        f"  health   [{UNIT}] http service web:http/health",
        f"  health   [{UNIT}] http https://ops:s3cret-pass@app.example.com/v",
    ]
    assert helm.describe(UNIT, "record", RELEASE) == [
        f"  record   [{UNIT}] append to ConfigMap prod/app.pipeline-ledger; delete the Lease"
    ]
    assert helm.describe(UNIT, "unknown", RELEASE) == []


def test_without_migrations_the_plan_has_no_job() -> None:
    helm = target(environment())
    assert helm.describe("default/app", "migrate", RELEASE) == []
    assert helm.describe("default/app", "downgrade", RELEASE, revision="0003") == []
    assert helm.databases() == [] and target(FULL).databases() == [UNIT]


def test_the_planned_restore_rolls_back_to_the_revision_the_ledger_recorded_within_its_deadline() -> None:
    helm = target(FULL)
    where = f"--namespace prod --kubeconfig {KUBECONFIG} --history-max 10 --timeout 600s"
    assert helm.describe(UNIT, "restore", RELEASE, previous=entry("1.0.0", "3")) == [
        f"  restore  [{UNIT}] helm rollback app 3 {where}"
    ]
    assert helm.describe(UNIT, "restore", RELEASE, previous=entry("1.0.0")) == [
        f"  restore  [{UNIT}] helm rollback app <revision of 1.0.0> {where}"
    ]
    assert helm.describe(UNIT, "restore", RELEASE, previous=None) == [
        f"  restore  [{UNIT}] nothing: a failed first install is kept for inspection"
    ]


def test_a_release_without_its_files_yet_is_planned_with_a_placeholder_folder() -> None:
    line = target(environment()).describe("default/app", "deploy", Release("2.0.0", None))[0]
    assert f"'<release files>/chart' --install --namespace default --kubeconfig {KUBECONFIG}" in line


def test_the_dry_run_plan_shows_no_secret_once_redacted_as_it_is_printed() -> None:
    env = environment(
        namespace="prod", migrate={},
        health=[{"http": "https://ops:s3cret-pass@app.example.com/v"}],
        notify=[{"slack": {"webhook_env": "SLACK_HOOK"}}],
    )  # fmt: skip
    helm = target(env, {"SLACK_HOOK": "https://hooks.slack.example/T0/B0/hook-s3cret"})
    state = UnitState(UNIT, [entry("1.0.0", "3")])
    plan = render_plan("k8s", helm, policy_of(env), RELEASE, [state], {})
    printed = helm.redactor.redact("\n".join(plan))
    assert "helm rollback app 3 --namespace prod" in printed
    assert "https://ops:***@app.example.com/v" in printed
    for secret in ("s3cret-pass", "hook-s3cret"):
        assert secret not in printed
    for argv_line in (line for line in plan if line.startswith(("  deploy", "  restore"))):
        assert "s3cret" not in argv_line


def test_the_workloads_a_migration_job_can_be_made_from_are_picked_by_kind_and_name() -> None:
    from pipeline.targets.helmjobs import pick

    found = workloads(MANIFEST, "prod")
    assert pick(found, "") == found[0]
    assert pick(found, "StatefulSet/cache") == found[2]
    assert pick(found, "Deployment/api") is None
    assert pick([w for w in found if w.kind != "Deployment"], "") == found[1]
    assert pick([], "") is None
    assert isinstance(found[0], Workload)

"""The Helm scenarios: a release deployed with the real helm, broken on purpose, and what a user checks.

Each scenario is one function over a ``HelmScenarioProject``: the team's repository with the example app,
deploying to a namespace of its own. ``tests/e2e/test_deploy_helm.py`` runs them against the fake
Kubernetes API server (``tests/kubefake``, pods on the sandbox), ``tests/kind/test_helm_kind.py`` against a
real cluster (kind, in the helm-kind workflow). Each checks what a user would: ``helm history``, which
image the pods run, the database revision, the ledger, the report and the exit code.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

from apprepo import Run
from helmproject import LOCK_LEASE, wait_for


class HelmScenarioProject(Protocol):
    """What a scenario drives and checks; ``helmproject.HelmProject`` is one."""

    helm_binary: Path
    environment: dict[str, Any]  # the `k8s` environment as configured

    def invoke(self, *args: str) -> Run:
        """``invoke`` in the repository, to completion."""
        ...

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``invoke`` in the background, in a process group of its own."""
        ...

    def kill(self, process: subprocess.Popen[str]) -> None:
        """SIGKILL the run and everything it started."""
        ...

    def release(self, version: str, *changes: str, push: bool = True) -> str:
        """A release (``variant.sh`` changes, ``hook slow``); its image only with ``push``."""
        ...

    def configure(self, **changes: Any) -> None:
        """Change the ``k8s`` environment of invoke.yaml."""
        ...

    def history(self) -> list[dict[str, Any]]:
        """``helm history -o json``."""
        ...

    def images(self) -> set[str]:
        """The image tags the release's pods run, once settled."""
        ...

    def jobs(self) -> list[dict[str, Any]]:
        """Every Job in the namespace."""
        ...

    def ledger(self) -> list[dict[str, Any]]:
        """The pipeline's ledger entries."""
        ...

    def lease(self) -> dict[str, Any] | None:
        """The deploy lock, when held."""
        ...

    def revision(self) -> str | None:
        """The database's alembic revision."""
        ...

    def columns(self, table: str) -> list[str]:
        """A table's columns in the database."""
        ...


def a_good_release_then_a_crash_looping_one_rolls_back_to_the_recorded_revision(
    helm: HelmScenarioProject, tmp_path: Path
) -> None:
    first = helm.invoke("deploy", "--env", "k8s")
    assert first.code == 0, first.text
    assert helm.images() == {"1.0.0"}
    assert helm.revision() == "0003"
    assert [(e["version"], e["result"], e["revision"]) for e in helm.ledger()][-1] == (
        "1.0.0",
        "healthy",
        "1",
    )

    helm.release("2.0.0", "health", "crash", "migration", "good")
    report = tmp_path / "report.json"
    started = time.monotonic()
    second = helm.invoke("deploy", "--env", "k8s", "--version", "2.0.0", "--report", str(report))
    seconds = time.monotonic() - started
    assert second.code == 1, second.text
    data = json.loads(report.read_text())
    assert data["outcome"] == "rolled_back"
    evidence = {e["kind"]: e["text"] for e in data["evidence"]}
    verdict = evidence["verdict"]
    assert "CrashLoopBackOff" in verdict and "container app" in verdict
    previous = next(text for what, text in evidence.items() if what.startswith("previous logs of"))
    assert previous.strip(), evidence  # the crashed container's own last words
    assert any(what.startswith("events of") and "BackOff" in text for what, text in evidence.items())
    assert helm.images() == {"1.0.0"}
    assert helm.revision() == "0003"  # downgraded with 2.0.0's own scripts, in a Job
    history = helm.history()
    assert [(r["revision"], r["status"]) for r in history] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "deployed"),
    ]
    assert history[-1]["description"] == "Rollback to 1"
    ledger = [(e["version"], e["result"], e["revision"]) for e in helm.ledger()]
    assert ledger[-2:] == [("2.0.0", "rolled_back", "2"), ("1.0.0", "restored", "3")]
    assert helm.lease() is None
    print(f"crash-looping release: verdict, evidence and rollback in {seconds:.1f} s")


def an_image_that_does_not_exist_fails_fast_in_the_rollout_and_in_the_migration_job(
    helm: HelmScenarioProject, tmp_path: Path
) -> None:
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    helm.release("2.0.0", push=False)
    report = tmp_path / "report.json"
    run = helm.invoke(
        "deploy", "--env", "k8s", "--version", "2.0.0", "--skip", "migrate", "--report", str(report)
    )
    assert run.code == 1, run.text
    data = json.loads(report.read_text())
    rollout = next(h for h in data["health"] if h["check"] == "rollout")
    assert "ImagePullBackOff" in rollout["detail"] or "ErrImagePull" in rollout["detail"], rollout
    assert rollout["seconds"] < 15, rollout
    assert any(e["kind"] == "verdict" for e in data["evidence"])
    assert helm.images() == {"1.0.0"}
    assert [r["status"] for r in helm.history()][-1] == "deployed"

    # With migrations, the Job is the first to run the new image: it fails at once, naming the pull.
    run = helm.invoke("deploy", "--env", "k8s", "--version", "2.0.0", "--report", str(report))
    assert run.code == 1, run.text
    data = json.loads(report.read_text())
    failed = next(s for s in data["stages"] if s["status"] == "failed")
    assert failed["name"] == "migrate", data["stages"]
    assert "ImagePullBackOff" in failed["detail"] or "ErrImagePull" in failed["detail"], failed
    assert failed["seconds"] < 30, failed
    assert helm.images() == {"1.0.0"}
    assert helm.revision() == "0003"


def a_failing_migration_job_rolls_back_and_leaves_the_database_unchanged(helm: HelmScenarioProject) -> None:
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    helm.release("3.0.0", "migration", "fail")
    run = helm.invoke("deploy", "--env", "k8s", "--version", "3.0.0")
    assert run.code == 1, run.text
    assert "the Job" in run.text and "failed" in run.text
    assert helm.revision() == "0003"
    assert "half_done_0004" not in helm.columns("items")
    assert helm.images() == {"1.0.0"}
    failed = [j for j in helm.jobs() if (j.get("status") or {}).get("failed")]
    assert failed, "the failed migration Job is kept for inspection"


def a_first_install_that_fails_is_kept_and_reported(helm: HelmScenarioProject) -> None:
    helm.release("1.0.1", "health", "crash")
    run = helm.invoke("deploy", "--env", "k8s", "--version", "1.0.1")
    assert run.code == 1, run.text
    assert "kept for inspection" in run.out
    assert [r["revision"] for r in helm.history()] == [1]
    assert helm.images() == {"1.0.1"}
    assert helm.lease() is None
    status = helm.invoke("status", "--env", "k8s")
    assert "nothing recorded" in status.out and "CrashLoopBackOff" in status.out, status.text

    helm.release("1.0.2", "health", "ok")  # the fix deploys over the kept install
    run = helm.invoke("deploy", "--env", "k8s", "--version", "1.0.2")
    assert run.code == 0, run.text
    assert helm.images() == {"1.0.2"}
    assert [r["status"] for r in helm.history()][-1] == "deployed"


def sigterm_mid_upgrade_rolls_back(helm: HelmScenarioProject) -> None:
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    helm.release("2.0.0", "migration", "slow")
    process = helm.start("deploy", "--env", "k8s", "--version", "2.0.0")
    wait_for(lambda: any(j["metadata"]["labels"].get("invoke-pipeline/purpose") == "migrate" and
                         (j.get("status") or {}).get("active") for j in helm.jobs()), 90)  # fmt: skip
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, out + err
    assert "cancelled (SIGTERM received); rolled back to 1.0.0" in out + err
    assert helm.images() == {"1.0.0"}
    assert helm.revision() == "0003"
    assert helm.lease() is None
    assert not [j for j in helm.jobs() if (j.get("status") or {}).get("active")]


def sigterm_while_helm_upgrade_runs_stops_it_and_rolls_back(helm: HelmScenarioProject) -> None:
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    helm.release("2.0.0", "hook", "slow")
    process = helm.start("deploy", "--env", "k8s", "--version", "2.0.0")
    wait_for(lambda: any(r["status"] == "pending-upgrade" for r in helm.history()), 90)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, out + err
    assert "cancelled (SIGTERM received); rolled back to 1.0.0" in out + err
    history = helm.history()
    assert history[-1]["status"] == "deployed" and history[-1]["description"] == "Rollback to 1", history
    assert helm.images() == {"1.0.0"}
    assert helm.lease() is None
    ledger = [(e["version"], e["result"]) for e in helm.ledger()]
    assert ledger[-2:] == [("2.0.0", "rolled_back"), ("1.0.0", "restored")]


def migrations_by_exec_fall_back_to_a_job_when_no_pod_gets_ready(helm: HelmScenarioProject) -> None:
    """With `run: exec`, a release whose pods never get ready is still migrated and downgraded, by a Job."""
    helm.configure(migrate={**helm.environment["migrate"], "run": "exec", "workload": "Deployment/app"})
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    assert helm.revision() == "0003"
    helm.release("2.0.0", "migration", "good")
    run = helm.invoke("deploy", "--env", "k8s", "--version", "2.0.0")
    assert run.code == 0, run.text
    assert helm.revision() == "0004"
    helm.release("3.0.0", "health", "crash", "migration", "good")
    run = helm.invoke("deploy", "--env", "k8s", "--version", "3.0.0")
    assert run.code == 1, run.text
    assert helm.revision() == "0004"  # downgraded by a Job: no pod of 3.0.0 ever got ready
    assert helm.images() == {"2.0.0"}


def a_run_killed_mid_upgrade_leaves_pending_upgrade_and_rollback_recovers(helm: HelmScenarioProject) -> None:
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    helm.release("2.0.0", "hook", "slow")
    process = helm.start("deploy", "--env", "k8s", "--version", "2.0.0")
    wait_for(lambda: any(r["status"] == "pending-upgrade" for r in helm.history()), 90)
    helm.kill(process)  # what a CI runner's SIGKILL does: the run and its helm die at once
    live = helm.invoke("deploy", "--env", "k8s", "--version", "2.0.0")
    assert live.code == 5 and "a deploy is running and holds the lock" in live.err, (
        live.text
    )  # not yet expired
    time.sleep(LOCK_LEASE + 1)  # no renewal since the kill: the lease expires

    history = helm.history()
    assert history[-1]["status"] == "pending-upgrade"
    refused = helm.invoke("deploy", "--env", "k8s", "--version", "2.0.0")
    assert refused.code == 5, refused.text
    assert "if it was interrupted, `invoke rollback --env k8s` finishes its rollback" in refused.err

    run = helm.invoke("rollback", "--env", "k8s")
    assert run.code == 0, run.text
    assert "finishing the interrupted run" in run.out
    assert helm.images() == {"1.0.0"}
    assert helm.history()[-1]["status"] == "deployed"
    assert helm.lease() is None
    ledger = [(e["version"], e["result"]) for e in helm.ledger()]
    assert ledger[-2:] == [("2.0.0", "rolled_back"), ("1.0.0", "restored")]
    helm.release("2.0.1")
    again = helm.invoke("deploy", "--env", "k8s", "--version", "2.0.1")
    assert again.code == 0, again.text  # helm is not stuck any more
    assert helm.images() == {"2.0.1"}


def two_deploys_at_once_the_second_exits_5_naming_the_first(helm: HelmScenarioProject) -> None:
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    helm.release("2.0.0", "migration", "slow")
    first = helm.start("deploy", "--env", "k8s", "--version", "2.0.0")
    wait_for(lambda: helm.lease() is not None, 60)
    second = helm.invoke("deploy", "--env", "k8s", "--version", "2.0.0")
    out, err = first.communicate(timeout=300)
    assert second.code == 5, second.text
    assert (
        "a deploy is running and holds the lock" in second.err
        and "(2.0.0" in second.err
        and "running: renewed" in second.err
    )
    assert first.returncode == 0, out + err
    assert helm.images() == {"2.0.0"}


def rollback_to_a_named_release_and_on_call_views(helm: HelmScenarioProject) -> None:
    assert helm.invoke("deploy", "--env", "k8s").code == 0
    helm.release("2.0.0", "migration", "good")
    assert helm.invoke("deploy", "--env", "k8s", "--version", "2.0.0").code == 0
    helm.release("3.0.0")
    assert helm.invoke("deploy", "--env", "k8s", "--version", "3.0.0").code == 0
    assert helm.revision() == "0004"

    run = helm.invoke("rollback", "--env", "k8s", "--to", "1.0.0")
    assert run.code == 0, run.text
    assert helm.images() == {"1.0.0"}
    assert helm.revision() == "0003"
    history = helm.history()
    assert history[-1]["description"] == "Rollback to 1"  # the revision the ledger recorded for 1.0.0

    status = helm.invoke("status", "--env", "k8s", "--json")
    assert status.code == 0, status.text
    unit = json.loads(status.out)["hosts"][0]
    assert unit["serving"] == "1.0.0"
    assert unit["helm"]["revision"] == history[-1]["revision"] and unit["helm"]["status"] == "deployed"
    assert {p["images"][0].rsplit(":", 1)[1] for p in unit["pods"]} == {"1.0.0"}
    text = helm.invoke("history", "--env", "k8s")
    assert text.code == 0 and " rev 1" in text.out, text.text
    health = helm.invoke("health", "--env", "k8s")
    assert health.code == 0 and "ok   " in health.out and "rollout" in health.out, health.text
    migrate = helm.invoke("migrate", "--env", "k8s")
    assert migrate.code == 0, migrate.text
    assert helm.revision() == "0003"  # 1.0.0's own head: nothing to do
    unlock = helm.invoke("unlock", "--env", "k8s")
    assert unlock.code == 0 and "not locked" in unlock.out, unlock.text
    dry = helm.invoke("deploy", "--env", "k8s", "--version", "3.0.0", "--dry-run")
    assert dry.code == 0, dry.text
    assert "upgrade app" in dry.out and "--atomic" not in dry.out and "--wait" not in dry.out
    assert helm.images() == {"1.0.0"}


def helm_missing_or_a_bad_kubeconfig_exits_2_before_anything_changes(helm: HelmScenarioProject) -> None:
    helm.configure(helm="/nonexistent/helm")
    run = helm.invoke("deploy", "--env", "k8s")
    assert run.code == 2, run.text
    assert "pipeline.environments.k8s.helm" in run.err and "not installed" in run.err
    helm.configure(helm=str(helm.helm_binary), kube_context="nowhere")
    run = helm.invoke("deploy", "--env", "k8s")
    assert run.code == 2, run.text
    assert "kube_context" in run.err
    assert helm.history() == []
    assert helm.lease() is None

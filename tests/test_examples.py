"""The files users copy (examples/workflows, examples/config) are valid: actionlint passes on the
workflows, the deploy workflows are safe to run (one deploy per environment, a cancelled job's signal
reaches the deploy), and each example configuration validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from gitrepos import ROOT
from test_workflows import actionlint

from pipeline.config import load_config
from pipeline.environments import ComposeEnvironment
from pipeline.helmconfig import HelmEnvironment

EXAMPLES = ROOT / "examples"
WORKFLOWS = sorted((EXAMPLES / "workflows").glob("*.yml"))


def steps_running(workflow: dict[str, object], needle: str) -> list[tuple[dict[str, object], str]]:
    """(job, run text) of every step whose run: mentions ``needle``."""
    found = []
    for job in workflow["jobs"].values():  # type: ignore[attr-defined]
        for step in job["steps"]:
            if needle in step.get("run", ""):
                found.append((job, step["run"]))
    return found


def test_the_copyable_workflows_are_there() -> None:
    assert {p.name for p in WORKFLOWS} >= {"deploy.yml", "deploy-helm.yml", "release.yml", "preflight.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_example_workflow_passes_actionlint(workflow: Path) -> None:
    done = actionlint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_deploy_runs_alone_per_environment_and_gets_the_cancel_signal(workflow: Path) -> None:
    data = yaml.safe_load(workflow.read_text())
    deploys = steps_running(data, "invoke deploy")
    for job, run in deploys:
        # `exec`: the runner signals the step's process; through a shell the deploy would never see it.
        assert run.strip().startswith("exec invoke deploy"), run
        assert "environment" in job, f"{workflow.name}: a deploy job without a GitHub environment"
        concurrency = job.get("concurrency")
        assert isinstance(concurrency, dict), f"{workflow.name}: a deploy job without a concurrency group"
        assert concurrency["cancel-in-progress"] is False, "a newer push must wait, never cancel a deploy"
        environment = str(job["environment"])
        assert str(concurrency["group"]) == f"deploy-{environment}", (concurrency, environment)
    if workflow.name.startswith(("deploy", "release")):
        assert deploys, f"{workflow.name} deploys nothing"


def test_the_release_workflow_runs_on_tags_and_preflight_on_pull_requests() -> None:
    release = yaml.safe_load((EXAMPLES / "workflows" / "release.yml").read_text())
    preflight = yaml.safe_load((EXAMPLES / "workflows" / "preflight.yml").read_text())
    # PyYAML reads the key `on` as True.
    assert release[True]["push"]["tags"] == ["v*"]
    assert '--version "$TAG"' in steps_running(release, "invoke deploy")[0][1]
    assert "pull_request" in preflight[True]
    assert steps_running(preflight, "invoke preflight")


@pytest.mark.parametrize(
    ("name", "kind"), [("compose.invoke.yaml", ComposeEnvironment), ("helm.invoke.yaml", HelmEnvironment)]
)
def test_the_minimal_configuration_of_each_target_validates(name: str, kind: type) -> None:
    raw = yaml.safe_load((EXAMPLES / "config" / name).read_text())["pipeline"]
    config = load_config(raw, f"examples/config/{name}")
    assert isinstance(config.environment("staging"), kind)


def test_the_readmes_configuration_reference_validates() -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Environments\n```yaml\n") + len("### Environments\n```yaml\n")
    raw = yaml.safe_load(text[start : text.index("```", start)])["pipeline"]
    config = load_config(raw, "README.md")
    assert isinstance(config.environment("production"), ComposeEnvironment)

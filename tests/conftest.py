"""Shared fixtures: isolated git configuration, and a repository whose checklist passes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitrepos import Repo, make_repo


@pytest.fixture(autouse=True, scope="session")
def _isolated_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests see neither the user's nor the system's git config, and have an identity."""
    home = tmp_path_factory.mktemp("home")
    config = home / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    saved = dict(os.environ)
    os.environ.update(
        GIT_CONFIG_GLOBAL=str(config),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.com",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="author@example.com",
    )
    for key in [k for k in os.environ if k.startswith(("GITHUB_", "INVOKE_"))]:
        del os.environ[key]
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True, scope="session")
def _bytecode() -> None:
    """Compiled modules, as an installed package has them: Invoke never writes bytecode, so without
    this every ``invoke`` a test starts would compile the whole package again (what no user pays)."""
    import compileall

    from gitrepos import ROOT

    compileall.compile_dir(str(ROOT / "pipeline"), quiet=1)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A repository whose checklist passes: VERSION 1.1.0 above v1.0.0, [Unreleased] filled."""
    r = make_repo(tmp_path / "project")
    r.write("invoke.yaml", "pipeline:\n  checklist:\n    changelog_unreleased_ok: true\n")
    r.commit("chore: configure the pipeline", "invoke.yaml", r.path.joinpath("invoke.yaml").read_text())
    return r

"""Real git repositories in temporary directories, and the invoke CLI, for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHANGELOG = """# Changelog

## [Unreleased]

### Added
- Something new.

## [1.0.0] - 2026-01-02

### Added
- The first release.

[unreleased]: https://github.com/acme/app/compare/v1.0.0...HEAD
[1.0.0]: https://github.com/acme/app/releases/tag/v1.0.0
"""


@dataclass
class Repo:
    """A real git repository in a temporary directory, driven through GitPython."""

    path: Path

    def git(self, *args: str) -> str:
        """Run git in the repository and return its stdout."""
        import git

        return str(git.Git(self.path).execute(["git", *args]))

    def write(self, name: str, text: str) -> Path:
        """Write a file (creating folders) relative to the repository."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def commit(self, message: str, name: str = "changes.txt", text: str | None = None) -> str:
        """Commit everything, changing ``name`` (appending the message when no text is given)."""
        target = self.path / name
        if text is None:
            text = (target.read_text() if target.exists() else "") + message + "\n"
        self.write(name, text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        """The commit HEAD points at."""
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, ref: str = "HEAD") -> None:
        """Make an annotated release tag."""
        self.git("tag", "-a", name, "-m", f"Release {name}", ref)

    def tags(self) -> list[str]:
        """Every tag name."""
        return self.git("tag", "--list").split()


def make_repo(path: Path, version: str = "1.1.0", changelog: str = CHANGELOG) -> Repo:
    """A repository with VERSION and CHANGELOG.md, the one-line tasks.py, and a release v1.0.0."""
    import git

    git.Repo.init(path)
    repo = Repo(path)
    repo.write("tasks.py", "from pipeline.tasks import ns  # noqa: F401\n")
    repo.write(".gitignore", "__pycache__/\n")
    repo.write("VERSION", "1.0.0\n")
    repo.write("CHANGELOG.md", changelog.replace("### Added\n- Something new.\n\n", ""))
    repo.commit("feat: first release", "README.md", "app\n")
    repo.tag("v1.0.0")
    repo.write("VERSION", version + "\n")
    repo.write("CHANGELOG.md", changelog)
    repo.commit("feat: something new", "app.py", "print('new')\n")
    return repo


def beta_channel(repo: Repo, version: str | None = None) -> str:
    """A beta branch tagged v2.0.0-beta.1, not reachable from main; main gets a fix (and ``version``)."""
    repo.git("reset", "-q", "--hard", "v1.0.0")
    repo.git("checkout", "-q", "-b", "beta")
    repo.commit("feat!: the new API")
    repo.tag("v2.0.0-beta.1")
    repo.git("checkout", "-q", "main")
    if version:
        repo.write("VERSION", f"{version}\n")
    text = repo.path.joinpath("CHANGELOG.md").read_text()
    repo.write("CHANGELOG.md", text.replace("## [Unreleased]\n", "## [Unreleased]\n\n### Fixed\n- A bug.\n"))
    return repo.commit("fix: a bug on the stable branch")


@dataclass(frozen=True)
class Run:
    """A finished CLI run."""

    code: int
    stdout: str
    stderr: str


def invoke(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """Run ``invoke ARGS`` as a user would: Invoke's own program, in ``cwd``, with ``env`` added.

    In this process: starting Python and importing Invoke again would cost 0.4 s a run. What needs a
    process of its own (signals, a terminal, what ``ps`` shows) starts one with ``invoke_process``.
    """
    import io
    from contextlib import redirect_stderr, redirect_stdout

    import invoke as invoke_package
    from invoke.program import Program

    program = Program(
        name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"], version=invoke_package.__version__
    )
    out, err = io.StringIO(), io.StringIO()
    saved = (os.getcwd(), dict(os.environ), list(sys.path), list(sys.argv))
    os.environ.update(env or {})
    sys.argv[:] = ["invoke", *args]
    code = 0
    try:
        os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                program.run(list(sys.argv))
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        os.chdir(saved[0])
        os.environ.clear()
        os.environ.update(saved[1])
        sys.path[:] = saved[2]
        sys.argv[:] = saved[3]
        sys.modules.pop("tasks", None)
    return Run(code, out.getvalue(), err.getvalue())


def invoke_process(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``invoke ARGS`` as a process of its own (the caller waits for it, or signals it)."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", *args], cwd=cwd, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

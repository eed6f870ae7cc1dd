"""What runs on a compose server, as argv: git checkouts, ``docker compose`` and the journal files.

Pure builders only; ``pipeline.remote`` carries them over ssh and ``pipeline.deploy`` decides when.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pipeline.environments import ComposeEnvironment
from pipeline.secrets import split_credentials


@dataclass(frozen=True)
class Project:
    """A compose project on one host: its directory, file, project name and version variable."""

    path: str
    file: str
    name: str
    variable: str
    source: str
    releases: str  # where image releases keep their compose files (in the host's state directory)
    env_file: str = ""  # the variables file compose reads when not the project directory's .env

    @classmethod
    def of(cls, env: ComposeEnvironment, path: str) -> Project:
        """The project of an environment at a host's app path."""
        derived = re.sub(r"[^a-z0-9_-]", "", PurePosixPath(path).name.lower()).lstrip("_-")
        name = env.project or derived or "app"
        releases = f"{state_dir_of(path, env.state_dir)}/releases"
        default = PurePosixPath(env.env_file) == PurePosixPath(".env")
        env_file = "" if default else f"{path.rstrip('/')}/{env.env_file}"
        return cls(path, env.compose_file, name, env.version_variable, env.source, releases, env_file)

    def file_for(self, version: str) -> str:
        """The compose file of a release: in the checkout, or uploaded under ``releases/``."""
        if self.source == "git":
            return f"{self.path}/{self.file}"
        return f"{self.release_dir(version)}/{PurePosixPath(self.file).name}"

    def release_dir(self, version: str) -> str:
        """Where an image release keeps its compose file."""
        return f"{self.releases}/{version}"

    def compose(self, version: str, *args: str, env_file: str | None = None) -> tuple[str, ...]:
        """``docker compose`` for a release, its version in the variable the file reads, and the
        configured variables file (``env_file``: another one, e.g. ``/dev/stdin``)."""
        variables = self.env_file if env_file is None else env_file
        return (
            "env", f"{self.variable}={version}",
            "docker", "compose",
            "--project-directory", self.path,
            *(("--env-file", variables) if variables else ()),
            "-f", self.file_for(version),
            "-p", self.name,
            *args,
        )  # fmt: skip

    def up(self, version: str, build: bool) -> tuple[str, ...]:
        """Start the release; ``build`` rebuilds, otherwise images tagged with it are reused."""
        return self.compose(version, "up", "-d", "--remove-orphans", *(["--build"] if build else []))

    def pull(self, version: str) -> tuple[str, ...]:
        """Pull the release's images."""
        return self.compose(version, "pull", "--quiet")

    def down(self) -> tuple[str, ...]:
        """Stop and remove the project's containers, found by its name (its files may be missing)."""
        return ("docker", "compose", "-p", self.name, "down", "--remove-orphans")

    def in_service(
        self, version: str, service: str, argv: Sequence[str], mode: str, name: str = ""
    ) -> tuple[str, ...]:
        """Run argv in a service: ``exec`` in its running container, or a one-off ``run`` (``name``d)."""
        if mode == "run":
            named = ("--name", name) if name else ()
            return self.compose(version, "run", "--rm", "--no-deps", "-T", *named, service, *argv)
        return self.compose(version, "exec", "-T", service, *argv)

    def logs(self, version: str, services: Sequence[str], tail: int = 200) -> tuple[str, ...]:
        """The last lines of the services' logs (all services when none are named)."""
        return self.compose(version, "logs", "--no-color", "--timestamps", "--tail", str(tail), *services)

    def ps(self, version: str) -> tuple[str, ...]:
        """Every container of the project with its state, as JSON."""
        return self.compose(version, "ps", "--all", "--format", "json")


def state_dir_of(path: str, configured: str = "") -> str:
    """The pipeline's directory on a host: beside the app (``/srv/app.pipeline``), never inside its
    build context, unless configured."""
    return configured or f"{path.rstrip('/')}.pipeline"


def git_prepare(path: str, repository: str) -> list[tuple[str, ...]]:
    """Make ``path`` a repository fetching from ``repository`` (idempotent, works in a used dir).

    The URL is written without its credentials: they go to ``git_fetch`` on stdin, never to
    ``.git/config`` (where an earlier deploy's URL with them is overwritten) or to an argv.
    """
    return [
        ("git", "-C", path, "init", "--quiet"),
        ("git", "-C", path, "config", "remote.origin.url", split_credentials(repository).url),
        ("git", "-C", path, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
    ]


# Reads one line from stdin (an HTTP header) and hands it to git through the environment, where
# neither `ps` nor `.git/config` shows it: git reads GIT_CONFIG_COUNT/KEY_n/VALUE_n as `-c` (2.31+).
GIT_AUTH_SCRIPT = (
    "IFS= read -r h || exit 2; export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader"
    ' GIT_CONFIG_VALUE_0="$h" GIT_TERMINAL_PROMPT=0; exec "$@"'
)
GIT_AUTH_NAME = "pl-git-auth"


def git_fetch(path: str, authenticated: bool = False) -> tuple[str, ...]:
    """Fetch branches and tags from the checkout's origin; ``authenticated``: with the header that
    ``git_auth`` gives on stdin."""
    fetch = ("git", "-C", path, "fetch", "--quiet", "--force", "--tags", "origin")
    return ("sh", "-c", GIT_AUTH_SCRIPT, GIT_AUTH_NAME, *fetch) if authenticated else fetch


def git_auth(repository: str) -> str | None:
    """What an authenticated ``git_fetch`` reads on stdin: the ``Authorization`` header of the
    repository URL's credentials; None when the URL carries none (ssh keys, a public repository)."""
    header = split_credentials(repository).basic_auth()
    return f"Authorization: {header}\n" if header else None


def git_checkout(path: str, commit: str) -> tuple[str, ...]:
    """Check out exactly this commit, discarding local edits to tracked files."""
    return ("git", "-C", path, "checkout", "--quiet", "--force", "--detach", commit)


def make_dirs(*paths: str) -> tuple[str, ...]:
    """``mkdir -p``."""
    return ("mkdir", "-p", *paths)


def write_file(path: str) -> tuple[str, ...]:
    """Write stdin to a file (``tee`` so the content never appears in argv)."""
    return ("tee", path)


def drop_lock(*paths: str) -> tuple[str, ...]:
    """Release the lock (a file, or the directory of an older version)."""
    return ("rm", "-rf", "--", *paths)


def shell_command(text: str, revision: str = "") -> tuple[str, ...]:
    """A configured command as argv; ``{revision}`` is filled in after splitting, so it stays one word."""
    return tuple(part.replace("{revision}", revision) for part in shlex.split(text))


_REVISION = re.compile(r"^([0-9A-Za-z_]+)(?:\s+\(.*\))?\s*$")


def parse_revision(output: str) -> str | None:
    """The revision ``alembic current`` prints (``0003 (head)``), or None when there is none."""
    for line in reversed(output.splitlines()):
        match = _REVISION.match(line.strip())
        if match and not line.startswith(("INFO", "WARNING")):
            return match[1]
    return None


@dataclass(frozen=True)
class Container:
    """A container of the project as ``docker compose ps`` reports it."""

    service: str
    state: str
    health: str
    status: str

    @property
    def ok(self) -> bool:
        """Running, and healthy when it has a healthcheck."""
        return self.state == "running" and self.health in ("", "healthy")


def parse_ps(output: str) -> list[Container]:
    """``docker compose ps --format json``: one JSON object per line, or a JSON array."""
    text = output.strip()
    rows: list[Any] = []
    if text.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError:
            return []
    else:
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a warning line among the JSON ones
    if not isinstance(rows, list):
        return []
    return [
        Container(r.get("Service", ""), r.get("State", ""), r.get("Health", ""), r.get("Status", ""))
        for r in rows
        if isinstance(r, dict)
    ]

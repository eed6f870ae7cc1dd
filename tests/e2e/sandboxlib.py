"""The end-to-end tests' view of the sandbox: a project deployed to it, and what a user checks.

The sandbox has three hosts (``sandbox["hosts"]``, each a dict from ``env.json``) and two database
topologies: the database ``app`` shared by every host (``DATABASE_URL`` on the hosts, ``compose.yaml``)
and one database ``app_hN`` per host (``HOST_DATABASE_URL``, ``compose.perhost.yaml``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apprepo import Repository, Webhook, checkout_app

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "sandbox" / "sandbox.sh"
STATE = Path(os.environ.get("SANDBOX_DIR", "/tmp/sbx"))
PERHOST_COMPOSE = "compose.perhost.yaml"  # the api's DATABASE_URL is the host's own database
SANDBOX_REFUSED = 3  # exit code of `sandbox.sh up` when a sandbox is already running
CONTROL_DIR_VARIABLE = "PIPELINE_SSH_CONTROL_DIR"


def unavailable() -> str | None:
    if sys.platform != "linux":
        return "the sandbox needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the sandbox needs root (network namespaces, dockerd, sshd)"
    return None


@dataclass
class Project(Repository):
    """A team's repository deployed to the sandbox hosts, and what a user checks afterwards."""

    sandbox: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    control_dir: Path | None = None  # PIPELINE_SSH_CONTROL_DIR of the invoke runs (one per test)

    @property
    def hosts(self) -> list[dict[str, Any]]:
        """Every sandbox host (three by default), in ``env.json``'s order."""
        return list(self.sandbox["hosts"])

    def configure(self, **changes: Any) -> None:
        """Rewrite invoke.yaml with changes to the environment, and commit it."""
        self.environment.update(changes)
        config = {
            "pipeline": {
                "checklist": {"changelog_unreleased_ok": True},
                "environments": {"sandbox": self.environment},
            }
        }
        (self.work / "invoke.yaml").write_text(json.dumps(config, indent=2) + "\n")
        if self.git("status", "--porcelain"):
            self.git("add", "-A")
            self.git("commit", "-q", "-m", "chore: configure the deploy")
            self.git("push", "-q", "origin", "HEAD:main")

    def env(self, extra: dict[str, str] | None) -> dict[str, str]:
        if self.control_dir is None:
            return super().env(extra)
        return super().env({CONTROL_DIR_VARIABLE: str(self.control_dir), **(extra or {})})

    def serving(self, host: dict[str, Any]) -> dict[str, Any]:
        """What /health answers on a host (the version that serves)."""
        with urllib.request.urlopen(host["health_url"], timeout=5) as response:
            return dict(json.load(response))

    def versions(self) -> list[str]:
        """The version each host serves, in the order of ``hosts``."""
        return [self.serving(h)["version"] for h in self.hosts]

    def revision(self, host: dict[str, Any] | None = None) -> str | None:
        """The alembic revision, read straight from PostgreSQL: of the shared database ``app``, or with
        a host, of that host's own database ``app_hN``."""
        rows = psql(self.sandbox, "SELECT version_num FROM alembic_version", host)
        return rows[0] if rows else None

    def revisions(self) -> list[str | None]:
        """The revision of every host's own database, in the order of ``hosts``."""
        return [self.revision(h) for h in self.hosts]

    def columns(self, table: str, host: dict[str, Any] | None = None) -> list[str]:
        """A table's columns (sorted; [] when it does not exist) in the shared database, or a host's own."""
        return sorted(
            psql(
                self.sandbox,
                f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'",
                host,
            )
        )

    def journal(self, host: dict[str, Any]) -> list[dict[str, Any]]:
        path = state_dir(host) / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def containers(self, host: dict[str, Any]) -> str:
        return ssh(self.sandbox, host, "docker ps --format '{{.ID}} {{.Image}}'")

    def build_and_push(self, version: str, image: str = "app/api") -> str:
        """CI's job before an image deploy: see ``build_and_push``."""
        return build_and_push(self.sandbox, self.work, version, image)


def state_dir(host: dict[str, Any]) -> Path:
    """Where the pipeline keeps a host's journal and lock: beside the app, outside its build context."""
    return Path(host["app_path"] + ".pipeline")


def database_url(sandbox: dict[str, Any], host: dict[str, Any] | None = None) -> str:
    """Where the runner reaches the shared database ``app``, or with a host, that host's ``app_hN``."""
    if host is not None:
        return str(host["host_db_url_local"])
    return str(sandbox.get("db_url_local") or sandbox["hosts"][0]["db_url_local"])


def psql(sandbox: dict[str, Any], sql: str, host: dict[str, Any] | None = None) -> list[str]:
    """Rows of ``sql`` in the shared database, or with a host, in that host's own database."""
    url = database_url(sandbox, host)
    done = subprocess.run(["psql", "-At", url, "-c", sql], capture_output=True, text=True, timeout=60)
    if done.returncode:
        if "does not exist" in done.stderr:
            return []
        raise AssertionError(done.stderr)
    return [line for line in done.stdout.splitlines() if line]


def ssh(sandbox: dict[str, Any], host: dict[str, Any], command: str) -> str:
    done = subprocess.run(
        ["ssh", "-F", sandbox["ssh_config"], host["ip"], command], capture_output=True, text=True, timeout=120
    )
    return done.stdout


RESET_SCHEMA = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"


def clean_hosts(sandbox: dict[str, Any]) -> None:
    """Every host without containers, app directory or app images; the shared database and every host's
    own database empty: every test starts alike. The hosts are cleaned in parallel."""
    registry = sandbox["registry"]

    def clean(host: dict[str, Any]) -> None:
        ssh(
            sandbox,
            host,
            "docker ps -aq | xargs -r docker rm -f; "
            f"docker images -q --filter reference='app/*' --filter reference='{registry}/app/*'"
            " | sort -u | xargs -r docker rmi -f",
        )
        shutil.rmtree(host["app_path"], ignore_errors=True)
        shutil.rmtree(state_dir(host), ignore_errors=True)
        psql(sandbox, RESET_SCHEMA, host)

    with ThreadPoolExecutor(max_workers=len(sandbox["hosts"]) or 1) as pool:
        list(pool.map(clean, sandbox["hosts"]))
    psql(sandbox, RESET_SCHEMA)


def environment(sandbox: dict[str, Any], origin: Path) -> dict[str, Any]:
    """The deploy configuration of every sandbox host, with the shared database (``compose.yaml``)."""
    return {
        "target": "compose",
        "hosts": [{"address": f"root@{h['ip']}", "path": h["app_path"]} for h in sandbox["hosts"]],
        "path": "/srv/app",
        "repository": str(origin),
        "ssh": {"identity_file": sandbox["ssh_key"], "known_hosts": sandbox["known_hosts"]},
        "migrate": {
            "service": "api",
            "command": "python3 -m alembic upgrade head",
            "current": "python3 -m alembic current",
            "downgrade": "python3 -m alembic downgrade {revision}",
            "heads": "python3 -m alembic heads",
        },
        "health": [
            {"http": "http://{host}:8000/health", "expect_version": True, "interval": 0.5, "attempts": 16}
        ],
        "notify": [{"webhook": {"url_env": "DEPLOY_WEBHOOK"}}],
    }


def make_project(sandbox: dict[str, Any], directory: Path, control_dir: Path | None = None) -> Project:
    """The example app as a team's repository in ``directory``: release 1.0.0 tagged and pushed.
    ``control_dir`` becomes PIPELINE_SSH_CONTROL_DIR of its invoke runs."""
    origin, work = checkout_app(directory)
    project = Project(work, origin, Webhook(), sandbox, environment(sandbox, origin), control_dir)
    project.configure()  # commits everything
    project.git("tag", "-a", "v1.0.0", "-m", "Release v1.0.0")
    project.git("push", "-q", "origin", "main", "v1.0.0")
    return project


def registry_manifest_digest(registry: str, repository: str, tag: str) -> str | None:
    """The digest of the manifest the registry serves for repository:tag (None: none), after checking
    that the body matches it and that every blob it names is there."""
    kind = "application/vnd.docker.distribution.manifest.v2+json"
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}", headers={"Accept": kind}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body, served = response.read(), response.headers.get("Docker-Content-Digest", "")
    except OSError:
        return None
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert not served or served == digest, f"{repository}:{tag}: registry digest {served} != body {digest}"
    manifest = json.loads(body)
    for blob in [manifest["config"], *manifest["layers"]]:
        url = f"http://{registry}/v2/{repository}/blobs/{blob['digest']}"
        head = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as response:
            assert int(response.headers.get("Content-Length", -1)) == blob["size"], blob["digest"]
    return digest


def build_and_push(sandbox: dict[str, Any], context: Path, version: str, image: str = "app/api") -> str:
    """Build ``context`` on the runner's engine and push it as ``REGISTRY/image:version``; returns the
    manifest digest. Never a half-made image under the final name: the build goes to a temporary tag,
    the final name is tagged only once it succeeded, then pushed, and the registry's manifest is
    checked against the push (digest, every blob)."""
    engine = ["docker", "-H", sandbox["build_docker_host"]]
    final = f"{sandbox['registry']}/{image}:{version}"
    temporary = f"sbx-tmp/build:{uuid.uuid4().hex[:12]}"

    def docker(*args: str) -> str:
        done = subprocess.run([*engine, *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr.strip()[-2000:]}"
        return done.stdout

    docker("build", "-q", "-t", temporary, str(context))
    try:
        docker("tag", temporary, final)
    finally:
        docker("rmi", temporary)  # only the temporary tag goes
    docker("push", "-q", final)
    pushed = [
        d.split("@", 1)[1]
        for d in docker("image", "inspect", "-f", "{{range .RepoDigests}}{{println .}}{{end}}", final).split()
        if d.startswith(f"{sandbox['registry']}/{image}@")
    ]
    served = registry_manifest_digest(sandbox["registry"], image, version)
    assert served is not None and served in pushed, f"{final}: the registry serves {served}, pushed {pushed}"
    return served


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, transitively (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def processes_naming(path: Path) -> list[tuple[int, str]]:
    """Every live process whose command line names ``path`` (read from /proc; nothing is signalled)."""
    pattern = re.compile(re.escape(str(path)) + r"(?![\w.-])")
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        if pattern.search(command):
            found.append((int(entry.name), command))
    return found


def sockets_under(path: Path) -> list[Path]:
    """Every unix socket in ``path`` and below."""
    found = []
    for directory, _, files in os.walk(path):
        for name in files:
            candidate = Path(directory) / name
            try:
                if stat.S_ISSOCK(candidate.lstat().st_mode):
                    found.append(candidate)
            except OSError:
                continue
    return found


def ssh_leftovers(control_dir: Path, grace: float = 5.0) -> str:
    """What outlived a test in its PIPELINE_SSH_CONTROL_DIR: processes naming it, sockets in it ("" when
    nothing). Waits up to ``grace`` seconds first: a master asked to exit goes a moment later."""
    deadline = time.monotonic() + grace
    while True:
        processes, sockets = processes_naming(control_dir), sockets_under(control_dir)
        if (not processes and not sockets) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    lines = [f"pid {pid}: {command}" for pid, command in processes]
    lines += [f"socket {socket}" for socket in sockets]
    return "\n".join(lines)

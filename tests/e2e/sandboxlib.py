"""The end-to-end tests' view of the sandbox: a project deployed to it, and what a user checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "sandbox" / "sandbox.sh"
APP = ROOT / "examples" / "app"
STATE = Path(os.environ.get("SANDBOX_DIR", "/tmp/sbx"))
WEBHOOK_TOKEN = "s3cr3t-webhook-token"


def unavailable() -> str | None:
    if sys.platform != "linux":
        return "the sandbox needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the sandbox needs root (network namespaces, dockerd, sshd)"
    return None


class Webhook:
    """A loopback HTTP server that records what the notify stage posts to it."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token={WEBHOOK_TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@dataclass
class Run:
    """A finished ``invoke`` run."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Project:
    """A team's repository deployed to the sandbox hosts, and what a user checks afterwards."""

    sandbox: dict[str, Any]
    work: Path
    origin: Path
    webhook: Webhook
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> list[dict[str, Any]]:
        return list(self.sandbox["hosts"])

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.work, capture_output=True, text=True, check=True)
        return done.stdout.strip()

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

    def release(self, version: str, *changes: str) -> str:
        """Make a release with ``examples/app/variant.sh`` changes: commit, changelog, tag, push."""
        subprocess.run(
            [str(APP / "variant.sh"), str(self.work), "version", version, *changes],
            check=True,
            capture_output=True,
        )
        changelog = self.work / "CHANGELOG.md"
        text = changelog.read_text().replace(
            "## [Unreleased]\n",
            f"## [Unreleased]\n\n## [{version}] - {date.today()}\n\n- {' '.join(changes) or 'release'}.\n",
            1,
        )
        changelog.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"feat: release {version}")
        self.git("tag", "-a", f"v{version}", "-m", f"Release v{version}")
        self.git("push", "-q", "origin", "HEAD:main", f"v{version}")
        return self.git("rev-parse", "HEAD")

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> Run:
        done = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.work,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=600,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``invoke`` in the background (the caller waits for it)."""
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.work,
            env=self.env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def env(self, extra: dict[str, str] | None) -> dict[str, str]:
        environment = {**os.environ, "DEPLOY_WEBHOOK": self.webhook.url, **(extra or {})}
        environment["PYTHONPATH"] = str(ROOT)
        environment.pop("GITHUB_ACTIONS", None)
        return environment

    def serving(self, host: dict[str, Any]) -> dict[str, Any]:
        """What /health answers on a host (the version that serves)."""
        with urllib.request.urlopen(host["health_url"], timeout=5) as response:
            return dict(json.load(response))

    def revision(self) -> str | None:
        """The database's alembic revision, read straight from PostgreSQL."""
        rows = psql(self.sandbox, "SELECT version_num FROM alembic_version")
        return rows[0] if rows else None

    def columns(self, table: str) -> list[str]:
        return sorted(
            psql(
                self.sandbox,
                f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'",
            )
        )

    def journal(self, host: dict[str, Any]) -> list[dict[str, Any]]:
        path = Path(host["app_path"]) / ".pipeline" / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def containers(self, host: dict[str, Any]) -> str:
        return ssh(self.sandbox, host, "docker ps --format '{{.ID}} {{.Image}}'")


def psql(sandbox: dict[str, Any], sql: str) -> list[str]:
    url = sandbox["hosts"][0]["db_url_local"]
    done = subprocess.run(["psql", "-At", url, "-c", sql], capture_output=True, text=True)
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


def clean_hosts(sandbox: dict[str, Any]) -> None:
    """No containers, no app directory, no app images, an empty database: every test starts alike."""
    for host in sandbox["hosts"]:
        ssh(
            sandbox,
            host,
            "docker ps -aq | xargs -r docker rm -f; "
            "docker images -q 'app/*' | sort -u | xargs -r docker rmi -f",
        )
        shutil.rmtree(host["app_path"], ignore_errors=True)
    psql(sandbox, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


def environment(sandbox: dict[str, Any], origin: Path) -> dict[str, Any]:
    """The deploy configuration of the sandbox hosts."""
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
        },
        "health": [
            {"http": "http://{host}:8000/health", "expect_version": True, "interval": 0.5, "attempts": 16}
        ],
        "notify": [{"webhook": {"url_env": "DEPLOY_WEBHOOK"}}],
    }


def make_project(sandbox: dict[str, Any], directory: Path) -> Project:
    """The example app as a team's repository in ``directory``: release 1.0.0 tagged and pushed."""
    origin, work = directory / "origin.git", directory / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    shutil.copytree(APP, work, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "tasks.py").write_text("from pipeline.tasks import ns  # noqa: F401\n")
    (work / ".gitignore").write_text("__pycache__/\n")
    (work / "CHANGELOG.md").write_text(
        f"# Changelog\n\n## [Unreleased]\n\n## [1.0.0] - {date.today()}\n\n- First release.\n"
    )
    project = Project(sandbox, work, origin, Webhook(), environment(sandbox, origin))
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    project.git("remote", "add", "origin", str(origin))
    project.configure()  # commits everything
    project.git("tag", "-a", "v1.0.0", "-m", "Release v1.0.0")
    project.git("push", "-q", "origin", "main", "v1.0.0")
    return project

"""The example app (``examples/app``) as a team's repository: git, releases, and ``invoke`` runs in it.

What the end-to-end tests (sandbox hosts, the fake cluster) and the kind tests (a real cluster) share:
nothing here needs a sandbox or a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "app"
WEBHOOK_TOKEN = "s3cr3t-webhook-token"


class Webhook:
    """A loopback HTTP server that records what the notify stage posts to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

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
class Repository:
    """The CI runner's checkout (``work``) of a team's repository, its ``origin``, and its webhook."""

    work: Path
    origin: Path
    webhook: Webhook

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.work, capture_output=True, text=True, check=True)
        return done.stdout.strip()

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
        environment = {**os.environ, "DEPLOY_WEBHOOK": self.webhook.url}
        environment.update(extra or {})
        environment["PYTHONPATH"] = str(ROOT)
        environment.pop("GITHUB_ACTIONS", None)
        return environment


def checkout_app(directory: Path) -> tuple[Path, Path]:
    """A bare ``origin`` and a ``work`` tree holding the example app at release 1.0.0 (nothing committed
    yet: the caller writes its invoke.yaml, commits, tags v1.0.0 and pushes)."""
    origin, work = directory / "origin.git", directory / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    shutil.copytree(APP, work, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "tasks.py").write_text("from pipeline.tasks import ns  # noqa: F401\n")
    (work / ".gitignore").write_text("__pycache__/\n")
    (work / "CHANGELOG.md").write_text(
        f"# Changelog\n\n## [Unreleased]\n\n## [1.0.0] - {date.today()}\n\n- First release.\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(origin)], cwd=work, check=True)
    return origin, work


def new_repository(directory: Path) -> Repository:
    """The example app checked out in ``directory`` (see ``checkout_app``), with a webhook of its own."""
    origin, work = checkout_app(directory)
    return Repository(work, origin, Webhook())

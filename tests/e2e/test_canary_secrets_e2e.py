"""Canary secrets in every form through real servers: a failing deploy, a dry run, a rollback and a
notification; every output, every written file, the hosts' journals and ``.git/config``, what the
channels received and every process's command line (runner and hosts) are searched for each form.

The servers fetch from a repository served over HTTP only to requests carrying the URL's token.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sandboxlib import Project, state_dir

from pipeline.secrets import forms

pytestmark = pytest.mark.e2e

TOKEN = "ghp_E2eCanaryT0ken77"  # the repository URL's user part, GitHub style
HOOK_TOKEN = "CanaryHookT0ken-e2e"  # in the webhook URL's path
TG_TOKEN = "CanaryTgT0ken-e2e"  # a Telegram bot token
QUIRKY = "qu'o\"te wörd|\\ß&<e2e-canary>"  # a chat id with quotes, non-ASCII, a backslash, markup
BASIC = base64.b64encode(f"{TOKEN}:".encode()).decode()
SECRETS = (TOKEN, HOOK_TOKEN, TG_TOKEN, QUIRKY, BASIC)


def leaks(text: str) -> list[str]:
    """Every form of every canary found in the text."""
    return sorted({f for s in SECRETS for f in forms(s) if f in text})


class Server:
    """A loopback HTTP server on ``address``: git's dumb protocol for ``repository`` (only with the
    token's header) on GET, and a channel that records and confirms every POST."""

    def __init__(self, address: str, repository: Path) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fetches: list[bool] = []
        posts, fetches = self.posts, self.fetches

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.headers.get("Authorization") == f"Basic {BASIC}"
                fetches.append(ok)
                target = repository / self.path.partition("?")[0].lstrip("/")
                body = target.read_bytes() if ok and target.is_file() else b""
                self.send_response(200 if body else 401 if not ok else 404)
                if not ok:
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append({"path": self.path, "json": json.loads(body)})
                answer = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ProcessWatch:
    """Reads every process's command line (the runner's and the hosts': one PID namespace) until
    stopped, keeping those that hold a canary."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.stop.wait(0.02):
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                        line = f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if leaks(line) and "--message" not in line:  # but the user's own `invoke notify`
                    self.found.append(line)

    def close(self) -> list[str]:
        self.stop.set()
        self.thread.join(5)
        return self.found


def leaking_app(work: Path) -> None:
    """The release's /health answers 500 with every canary in its body, and prints them to its log."""
    server = work / "app" / "server.py"
    spill = repr(" ".join([TOKEN, HOOK_TOKEN, TG_TOKEN, QUIRKY]))
    text = server.read_text().replace(
        'body.update(status="fail", error="this release is broken on purpose (health_mode=fail)")',
        f'print("leak", {spill}, flush=True); body.update(status="fail", error={spill})',
    )
    assert spill in text
    server.write_text(text)


def test_canary_secrets_never_leave_a_deploy_a_dry_run_a_rollback_or_a_notification(
    project: Project, tmp_path: Path
) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0  # from the origin's path, no token
    hook = project.origin / "hooks" / "post-update"
    hook.write_text("#!/bin/sh\nexec git update-server-info\n")
    hook.chmod(0o755)
    subprocess.run(["git", "-C", str(project.origin), "update-server-info"], check=True)
    gateway = project.sandbox["registry"].partition(":")[0]
    server = Server(gateway, project.origin)
    watch = ProcessWatch()
    runs, files = [], [tmp_path / "report.json", tmp_path / "summary.md"]
    try:
        project.configure(
            repository=f"{server.url.replace('http://', f'http://{TOKEN}@')}/",
            notify=[
                {"webhook": {"url_env": "DEPLOY_WEBHOOK"}},
                {"telegram": {"token_env": "TG_TOKEN", "chat_env": "TG_CHAT", "api_url": server.url}},
            ],
        )
        env = {
            "DEPLOY_WEBHOOK": f"{server.url}/hook/{HOOK_TOKEN}",
            "TG_TOKEN": TG_TOKEN,
            "TG_CHAT": QUIRKY,
            "GITHUB_STEP_SUMMARY": str(files[1]),
        }
        leaking_app(project.work)
        project.release("2.0.0", "health", "fail")
        failed = project.invoke(
            "deploy", "--env", "sandbox", "--version", "2.0.0", "--report", str(files[0]), env=env
        )
        assert failed.code == 1, failed.text
        assert project.versions() == ["1.0.0"] * 3
        assert "leak" in failed.out and "leak" in files[0].read_text()  # the evidence is there, redacted
        dry = project.invoke("deploy", "--env", "sandbox", "--version", "2.0.0", "--dry-run", env=env)
        assert dry.code == 0, dry.text
        project.release("3.0.0", "health", "ok")
        good = project.invoke("deploy", "--env", "sandbox", "--version", "3.0.0", env=env)
        assert good.code == 0, good.text
        back = project.invoke("rollback", "--env", "sandbox", env=env)
        assert back.code == 0, back.text
        told = project.invoke("notify", "--env", "sandbox", "--message", f"by hand {TOKEN} {QUIRKY}", env=env)
        assert told.code == 0, told.text
        runs = [failed, dry, good, back, told]
    finally:
        server.close()
        processes = watch.close()

    assert server.fetches and any(server.fetches)  # the hosts fetched, with the token's header
    assert len(server.posts) >= 2 * 3
    received = [{k: v for k, v in p["json"].items() if k != "chat_id"} for p in server.posts]
    names = ["failed deploy", "dry run", "good deploy", "rollback", "notify"]
    texts = {name: r.out + r.err for name, r in zip(names, runs, strict=True)}
    texts.update({f.name: f.read_text() for f in files})
    texts["received"] = json.dumps(received) + json.dumps(received, ensure_ascii=False)
    for host in project.hosts:
        texts[f"journal {host['name']}"] = (state_dir(host) / "journal.jsonl").read_text()
        config = texts[f".git/config {host['name']}"] = (
            Path(host["app_path"]) / ".git" / "config"
        ).read_text()
        assert f"url = {server.url}/" in config
    assert {name: found for name, text in texts.items() if (found := leaks(text))} == {}
    assert processes == []

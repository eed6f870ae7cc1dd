"""Credentials in a repository URL reach git on the host through stdin: never argv, never .git/config."""

from __future__ import annotations

import base64
import shlex
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_compose_target import NEW, Hosts, connected

from pipeline import compose as cmd
from pipeline.engine.plan import render_plan
from pipeline.engine.values import Release
from pipeline.executor import Command, LocalExecutor
from pipeline.remote import guarded
from pipeline.secrets import forms

TOKEN = "ghp_CanaryT0ken42"
URL = f"https://{TOKEN}@github.com/acme/app.git"
HEADER = "Authorization: Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()


def leaks(text: str, *secrets: str) -> list[str]:
    """Every form of every secret found in the text."""
    return sorted({f for s in secrets for f in forms(s) if f in text})


def test_the_url_written_to_the_hosts_git_config_has_no_credentials() -> None:
    assert cmd.git_prepare("/srv/app", URL) == [
        ("git", "-C", "/srv/app", "init", "--quiet"),
        ("git", "-C", "/srv/app", "config", "remote.origin.url", "https://github.com/acme/app.git"),
        ("git", "-C", "/srv/app", "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
    ]


def test_an_authenticated_fetch_reads_its_header_on_stdin_into_gits_environment() -> None:
    fetch = ("git", "-C", "/srv/app", "fetch", "--quiet", "--force", "--tags", "origin")
    assert cmd.git_fetch("/srv/app", authenticated=True) == (
        "sh",
        "-c",
        cmd.GIT_AUTH_SCRIPT,
        "pl-git-auth",
        *fetch,
    )
    assert cmd.git_auth(URL) == HEADER + "\n"
    assert cmd.git_auth("https://bot:p%40ss@git.example.com/a.git") == "Authorization: Basic Ym90OnBAc3M=\n"
    assert cmd.git_auth("git@github.com:acme/app.git") is None
    assert cmd.git_auth("ssh://git@github.com/acme/app.git") is None


def test_a_deploy_and_its_dry_run_never_put_the_credentials_in_an_argv() -> None:
    hosts = Hosts()
    with connected(hosts, repository=URL) as (engine, target):
        states = engine.read()
        plan = render_plan("prod", target, engine.policy, Release("2.0.0", NEW), states, {})
        report = engine.deploy(Release("2.0.0", NEW), states)
    assert report.outcome == "deployed"
    calls = hosts.executor.calls
    assert not leaks("\n".join(shlex.join(c.argv) for c in calls), TOKEN)
    assert not leaks("\n".join(plan), TOKEN)
    fetches = [c for c in calls if "pl-git-auth" in c.argv[-1]]
    assert [c.stdin for c in fetches] == [HEADER + "\n"] * 3
    assert (
        "git",
        "-C",
        "/srv/app",
        "config",
        "remote.origin.url",
        "https://github.com/acme/app.git",
    ) in hosts.on("web1")


class _DumbGitServer:
    """A repository served over git's dumb HTTP protocol, only to requests with the right header."""

    def __init__(self, root: Path, header: str) -> None:
        expected = header.partition(": ")[2]
        self.authorized: list[bool] = []
        authorized = self.authorized

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.headers.get("Authorization") == expected
                authorized.append(ok)
                target = root / self.path.partition("?")[0].lstrip("/")
                if not ok:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.end_headers()
                elif target.is_file():
                    body = target.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_response(404)
                    self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_DumbGitServer, str]]:
    def git(*args: str, cwd: Path = tmp_path) -> None:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    git("init", "-q", "-b", "main", "work")
    (tmp_path / "work" / "f").write_text("x\n")
    git("-C", "work", "add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "-C", "work", "commit", "-qm", "x")
    git("clone", "-q", "--bare", "work", "origin.git")
    git("-C", "origin.git", "update-server-info")
    server = _DumbGitServer(tmp_path / "origin.git", HEADER)
    try:
        yield server, f"http://{TOKEN}@127.0.0.1:{server.port}/"
    finally:
        server.close()


def prepared(tmp_path: Path, url: str) -> tuple[str, LocalExecutor]:
    """A checkout made the way the hosts' are: its directory, and the repository pointed at ``url``."""
    checkout = str(tmp_path / "checkout")
    executor = LocalExecutor()
    for argv in [cmd.make_dirs(checkout), *cmd.git_prepare(checkout, url)]:
        assert executor.run(Command(argv)).ok
    return checkout, executor


def test_a_real_git_fetches_with_the_urls_credentials_yet_keeps_them_out_of_its_config(
    served: tuple[_DumbGitServer, str], tmp_path: Path
) -> None:
    server, url = served
    checkout, executor = prepared(tmp_path, url)
    fetch = guarded(cmd.git_fetch(checkout, authenticated=True), 30, watch_stdin=False)
    fetched = executor.run(
        Command(fetch, stdin=cmd.git_auth(url), env={"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)})
    )
    assert fetched.ok, fetched.stderr
    assert executor.run(Command(("git", "-C", checkout, "rev-parse", "--verify", "origin/main"))).ok
    assert server.authorized and all(server.authorized)
    config = (tmp_path / "checkout" / ".git" / "config").read_text()
    assert f"url = http://127.0.0.1:{server.port}/" in config
    assert not leaks(config, TOKEN, HEADER.partition("Basic ")[2])
    assert not leaks(shlex.join(fetch), TOKEN, HEADER.partition("Basic ")[2])


def test_without_the_header_the_same_fetch_is_refused(
    served: tuple[_DumbGitServer, str], tmp_path: Path
) -> None:
    server, url = served
    checkout, executor = prepared(tmp_path, url)
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "HOME": str(tmp_path)}
    assert not executor.run(Command(cmd.git_fetch(checkout), env=env, timeout=30)).ok
    assert server.authorized and not any(server.authorized)

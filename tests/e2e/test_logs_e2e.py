"""``invoke logs`` against the sandbox's three hosts and the fake cluster's real pods, as a user reads them.

A request with a marker in its URL makes a line in the api's access log on each host (or pod); the test
looks for that line, prefixed with where it came from. ``--follow`` runs as a process of its own: a new
line shows up while it runs, and after Ctrl-C (or SIGTERM) nothing it started is left, neither ssh on
the runner nor ``docker compose logs`` on the hosts, found in each host's own process tree.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helmlib import make_helm_project
from helmproject import HelmProject
from kubefake import FakeCluster
from sandboxlib import STATE, Project, descendants, state_dir

pytestmark = pytest.mark.e2e


class Output:
    """A process's stdout, read line by line by a thread, waited for with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stream], daemon=True).start()

    def wait_for(self, *needles: str, seconds: float = 60) -> list[str]:
        """Lines until each needle was in one; AssertionError naming what was seen after ``seconds``."""
        end = time.monotonic() + seconds
        missing = list(needles)
        while missing:
            try:
                line = self.lines.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"not seen {missing} in:\n{''.join(self.seen)}") from None
            self.seen.append(line)
            missing = [n for n in missing if n not in line]
        return self.seen


def probe(base: str) -> str:
    """GET ``base/probe-...``, a path of its own: the api answers 404, and logs a line that carries it."""
    marker = f"probe-{uuid.uuid4().hex[:8]}"
    try:
        urllib.request.urlopen(f"{base}/{marker}", timeout=10).close()
    except urllib.error.HTTPError as error:
        assert error.code == 404, error
    return marker


def base_of(host: dict[str, Any]) -> str:
    return str(host["health_url"]).rsplit("/health", 1)[0]


def host_processes(host: dict[str, Any]) -> list[str]:
    """The command lines of every process in the host's own tree (under its sshd), read from /proc."""
    root = int((STATE / "hosts" / host["name"] / "sshd.pid").read_text().split()[0])
    found = []
    for child in descendants(root):
        try:
            found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def following_logs(host: dict[str, Any]) -> list[str]:
    """``docker compose ... logs --follow`` processes running on the host."""
    return [c for c in host_processes(host) if "compose" in c and " logs " in c and "--follow" in c]


def wait_until(condition: Any, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(0.2)


# -- compose ---------------------------------------------------------------------------------------------


def test_logs_of_every_host_with_tail_since_and_service_and_an_unreachable_host(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    markers = {h["ip"]: probe(base_of(h)) for h in project.hosts}
    journals = [project.journal(h) for h in project.hosts]

    run = project.invoke("logs", "--env", "sandbox", "--tail", "20")
    assert run.code == 0, run.text
    for ip, marker in markers.items():
        here = [line for line in run.out.splitlines() if re.match(rf"{re.escape(ip)} *\| ", line)]
        assert any(re.search(rf"\| api-1 +\| .*\"GET /{marker} HTTP/1.1\" 404", line) for line in here), (
            run.out
        )
        assert any(re.search(r"\| worker-1 +\| worker alive", line) for line in here), run.out
        assert not any(line.startswith(f"{ip}:") for line in run.err.splitlines()), run.err  # no note

    api = project.invoke("logs", "--env", "sandbox", "--service", "api", "--since", "10m")
    assert api.code == 0, api.text
    assert "worker-1" not in api.out and all(m in api.out for m in markers.values())
    one = project.invoke("logs", "--env", "sandbox", "--service", "worker", "--tail", "1")
    assert one.code == 0 and len(one.out.splitlines()) == 3, one.text
    later = project.invoke("logs", "--env", "sandbox", "--since", "2000-01-01T00:00:00+02:00", "-s", "api")
    assert later.code == 0 and all(m in later.out for m in markers.values()), later.text

    unknown = project.invoke("logs", "--env", "sandbox", "--service", "db")
    assert unknown.code == 2, unknown.text
    assert "error: --service db: no such service; the services are api, worker" in unknown.err
    assert unknown.out == ""

    # Read-only: no lock was taken, no journal line written.
    assert [project.journal(h) for h in project.hosts] == journals
    assert not any((state_dir(h) / "lock").exists() for h in project.hosts)

    # A host that cannot be reached says so; the others are read; exit 1.
    hosts = project.environment["hosts"]
    project.configure(hosts=[*hosts, {"address": "root@127.0.0.1:1", "path": hosts[0]["path"]}])
    partial = project.invoke("logs", "--env", "sandbox", "--service", "api")
    assert partial.code == 1, partial.text
    assert "127.0.0.1: reading the journal" in partial.err or "127.0.0.1: unreachable" in partial.err
    assert all(m in partial.out for m in markers.values())
    assert "Traceback" not in partial.text


def test_follow_prints_new_lines_and_ctrl_c_stops_every_ssh_and_remote_logs(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    for signum, code, last in (
        (signal.SIGINT, 0, "logs: stopped following (Ctrl-C)"),
        (signal.SIGTERM, 143, "logs: stopped by SIGTERM"),
    ):
        process = project.start("logs", "--env", "sandbox", "--follow", "--tail", "0", "--service", "api")
        output = Output(process)
        try:
            wait_until(lambda: all(following_logs(h) for h in project.hosts), 60, "logs -f on every host")
            time.sleep(3)  # compose attaches to the containers' logs a moment after it starts
            markers = [probe(base_of(h)) for h in project.hosts]
            lines = output.wait_for(*markers)
        finally:
            process.send_signal(signum)
            _, err = process.communicate(timeout=60)
        assert process.returncode == code, err
        assert err.strip().splitlines() == [last], err
        assert not any("worker" in line for line in lines)  # --service api only
        for host in project.hosts:  # the remote guard saw the ssh session go, and stopped compose there
            wait_until(
                lambda h=host: not following_logs(h), 15, f"docker compose logs ended on {host['name']}"
            )


# -- helm ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(sandbox: dict[str, Any]) -> Iterator[FakeCluster]:
    """One fake cluster for the module, its pods on the sandbox's kube engine."""
    with FakeCluster(sandbox["kube_docker_host"], sandbox["kube_ip"]) as fake:
        yield fake


@pytest.fixture
def helm(sandbox: dict[str, Any], cluster: FakeCluster, tmp_path: Path) -> Iterator[HelmProject]:
    """The example app deployed with helm 4 to a namespace of its own: release 1.0.0 serving."""
    project = make_helm_project(sandbox, cluster, tmp_path, "4")
    try:
        deployed = project.invoke("deploy", "--env", "k8s")
        assert deployed.code == 0, deployed.text
        yield project
    finally:
        project.close()


def proxy_probe(cluster: FakeCluster, namespace: str) -> str:
    """A request to the release's Service through the API server: one of its pods logs the marker."""
    return probe(f"{cluster.url}/api/v1/namespaces/{namespace}/services/app:http/proxy")


def following_streams(cluster: FakeCluster) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kubefake-log-follow" and t.is_alive()]


def test_helm_logs_of_every_pod_with_tail_service_and_follow(helm: HelmProject, cluster: FakeCluster) -> None:
    ledger = helm.ledger()
    marker = proxy_probe(cluster, helm.namespace)
    run = helm.invoke("logs", "--env", "k8s", "--tail", "50", "--timestamps")
    assert run.code == 0, run.text
    pods = sorted(p["metadata"]["name"] for p in helm.pods())
    prefixes = {line.partition(" | ")[0].strip() for line in run.out.splitlines()}
    assert prefixes == {f"{p}/app" for p in pods}, run.out
    [line] = [line for line in run.out.splitlines() if marker in line]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ", line.split(" | ", 1)[1]), line

    unknown = helm.invoke("logs", "--env", "k8s", "--service", "db")
    assert unknown.code == 2, unknown.text
    assert "the workloads are app, the containers app" in unknown.err
    since = helm.invoke("logs", "--env", "k8s", "--service", "app", "--since", "1h")
    assert since.code == 0 and marker in since.out, since.text

    process = helm.start("logs", "--env", "k8s", "--follow", "--tail", "0")
    output = Output(process)
    try:
        wait_until(lambda: len(following_streams(cluster)) >= len(pods), 60, "a followed stream per pod")
        later = proxy_probe(cluster, helm.namespace)
        output.wait_for(later)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert err.strip().splitlines() == ["logs: stopped following (Ctrl-C)"], err
    assert marker not in "".join(output.seen)  # --tail 0: only what came after
    wait_until(lambda: not following_streams(cluster), 15, "the API server saw every follower go")
    assert helm.lease() is None and helm.ledger() == ledger  # read-only


def test_the_fake_api_server_streams_a_followed_log_until_the_container_ends(
    cluster: FakeCluster, sandbox: dict[str, Any], tmp_path: Path
) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig(tmp_path / "kubeconfig"))))
    name = f"follow-{uuid.uuid4().hex[:6]}"
    script = "echo one; sleep 2; echo two; sleep 2; echo three"
    container = {"name": "c", "image": sandbox["busybox_image"], "command": ["sh", "-c", script]}
    body = {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [container]}}
    cluster.store.create("v1", "pods", "default", body)

    def running() -> bool:
        statuses = (
            (cluster.get("v1", "pods", "default", name) or {}).get("status", {}).get("containerStatuses")
        )
        return bool(statuses) and "running" in statuses[0]["state"]

    wait_until(running, 60, "the container runs")
    response = api.read_namespaced_pod_log(name, "default", follow=True, _preload_content=False)
    assert response.headers["Transfer-Encoding"] == "chunked"
    arrived = [(time.monotonic(), chunk) for chunk in response.stream(1024)]
    assert b"".join(c for _, c in arrived) == b"one\ntwo\nthree\n"  # from the start, to the container's end
    assert arrived[-1][0] - arrived[0][0] > 1.5  # as it was written, not at once

    def log(query: str) -> tuple[int, str]:
        url = f"{cluster.url}/api/v1/namespaces/default/pods/{name}/log?{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())["message"]

    assert log("tailLines=1") == (200, "three\n")
    assert log("follow=true&tailLines=2") == (200, "two\nthree\n")  # ended: what there is, then the end
    assert log("sinceSeconds=3600") == (200, "one\ntwo\nthree\n")
    time.sleep(2)
    assert log("sinceSeconds=1") == (200, "")
    assert log("sinceTime=2000-01-01T00:00:00Z&tailLines=1") == (200, "three\n")
    assert log("sinceSeconds=5&sinceTime=2000-01-01T00:00:00Z") == (
        400, "at most one of sinceTime or sinceSeconds may be specified",
    )  # fmt: skip

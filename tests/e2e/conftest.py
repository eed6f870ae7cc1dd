"""End-to-end fixtures: real servers (sshd + dockerd in network namespaces), PostgreSQL, a registry.

``sandbox/sandbox.sh up`` starts them once per session and ``down`` stops them all by PID, even when
tests fail, but only when this session's ``up`` started them: when another sandbox already runs (another
test session, a demo), ``up`` refuses and this session's end-to-end tests fail with its message, leaving
that sandbox alone. Each test gets a fresh project: an origin repository the servers fetch from, a work
tree that is the CI runner's checkout, clean hosts and empty databases, and its own
``PIPELINE_SSH_CONTROL_DIR``: nothing may outlive the test there (no process naming it, no socket).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubefake import FakeCluster
from sandboxlib import (
    SANDBOX,
    SANDBOX_REFUSED,
    STATE,
    Project,
    clean_hosts,
    make_project,
    ssh_leftovers,
    unavailable,
)

UP_TIMEOUT = 900


def start_sandbox(log: Path) -> int:
    """``sandbox.sh up`` with its output in ``log``. Interrupted (timeout, Ctrl-C), it gets SIGTERM: a
    stopped ``up`` stops what it had started itself."""
    with open(log, "w") as out:
        up = subprocess.Popen([str(SANDBOX), "up"], stdout=out, stderr=subprocess.STDOUT)
        try:
            return up.wait(timeout=UP_TIMEOUT)
        except BaseException:
            up.terminate()
            try:
                up.wait(timeout=120)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
            raise


@pytest.fixture(scope="session")
def sandbox() -> Iterator[dict[str, Any]]:
    """The sandbox's addresses and paths (``env.json``); everything this session's ``up`` started is
    stopped after. A sandbox this session did not start is never stopped."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    fd, name = tempfile.mkstemp(prefix="sbx-pytest-up-", suffix=".log", dir="/tmp")
    log = Path(name)
    with open(fd, "w"):
        pass
    try:
        code = start_sandbox(log)
    except subprocess.TimeoutExpired:
        pytest.fail(f"sandbox.sh up took over {UP_TIMEOUT} s and was stopped; its output: {log}")
    if code == SANDBOX_REFUSED:
        lines = log.read_text().strip().splitlines()
        log.unlink(missing_ok=True)
        pytest.fail(f"sandbox.sh up refused: {lines[-1] if lines else '(no output)'}", pytrace=False)
    if code:
        # a failed `up` has already stopped what it started
        pytest.fail(f"sandbox.sh up failed (exit {code}):\n{log.read_text()[-3000:]}", pytrace=False)
    try:
        yield json.loads((STATE / "env.json").read_text())
    finally:
        down = subprocess.run([str(SANDBOX), "down"], capture_output=True, text=True, timeout=300)
        if down.returncode == 0:
            log.unlink(missing_ok=True)


@pytest.fixture
def kube_cluster(sandbox: dict[str, Any]) -> Iterator[FakeCluster]:
    """A fake Kubernetes cluster (tests/kubefake) whose pods run on the sandbox's pod engine (10.200.0.30,
    netns sbx-k) and reach the registry and PostgreSQL as the hosts do. Stopped after the test; then no
    container of it may be left on that engine."""
    import docker

    cluster = FakeCluster(
        docker_host=sandbox["kube_docker_host"],
        node_ip=sandbox["kube_ip"],
        capacity={"cpu": "2", "memory": "4Gi"},
    )
    cluster.start()
    assert cluster.controllers is not None and cluster.controllers.runtime is not None
    label = f"io.kubefake.cluster={cluster.controllers.runtime.cluster_id}"
    try:
        yield cluster
    finally:
        cluster.stop()
    engine = docker.DockerClient(base_url=sandbox["kube_docker_host"])
    try:
        left = engine.containers.list(all=True, filters={"label": label})
    finally:
        engine.close()
    assert not left, f"containers of the fake cluster outlived it: {[c.name for c in left]}"
    threads = [t.name for t in threading.enumerate() if t.name.startswith("kubefake")]
    assert not threads, f"threads of the fake cluster outlived it: {threads}"


@pytest.fixture
def project(sandbox: dict[str, Any], tmp_path: Path) -> Iterator[Project]:
    """Release 1.0.0 of the example app, tagged and pushed; not deployed yet. Its invoke runs get a
    PIPELINE_SSH_CONTROL_DIR of their own (short: unix socket paths stay < 108 chars); after the test no
    process may name it and no socket may be left in it."""
    clean_hosts(sandbox)
    control_dir = Path(tempfile.mkdtemp(prefix="plt-", dir="/tmp"))
    try:
        p = make_project(sandbox, tmp_path, control_dir)
    except BaseException:
        shutil.rmtree(control_dir, ignore_errors=True)
        raise
    try:
        yield p
    finally:
        p.webhook.close()
    leftovers = ssh_leftovers(control_dir)
    if not leftovers:
        shutil.rmtree(control_dir, ignore_errors=True)
    assert not leftovers, f"ssh connections outlived the test in {control_dir} (left as is):\n{leftovers}"

"""End-to-end fixtures: real servers (sshd + dockerd in network namespaces), PostgreSQL, a registry.

``sandbox/sandbox.sh up`` starts them once per session and ``down`` stops them all by PID, even when
tests fail. Each test gets a fresh project: an origin repository the servers fetch from, a work tree
that is the CI runner's checkout, clean hosts and an empty database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandboxlib import SANDBOX, STATE, Project, clean_hosts, make_project, unavailable


@pytest.fixture(scope="session")
def sandbox() -> Iterator[dict[str, Any]]:
    """The sandbox's addresses and paths (``env.json``); everything it started is stopped after."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    log = STATE.parent / "sbx-pytest.log"
    try:
        with open(log, "w") as out:
            up = subprocess.run([str(SANDBOX), "up"], stdout=out, stderr=subprocess.STDOUT, timeout=900)
        if up.returncode:
            pytest.fail(f"sandbox.sh up failed:\n{log.read_text()[-3000:]}")
        yield json.loads((STATE / "env.json").read_text())
    finally:
        subprocess.run([str(SANDBOX), "down"], capture_output=True, timeout=300)


@pytest.fixture
def project(sandbox: dict[str, Any], tmp_path: Path) -> Iterator[Project]:
    """Release 1.0.0 of the example app, tagged and pushed; not deployed yet."""
    clean_hosts(sandbox)
    p = make_project(sandbox, tmp_path)
    yield p
    p.webhook.close()
    leftover = subprocess.run(["pgrep", "-f", "ControlPath=/tmp/pl-"], capture_output=True, text=True)
    for pid in leftover.stdout.split():
        os.kill(int(pid), signal.SIGTERM)
    assert not leftover.stdout, "an ssh connection master outlived the run"

"""`invoke prune` and the disk figures of `invoke status` on the sandbox's three real hosts.

Checked as an operator would: which images `docker image ls` still lists on each host, which release
folders are left, what each host serves, what the journals say, and that a rollback to what was kept
still works while a rollback to what was pruned is refused before anything changes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sandboxlib import Project, ssh, state_dir

pytestmark = pytest.mark.e2e

VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]


def images(project: Project, host: dict[str, Any]) -> set[str]:
    """The app's image tags on a host (``1.0.0``), as docker lists them."""
    out = ssh(project.sandbox, host, "docker image ls --format '{{.Repository}}:{{.Tag}}'")
    return {
        line.rsplit(":", 1)[1] for line in out.split() if "/app/api:" in line or line.startswith("app/api:")
    }


def folders(host: dict[str, Any]) -> set[str]:
    releases = state_dir(host) / "releases"
    return {p.name for p in releases.iterdir()} if releases.exists() else set()


def snapshot(project: Project) -> list[tuple[object, ...]]:
    return [(images(project, h), folders(h), project.journal(h)) for h in project.hosts]


def deploy_image_releases(project: Project) -> None:
    project.configure(source="image", compose_file="compose.image.yaml")
    project.git("tag", "-f", "-a", "v1.0.0", "-m", "Release v1.0.0")
    project.git("push", "-q", "-f", "origin", "v1.0.0")
    for version in VERSIONS:
        if version != "1.0.0":
            project.release(version)
        project.build_and_push(version)
        run = project.invoke("deploy", "--env", "sandbox", "--version", version)
        assert run.code == 0, run.text


def test_prune_keeps_what_a_rollback_needs_and_removes_the_rest_on_every_host(project: Project) -> None:
    deploy_image_releases(project)
    assert all(images(project, h) == set(VERSIONS) == folders(h) for h in project.hosts)

    before = snapshot(project)
    dry = project.invoke("prune", "--env", "sandbox", "--keep", "2", "--dry-run")
    assert dry.code == 0, dry.text
    assert "remove  1.0.0" in dry.out and "images 10.200.0.1:15000/app/api:1.0.0" in dry.out
    assert "keep    1.3.0          serving on every host" in dry.out
    assert "keep    1.1.0          rollback target 2 of 2 (healthy on every host)" in dry.out
    assert snapshot(project) == before
    assert not any((state_dir(h) / "lock").exists() for h in project.hosts)

    run = project.invoke("prune", "--env", "sandbox", "--keep", "2")
    assert run.code == 0, run.text
    assert "prune sandbox: OK, 3 removed" in run.out
    assert "freed" in run.out
    for host in project.hosts:
        assert images(project, host) == {"1.1.0", "1.2.0", "1.3.0"}
        assert folders(host) == {"1.1.0", "1.2.0", "1.3.0"}
        last = project.journal(host)[-1]
        assert (last["event"], last["version"], last["result"], last["reason"]) == (
            "prune",
            "1.0.0",
            "pruned",
            "removed 1.0.0",
        )
        assert not (state_dir(host) / "lock").exists()
    assert project.versions() == ["1.3.0"] * 3

    again = project.invoke("prune", "--env", "sandbox", "--keep", "2")
    assert again.code == 0 and "OK, 0 removed" in again.out  # nothing left to remove, no journal line
    assert [len(project.journal(h)) for h in project.hosts] == [len(s[2]) + 1 for s in before]

    refused = project.invoke("rollback", "--env", "sandbox", "--to", "1.0.0")
    assert refused.code == 2, refused.text
    assert "1.0.0 was pruned" in refused.err and "nothing was changed" in refused.err
    assert "rolling back" not in refused.out
    assert project.versions() == ["1.3.0"] * 3

    back = project.invoke("rollback", "--env", "sandbox", "--to", "1.1.0")
    assert back.code == 0, back.text
    assert project.versions() == ["1.1.0"] * 3


def test_prune_of_built_images_keeps_shared_images_and_refuses_a_held_lock(project: Project) -> None:
    for version in VERSIONS[:3]:
        if version != "1.0.0":
            project.release(version)
        run = project.invoke("deploy", "--env", "sandbox", "--version", version)
        assert run.code == 0, run.text
    busybox = [
        ssh(project.sandbox, h, "docker image ls -q 10.200.0.1:15000/sbx/busybox") for h in project.hosts
    ]

    lock = state_dir(project.hosts[1]) / "lock"
    lock.write_text(
        json.dumps({"who": "alice", "at": "2026-11-21T10:00:00Z", "version": "9.9.9", "run": "x"})
    )
    held = project.invoke("prune", "--env", "sandbox", "--keep", "1")
    assert held.code == 5, held.text
    assert "alice" in held.err
    assert all(images(project, h) == {"1.0.0", "1.1.0", "1.2.0"} for h in project.hosts)
    lock.unlink()

    run = project.invoke("prune", "--env", "sandbox", "--keep", "1")
    assert run.code == 0, run.text
    for host, shared in zip(project.hosts, busybox, strict=True):
        assert images(project, host) == {"1.1.0", "1.2.0"}
        assert ssh(project.sandbox, host, "docker image ls -q 10.200.0.1:15000/sbx/busybox") == shared != ""
    assert project.versions() == ["1.2.0"] * 3
    assert project.invoke("deploy", "--env", "sandbox", "--version", "1.2.0").code == 0  # still a no-op
    assert "already deployed" in project.invoke("deploy", "--env", "sandbox", "--version", "1.2.0").out


def test_status_shows_each_hosts_disk_and_warns_past_the_threshold(project: Project) -> None:
    assert project.invoke("deploy", "--env", "sandbox").code == 0
    started = time.monotonic()
    plain = project.invoke("status", "--env", "sandbox")
    assert time.monotonic() - started < 10  # about 1 s here, Python's start included
    assert plain.code == 0, plain.text
    assert plain.out.count("  disk: /") == 3 and "WARNING" not in plain.out

    project.configure(disk={"warn_percent": 1})
    warned = project.invoke("status", "--env", "sandbox")
    assert warned.code == 0
    for host in project.hosts:  # docker's data root is a filesystem of its own here: warned about too
        assert f"WARNING: the disk of {host['app_path']} (" in warned.out
    assert "`invoke prune --env sandbox` removes old releases" in warned.out
    data = json.loads(project.invoke("status", "--env", "sandbox", "--json").out)
    for host in data["hosts"]:
        first = host["disk"]["filesystems"][0]
        assert host["disk"]["warn_percent"] == 1 and first["warning"] is True
        assert first["size_bytes"] > first["available_bytes"] > 0
        assert {fs["role"] for fs in host["disk"]["filesystems"]} == {"app", "docker"}

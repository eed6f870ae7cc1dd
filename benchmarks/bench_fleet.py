"""Benchmark fleets over the real sandbox: how deploy time grows with hosts, the rollback, `status`.

    python benchmarks/bench_fleet.py [--rounds 3] [--hosts 1,3,8] [--git-hosts 1,3]

Starts the sandbox with as many hosts as the largest fleet (SANDBOX_HOSTS 2..N+1) when it is not up,
and stops it after; a sandbox already up with fewer hosts is refused. It prints medians of:
  - `invoke deploy` wall time with `source: image` (pull a tag, `up -d`) on 1, 3 and 8 hosts, and the
    ratio to 1 host (targets: 3 hosts at most 1.2x, 8 hosts at most 1.5x);
  - the same with `source: git` (a build per host, on this machine's 2 cores);
  - failed health verdict -> previous release proven healthy again, beside the restart it contains
    (target: restart + under 1 s), on 3 hosts;
  - `invoke status` on every host (target: under 1 s on 8 hosts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests"))

from sandboxlib import SANDBOX, STATE, Project, clean_hosts, make_project  # noqa: E402


def timed(project: Project, *args: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    run = project.invoke(*args)
    return time.perf_counter() - started, run.code, run.text


def deploy(project: Project, version: str, report: Path | None = None) -> tuple[float, dict[str, Any]]:
    args = ["deploy", "--env", "sandbox", "--version", version]
    if report:
        args += ["--report", str(report)]
    wall, code, text = timed(project, *args)
    if code not in (0, 1):
        sys.exit(f"deploy {version} exited {code}:\n{text}")
    return wall, json.loads(report.read_text()) if report else {}


def fleet(project: Project, sandbox: dict[str, Any], count: int) -> None:
    """Deploy to the first ``count`` hosts only, from a clean start."""
    clean_hosts(sandbox)
    hosts = [{"address": f"root@{h['ip']}", "path": h["app_path"]} for h in sandbox["hosts"][:count]]
    project.configure(hosts=hosts)


def image_fleet(
    project: Project, sandbox: dict[str, Any], counts: list[int], rounds: int
) -> dict[int, float]:
    project.configure(source="image", compose_file="compose.image.yaml")
    versions = ["1.0.0"]
    project.git("tag", "-f", "-a", "v1.0.0", "-m", "Release v1.0.0")
    project.git("push", "-q", "-f", "origin", "v1.0.0")
    project.build_and_push("1.0.0")
    project.release("2.0.0")
    project.build_and_push("2.0.0")
    versions.append("2.0.0")
    medians = {}
    for count in counts:
        fleet(project, sandbox, count)
        deploy(project, "1.0.0")  # the first pull of each image is not what is measured
        deploy(project, "2.0.0")
        walls = [deploy(project, versions[n % 2])[0] for n in range(rounds * 2)]
        medians[count] = statistics.median(walls)
        print(f"image source, {count} host(s): {medians[count]:.2f} s (runs: {_list(walls)})", flush=True)
    return medians


def git_fleet(project: Project, sandbox: dict[str, Any], counts: list[int], rounds: int) -> dict[int, float]:
    project.configure(source="git", compose_file="compose.yaml")
    medians = {}
    number = 10
    for count in counts:
        fleet(project, sandbox, count)
        deploy(project, "1.0.0")
        walls = []
        for _ in range(rounds):
            number += 1
            version = f"{number}.0.0"
            project.release(version)
            walls.append(deploy(project, version)[0])
        medians[count] = statistics.median(walls)
        print(f"git source, {count} host(s): {medians[count]:.2f} s (runs: {_list(walls)})", flush=True)
    return medians


def rollbacks(project: Project, sandbox: dict[str, Any], rounds: int, tmp: Path) -> tuple[float, float]:
    fleet(project, sandbox, 3)
    project.configure(source="image", compose_file="compose.image.yaml")
    deploy(project, "1.0.0")
    totals, restarts = [], []
    for n in range(rounds):
        version = f"2.9.{n}"
        project.release(version, "health", "fail")
        project.build_and_push(version)
        _, data = deploy(project, version, tmp / f"bad{n}.json")
        total = float(data["timings"]["rollback"])
        restart = max(float(p["seconds"]) for p in data["rollback"] if p["name"] == "restore")
        totals.append(total)
        restarts.append(restart)
        print(f"rollback {n + 1}: {total:.2f} s, of which the restart {restart:.2f} s")
    return statistics.median(totals), statistics.median(restarts)


def status_time(project: Project, sandbox: dict[str, Any], count: int, rounds: int) -> float:
    hosts = [{"address": f"root@{h['ip']}", "path": h["app_path"]} for h in sandbox["hosts"][:count]]
    project.configure(hosts=hosts)
    walls = []
    for _ in range(rounds * 2):
        wall, code, text = timed(project, "status", "--env", "sandbox")
        if code:
            sys.exit(f"status exited {code}:\n{text}")
        walls.append(wall)
    return statistics.median(walls)


def _list(walls: list[float]) -> str:
    return ", ".join(f"{w:.2f}" for w in walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hosts", default="1,3,8")
    parser.add_argument("--git-hosts", default="1,3")
    args = parser.parse_args()
    counts = [int(n) for n in args.hosts.split(",")]
    git_counts = [int(n) for n in args.git_hosts.split(",")] if args.git_hosts else []
    wanted = max(counts + git_counts)
    started_here = (
        not (STATE / "env.json").exists()
        or "sandbox is down"
        in subprocess.run([str(SANDBOX), "status"], capture_output=True, text=True).stdout
    )
    if started_here:
        numbers = " ".join(str(n) for n in range(2, wanted + 2))
        up = subprocess.run(
            [str(SANDBOX), "up"], env={**os.environ, "SANDBOX_HOSTS": numbers}, capture_output=True
        )
        if up.returncode:
            sys.exit(f"sandbox.sh up failed:\n{up.stdout.decode()[-2000:]}{up.stderr.decode()[-2000:]}")
    sandbox = json.loads((STATE / "env.json").read_text())
    if len(sandbox["hosts"]) < wanted:
        sys.exit(f"the sandbox has {len(sandbox['hosts'])} hosts, {wanted} are needed: stop it first")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as name:
            tmp = Path(name)
            control = Path(tempfile.mkdtemp(prefix="plb-", dir="/tmp"))
            project = make_project(sandbox, tmp, control)
            project.environment.pop("migrate", None)  # measured: the deploy, not a migration
            project.environment["preflight"] = False  # each configuration change is a commit after a tag
            image = image_fleet(project, sandbox, counts, args.rounds)
            git = git_fleet(project, sandbox, git_counts, args.rounds) if git_counts else {}
            total, restart = rollbacks(project, sandbox, args.rounds, tmp)
            status = status_time(project, sandbox, wanted, args.rounds)
            project.webhook.close()
    finally:
        if started_here:
            subprocess.run([str(SANDBOX), "down"], capture_output=True)
    base = image[counts[0]]
    print(f"\n{'what':<58} {'median':>9} {'vs 1 host':>10}")
    for count, wall in image.items():
        print(f"{f'deploy, source: image, {count} host(s)':<58} {wall:>7.2f} s {wall / base:>9.2f}x")
    for count, wall in git.items():
        first = git[git_counts[0]]
        what = f"deploy, source: git (a build per host), {count} host(s)"
        print(f"{what:<58} {wall:>7.2f} s {wall / first:>9.2f}x")
    print(f"{'failed verdict -> previous release healthy again, 3 hosts':<58} {total:>7.2f} s")
    print(f"{'  of which the restart (compose up, hosts in parallel)':<58} {restart:>7.2f} s")
    print(f"{'  beyond the restart':<58} {total - restart:>7.2f} s")
    print(f"{f'invoke status, {wanted} hosts':<58} {status:>7.2f} s")


if __name__ == "__main__":
    main()

"""Benchmark deploys over the real sandbox: the pipeline's own overhead, and the rollback's speed.

    python benchmarks/bench_deploy.py [--rounds 3]

Starts the sandbox if it is not up (and stops it after), makes a project from examples/app, and
per round deploys a good release (with a migration) and a broken one (its health check fails).
It prints, from each run's JSON report and the wall time of the `invoke deploy` process:
  - overhead: the process's wall time minus the time during which a command ran on some server
    (ssh round trips and the health checks' waiting included): target under 10% and under 1 s;
  - rollback: from the failed health verdict to the previous release proven healthy again, next to
    the time of the restart (`docker compose up` of the previous release): target restart + 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests"))

from sandboxlib import SANDBOX, STATE, Project, clean_hosts, make_project  # noqa: E402


def deploy(
    project: Project, version: str, report: Path
) -> tuple[float, dict[str, float], list[dict[str, object]]]:
    started = time.perf_counter()
    run = project.invoke("deploy", "--env", "sandbox", "--version", version, "--report", str(report))
    wall = time.perf_counter() - started
    if run.code not in (0, 1):
        sys.exit(f"deploy {version} exited {run.code}:\n{run.text}")
    data = json.loads(report.read_text())
    return wall, data["timings"], data["rollback"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    status = subprocess.run([str(SANDBOX), "status"], capture_output=True, text=True).stdout
    started_here = "sandbox is down" in status or not (STATE / "env.json").exists()
    if started_here:
        subprocess.run([str(SANDBOX), "up"], check=True, capture_output=True)
    sandbox = json.loads((STATE / "env.json").read_text())
    overheads, shares, rollbacks, restarts = [], [], [], []
    try:
        clean_hosts(sandbox)
        with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
            project = make_project(sandbox, Path(tmp))
            deploy(project, "1.0.0", Path(tmp) / "r0.json")
            for n in range(args.rounds):
                good, bad = f"{n + 2}.0.0", f"{n + 2}.0.1"
                project.release(good, "health", "ok", "migration", "good")
                wall, t, _ = deploy(project, good, Path(tmp) / f"good{n}.json")
                overhead = wall - t["commands"] - t.get("read_hosts", 0)
                overheads.append(overhead)
                shares.append(overhead / wall)
                project.release(bad, "health", "fail")
                _, t, parts = deploy(project, bad, Path(tmp) / f"bad{n}.json")
                rollbacks.append(t["rollback"])
                restarts.append(max(float(p["seconds"]) for p in parts if p["name"] == "restore"))
                print(
                    f"round {n + 1}: overhead {overhead:.3f} s of {wall:.2f} s ({overhead / wall:.1%}); "
                    f"rollback {t['rollback']:.2f} s, restart {restarts[-1]:.2f} s",
                    flush=True,
                )
            project.webhook.close()
    finally:
        if started_here:
            subprocess.run([str(SANDBOX), "down"], capture_output=True)
    print(f"{'what':<52} {'median':>10}")
    print(f"{'pipeline overhead per deploy':<52} {statistics.median(overheads):>8.3f} s")
    print(f"{'  as a share of the deploy wall time':<52} {statistics.median(shares):>9.1%}")
    print(f"{'failed verdict -> previous release healthy again':<52} {statistics.median(rollbacks):>8.3f} s")
    print(
        f"{'  of which the restart (compose up, hosts parallel)':<52} {statistics.median(restarts):>8.3f} s"
    )
    beyond = [r - s for r, s in zip(rollbacks, restarts, strict=True)]
    print(f"{'  rollback beyond the restart':<52} {statistics.median(beyond):>8.3f} s")


if __name__ == "__main__":
    main()

"""Benchmark the Helm target with the real helm against the fake cluster (pods as real containers).

    python benchmarks/bench_helm.py [--rounds 3] [--helm 3|4] [--compare-wait 45]

Starts the sandbox if it is not up (and stops it after). Per round it deploys a good release (with a
migration Job) and a crash-looping one, then one whose image does not exist, and prints:
  - verdict: seconds from the start of the readiness watch, right after `helm upgrade` (`--skip migrate`),
    to the verdict naming the pod and reason: the first crash comes after that start, so this bounds
    "after the first crash": target < 15 s;
  - the same crash under `helm upgrade --wait --timeout N` for comparison (it waits its whole timeout);
  - overhead: the `invoke deploy` process's wall time minus the time spent in helm and in the API
    server's answers (the report's `commands`), for the good deploy;
  - `invoke --list` with a Helm environment configured, paired against a compose one (no kubernetes import).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests"))

from helmlib import make_helm_project  # noqa: E402
from helmproject import HelmProject  # noqa: E402
from kubefake import FakeCluster  # noqa: E402
from sandboxlib import SANDBOX, STATE  # noqa: E402


def deploy(project: HelmProject, version: str, report: Path, *flags: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    run = project.invoke("deploy", "--env", "k8s", "--version", version, "--report", str(report), *flags)
    wall = time.perf_counter() - started
    if run.code not in (0, 1):
        sys.exit(f"deploy {version} exited {run.code}:\n{run.text}")
    return wall, json.loads(report.read_text())


def verdict_seconds(data: dict[str, Any]) -> tuple[float, str]:
    rollout = next(h for h in data["health"] if h["check"] == "rollout")
    return float(rollout["seconds"]), str(rollout["detail"])


def helm_wait(project: HelmProject, version: str, timeout: int) -> float:
    """`helm upgrade --install --wait` of the same crash-looping release, in its own namespace."""
    namespace = project.namespace + "-wait"
    work, env = project.repository.work, project.repository.env(project.helm_env)
    values = work / "deploy" / "sandbox.yaml"
    started = time.perf_counter()
    subprocess.run(
        [str(project.helm_binary), "upgrade", "--install", "waiting", str(work / "chart"),
         "--namespace", namespace, "--create-namespace", "--values", str(values),
         "--set-string", f"image.tag={version}", "--wait", "--timeout", f"{timeout}s"],
        capture_output=True, text=True, env=env, timeout=timeout + 60,
    )  # fmt: skip
    return time.perf_counter() - started


def list_seconds(work: Path, env: dict[str, str], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "invoke", "--list"], cwd=work, env=env, capture_output=True, check=True
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--helm", choices=["3", "4"], default="4")
    parser.add_argument(
        "--compare-wait", type=int, default=45, help="--timeout of the helm --wait run (0: skip)"
    )
    args = parser.parse_args()
    status = subprocess.run([str(SANDBOX), "status"], capture_output=True, text=True).stdout
    started_here = "sandbox is down" in status or not (STATE / "env.json").exists()
    if started_here:
        subprocess.run([str(SANDBOX), "up"], check=True, capture_output=True)
    sandbox = json.loads((STATE / "env.json").read_text())
    crashes, pulls, jobs, overheads, shares = [], [], [], [], []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-helm-") as tmp,
            FakeCluster(sandbox["kube_docker_host"], sandbox["kube_ip"]) as cluster,
        ):
            project = make_helm_project(sandbox, cluster, Path(tmp), args.helm)
            try:
                deploy(project, "1.0.0", Path(tmp) / "r0.json")
                for n in range(args.rounds):
                    good, crash, missing = f"{n + 2}.0.0", f"{n + 2}.0.1", f"{n + 2}.0.2"
                    project.release(good, "health", "ok", "migration", "good")
                    wall, data = deploy(project, good, Path(tmp) / f"g{n}.json")
                    timings = data["timings"]
                    overheads.append(wall - timings["commands"])
                    shares.append(overheads[-1] / wall)
                    outside = wall - timings["wall"] - timings.get("read_hosts", 0)
                    inside = timings["wall"] - (timings["commands"] - timings.get("read_hosts", 0))
                    print(
                        f"round {n + 1}: good deploy {wall:.2f} s: before and after the engine (start, "
                        f"imports, checklist, chart export, report) {outside:.2f} s; the engine's own "
                        f"{inside:.2f} s; helm and the cluster {timings['commands']:.2f} s",
                        flush=True,
                    )
                    project.release(crash, "health", "crash")
                    # Without migrations the watch starts right after `helm upgrade`, as the pods start.
                    _, data = deploy(project, crash, Path(tmp) / f"c{n}.json", "--skip", "migrate")
                    crashes.append(verdict_seconds(data))
                    project.release(missing, "health", "ok", push=False)
                    _, data = deploy(project, missing, Path(tmp) / f"m{n}.json", "--skip", "migrate")
                    pulls.append(verdict_seconds(data))
                    _, data = deploy(project, missing, Path(tmp) / f"j{n}.json")
                    failed = next(s for s in data["stages"] if s["status"] == "failed")
                    jobs.append((float(failed["seconds"]), f"{failed['name']}: {failed['detail']}"))
                waited = helm_wait(project, crash, args.compare_wait) if args.compare_wait else None
                helm_env = project.repository.env(project.helm_env)
                with_helm = list_seconds(project.repository.work, helm_env)
            finally:
                project.close()
    finally:
        if started_here:
            subprocess.run([str(SANDBOX), "down"], capture_output=True)

    def show(name: str, found: list[tuple[float, str]]) -> None:
        seconds = [s for s, _ in found]
        print(f"{name}: median {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s (target < 15 s)")
        print(f"  e.g. {found[-1][1]}")

    print(f"helm {args.helm}, {args.rounds} rounds")
    show("crash-looping release -> verdict (--skip migrate)", crashes)
    show("image that does not exist -> rollout verdict (--skip migrate)", pulls)
    show("image that does not exist -> migration Job verdict (the whole migrate stage)", jobs)
    if waited is not None:
        print(f"the same crash under `helm upgrade --wait --timeout {args.compare_wait}s`: {waited:.1f} s")
    print(
        f"pipeline overhead of a good deploy: median {statistics.median(overheads):.2f} s "
        f"({statistics.median(shares):.0%} of the deploy)"
    )
    print(f"`invoke --list` with a helm environment configured: {with_helm * 1000:.0f} ms")


if __name__ == "__main__":
    main()

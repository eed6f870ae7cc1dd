"""Benchmark `invoke preflight` and `invoke --list` on a generated 50,000-commit repository.

    python benchmarks/bench_preflight.py [--commits 50000] [--runs 15]

Builds (once, cached under benchmarks/.work/) a repository with a tag every 1,000 commits and
VERSION/CHANGELOG.md at the top, then prints median wall time and peak RSS for:
  - preflight with 1,000 commits after the last tag,
  - preflight checking the whole history (the tag prefix set to one no tag has),
  - `invoke --list` with this library's tasks.py against an empty tasks.py,
  - preflight (1,000 commits after the last tag) against `python -c "import invoke"` as paired runs
    (A B A B ..., the median of the per-pair ratios, so a noisy machine slows both sides alike),
    with a good invoke.yaml and with a broken one.
Peak RSS is the largest process of the run's tree (the invoke process, or a git it started).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GENERATOR = "2"  # bump when the generated history changes
TYPES = ("feat", "fix", "chore", "docs", "refactor", "perf", "test")


def fast_import_stream(commits: int, tag_every: int) -> bytes:
    """A `git fast-import` stream: one small change per commit, an annotated tag every N."""
    out: list[bytes] = []
    when = 1_700_000_000
    last_tag = (commits - 1) // tag_every * tag_every
    major = last_tag // tag_every
    files = {
        "tasks.py": "from pipeline.tasks import ns  # noqa: F401\n",
        ".gitignore": "__pycache__/\n",
        "invoke.yaml": "pipeline:\n  checklist:\n    changelog_unreleased_ok: true\n",
        "VERSION": f"{major + 1}.0.0\n",
        "CHANGELOG.md": (
            "# Changelog\n\n## [Unreleased]\n\n### Added\n- The next big thing.\n\n"
            + "".join(f"## [{m}.0.0] - 2026-01-01\n\n- Release {m}.\n\n" for m in range(major, 0, -1))
        ),
    }
    for n in range(1, commits + 1):
        kind = TYPES[n % len(TYPES)]
        message = f"{kind}(core): change number {n}\n\nBody of change {n}.\n".encode()
        out.append(b"commit refs/heads/main\n")
        out.append(b"mark :%d\n" % n)
        stamp = b"Bench <bench@example.com> %d +0000\n" % (when + n)
        out.append(b"author " + stamp + b"committer " + stamp)
        out.append(b"data %d\n%s\n" % (len(message), message))
        if n > 1:
            out.append(b"from :%d\n" % (n - 1))
        body = f"change {n}\n".encode()
        out.append(b"M 100644 inline src/file-%d.txt\ndata %d\n%s\n" % (n % 100, len(body), body))
        if n == 1:
            for name, text in files.items():
                data = text.encode()
                out.append(b"M 100644 inline %s\ndata %d\n%s\n" % (name.encode(), len(data), data))
        if n % tag_every == 0 and n < commits:
            tag_msg = f"Release v{n // tag_every}.0.0\n".encode()
            out.append(b"tag v%d.0.0\nfrom :%d\ntagger %s" % (n // tag_every, n, stamp))
            out.append(b"data %d\n%s\n" % (len(tag_msg), tag_msg))
    return b"".join(out)


def build_repository(path: Path, commits: int, tag_every: int) -> Path:
    """Create the repository once; reuse it when it already exists with the same shape."""
    marker = path / ".git" / "bench-shape"
    shape = f"{commits}/{tag_every}/{GENERATOR}"
    if marker.exists() and marker.read_text() == shape:
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=path,
        input=fast_import_stream(commits, tag_every),
        check=True,
        env=env,
    )
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=path, check=True, env=env)
    subprocess.run(["git", "gc", "-q"], cwd=path, check=True, env=env)
    marker.write_text(shape)
    return path


# Runs one command and reports its wall time and the peak RSS of its process tree. It is a
# separate small process because a child forked from this (large) one would count our pages.
LAUNCHER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - start
print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def measure(argv: list[str], cwd: Path, runs: int, env: dict[str, str], expect: int) -> tuple[float, float]:
    """Median wall seconds and peak RSS MiB over ``runs`` runs (after one warm-up)."""
    walls, peaks = [], []
    for i in range(runs + 1):
        out = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        wall, peak_kib, code = float(out[0]), int(out[1]), int(out[2])
        if code != expect:
            sys.exit(f"{' '.join(argv)} in {cwd} exited {code}, expected {expect}")
        if i:  # the first run warms the page cache
            walls.append(wall)
            peaks.append(peak_kib / 1024)
    return statistics.median(walls), max(peaks)


def one_run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one run (through the launcher, as ``measure`` does)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *argv], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0])


def paired_ratio(a: list[str], b: list[str], cwd: Path, env: dict[str, str], runs: int) -> float:
    """The median over ``runs`` pairs of (time of A / time of B), A and B run back to back."""
    one_run(a, cwd, env), one_run(b, cwd, env)  # warm the page cache
    return statistics.median(one_run(a, cwd, env) / one_run(b, cwd, env) for _ in range(runs))


def invoke_argv() -> list[str]:
    script = Path(sys.executable).with_name("invoke")
    return [str(script)] if script.exists() else [sys.executable, "-m", "invoke"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=50_000)
    parser.add_argument("--tag-every", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    work = HERE / ".work"
    repo = build_repository(work / f"repo-{args.commits}", args.commits, args.tag_every)
    empty = work / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    (empty / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef hello(c):\n    pass\n")
    # Invoke never writes bytecode (`--write-pyc`): compile as `pip install` does, or every run compiles.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "pipeline")], check=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GIT_CONFIG_NOSYSTEM": "1"}
    env.pop("GITHUB_ACTIONS", None)
    inv = invoke_argv()
    tail = (args.commits - 1) % args.tag_every + 1
    rows = [
        (f"preflight, {tail} commits after the last tag", inv + ["preflight"], repo, env, 0),
        (
            f"preflight, whole history ({args.commits} commits)",
            inv + ["preflight"],
            repo,
            {**env, "INVOKE_PIPELINE_CHECKLIST_TAG_PREFIX": "none-"},
            0,
        ),
        ("invoke --list, this library's tasks.py", inv + ["--list"], repo, env, 0),
        ("invoke --list, a one-task tasks.py", inv + ["--list"], empty, env, 0),
    ]
    print(f"{'what':<48} {'median wall':>12} {'peak RSS':>10}")
    figures = {}
    for title, argv, cwd, run_env, expect in rows:
        wall, peak = measure(argv, cwd, args.runs, run_env, expect)
        figures[title] = wall
        print(f"{title:<48} {wall:>10.3f} s {peak:>7.1f} MiB")
    ours, bare = list(figures.values())[2:]
    print(f"{'invoke --list overhead':<48} {ours / bare:>11.2f}x")
    baseline = [sys.executable, "-c", "import invoke"]
    ratio = paired_ratio(inv + ["preflight"], baseline, repo, env, args.runs)
    print(f"{'preflight / import invoke (paired, median)':<48} {ratio:>11.2f}x")
    broken = work / "broken"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(repo, broken, symlinks=True)
    (broken / "invoke.yaml").write_text("pipeline: [\n")
    subprocess.run(["git", "commit", "-qam", "chore: break it"], cwd=broken, env=env, check=True)
    ratio = paired_ratio(inv + ["preflight"], baseline, broken, env, args.runs)
    print(f"{'preflight, broken invoke.yaml / import invoke':<48} {ratio:>11.2f}x")


if __name__ == "__main__":
    main()

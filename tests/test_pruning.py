"""`invoke prune` end to end over two fake hosts: the real scripts (read, lock, inventory, journal)
run with a real ``sh`` on a directory per host, with a ``docker`` on the PATH that keeps its images in
a file. The ways out: success, a dry run, a held or interrupted lock, an image a container uses, a
deadline on one host, and a signal between versions.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
from gitrepos import Repo, invoke

from pipeline.config import load_config
from pipeline.engine.values import LockInfo
from pipeline.errors import ExitCode, LockHeld
from pipeline.executor import Command, FakeExecutor, Result
from pipeline.journal import IN_PROGRESS, Entry
from pipeline.pruning import prune
from pipeline.remote import unguard

PATH = "/srv/app"
REGISTRY = "registry:5000/app/api"
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
DOCKER = r"""#!/bin/sh
d=$FAKE_DOCKER
case "$1 $2" in
"image ls") while IFS= read -r i; do printf '%s\t10MB\n' "$i"; done < "$d/images" ;;
"ps -a") cat "$d/used" ;;
"info --format") echo "$d/root" ;;
"compose --project-directory") echo "registry:5000/app/api:$APP_VERSION"; echo "busybox:latest" ;;
"image rm")
  if [ -e "$d/slow" ]; then sleep 30; fi
  if [ -e "$d/signal" ]; then rm "$d/signal"; kill -TERM "$PRUNE_TEST_PID"; fi
  grep -qxF "$4" "$d/images" || { echo "Error: No such image: $4" >&2; exit 1; }
  grep -vxF "$4" "$d/images" > "$d/images.new"; mv "$d/images.new" "$d/images" ;;
*) echo "fake docker: $*" >&2; exit 9 ;;
esac
"""


def entry(version: str, result: str = "healthy", run: str = "", previous: str | None = None) -> Entry:
    return Entry(
        "deploy", version, None, previous, None, None, result, "", "ci", "2026-12-01T00:00:00Z", run=run
    )


class Hosts:
    """web1 and web2 as folders; each ssh command is unwrapped and run locally by sh, with its deadline."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.executor = FakeExecutor(handler=self.answer)
        self.bin = root / "bin"
        self.bin.mkdir()
        (self.bin / "docker").write_text(DOCKER)
        (self.bin / "docker").chmod(0o755)
        for host in ("web1", "web2"):
            docker = self.docker(host)
            docker.mkdir(parents=True)
            (docker / "root").mkdir()
            (docker / "images").write_text(
                "".join(f"{REGISTRY}:{v}\n" for v in VERSIONS) + "busybox:latest\n"
            )
            (docker / "used").write_text(f"{REGISTRY}:1.3.0\n")
            for version in VERSIONS:
                folder = self.state(host) / "releases" / version
                folder.mkdir(parents=True)
                (folder / "compose.yaml").write_text("services: {}\n")
            self.state(host).joinpath("journal.jsonl").write_text("".join(entry(v).line() for v in VERSIONS))

    def state(self, host: str) -> Path:
        return self.root / host / "srv" / "app.pipeline"

    def docker(self, host: str) -> Path:
        return self.root / host / "docker"

    def images(self, host: str) -> list[str]:
        return sorted(set((self.docker(host) / "images").read_text().split()) - {"busybox:latest"})

    def folders(self, host: str) -> list[str]:
        return sorted(p.name for p in (self.state(host) / "releases").iterdir())

    def journal(self, host: str) -> list[dict[str, object]]:
        lines = self.state(host).joinpath("journal.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def answer(self, command: Command) -> Result:
        if "-O" in command.argv:
            return Result(command, 0)
        host = command.argv[-2]
        seconds, remote = unguard(shlex.split(command.argv[-1]))
        local = [a.replace(PATH, f"{self.root}/{host}{PATH}") if a.startswith(PATH) else a for a in remote]
        env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "FAKE_DOCKER": str(self.docker(host)),
            "PRUNE_TEST_PID": str(os.getpid()),
        }
        try:
            done = subprocess.run(
                local, input=command.stdin, capture_output=True, text=True, timeout=seconds, env=env
            )
        except subprocess.TimeoutExpired:
            return Result(command, 124, "", "timed out")
        return Result(command, done.returncode, done.stdout, done.stderr)


def config(**env: object) -> object:
    base = {"target": "compose", "hosts": ["web1", "web2"], "path": PATH, "source": "image", **env}
    return load_config({"environments": {"prod": base}})


def run(fake: Hosts, keep: str | None = "1", dry_run: bool = False, **env: object) -> tuple[ExitCode, str]:
    said: list[str] = []
    code = prune(config(**env), "prod", fake.executor, said.append, keep, dry_run)  # type: ignore[arg-type]
    return code, "\n".join(said)


@pytest.fixture
def hosts(tmp_path: Path) -> Hosts:
    return Hosts(tmp_path)


def test_keep_one_removes_the_two_oldest_images_and_folders_and_journals_them(hosts: Hosts) -> None:
    code, out = run(hosts)
    assert code == ExitCode.OK, out
    for host in ("web1", "web2"):
        assert hosts.images(host) == [f"{REGISTRY}:1.2.0", f"{REGISTRY}:1.3.0"]
        assert hosts.folders(host) == ["1.2.0", "1.3.0"]
        lines = hosts.journal(host)[-2:]
        assert [(e["event"], e["version"], e["result"]) for e in lines] == [
            ("prune", "1.0.0", "pruned"),
            ("prune", "1.1.0", "pruned"),
        ]
        assert lines[0]["reason"] == "removed 1.0.0, 1.1.0" and lines[0]["who"]
        assert not (hosts.state(host) / "lock").exists()
        assert "busybox:latest" in (hosts.docker(host) / "images").read_text()
    assert "web1: removed 1.0.0, 1.1.0; freed " in out
    assert "  kept    1.3.0          serving on every host" in out
    assert out.endswith("prune prod: OK, 4 removed")


def test_the_configured_keep_is_the_default(hosts: Hosts) -> None:
    code, _ = run(hosts, keep=None, prune={"keep": 2})
    assert code == ExitCode.OK
    assert hosts.folders("web1") == ["1.1.0", "1.2.0", "1.3.0"]


def test_a_dry_run_lists_what_goes_and_what_stays_and_touches_nothing(hosts: Hosts) -> None:
    before = [(hosts.images(h), hosts.folders(h), hosts.journal(h)) for h in ("web1", "web2")]
    code, out = run(hosts, dry_run=True)
    assert code == ExitCode.OK
    assert (
        out.splitlines()[0] == "prune prod: dry run, nothing is removed (keep 1 besides the serving release)"
    )
    assert "  keep    1.2.0          rollback target 1 of 1 (healthy on every host)" in out
    assert (
        f"  remove  1.0.0          images {REGISTRY}:1.0.0; release files {PATH}.pipeline/releases/1.0.0"
        in out
    )
    assert [(hosts.images(h), hosts.folders(h), hosts.journal(h)) for h in ("web1", "web2")] == before
    assert not (hosts.state("web1") / "lock").exists()


def test_a_held_lock_refuses_with_exit_5_and_removes_nothing(hosts: Hosts) -> None:
    lock = LockInfo(who="alice", at="2026-12-01T00:00:00Z", version="1.4.0", run="r1")
    hosts.state("web2").joinpath("lock").write_text(lock.to_json())
    with pytest.raises(LockHeld, match="alice") as caught:
        run(hosts)
    assert caught.value.exit_code == 5
    assert hosts.folders("web1") == VERSIONS


def test_an_interrupted_runs_lock_is_refused_too_its_releases_may_be_needed(hosts: Hosts) -> None:
    lock = LockInfo(who="ci", at="2026-12-01T00:00:00Z", version="1.4.0", run="dead")
    hosts.state("web1").joinpath("lock").write_text(lock.to_json())
    with hosts.state("web1").joinpath("journal.jsonl").open("a") as journal:
        journal.write(entry("1.4.0", IN_PROGRESS, run="dead", previous="1.3.0").line())
    with pytest.raises(LockHeld, match="`invoke rollback --env prod` finishes its rollback"):
        run(hosts)
    assert hosts.folders("web1") == VERSIONS


def test_an_image_a_container_uses_stays_with_its_files(hosts: Hosts) -> None:
    (hosts.docker("web1") / "used").write_text(f"{REGISTRY}:1.0.0\n{REGISTRY}:1.3.0\n")
    code, out = run(hosts)
    assert code == ExitCode.OK
    assert hosts.folders("web1") == ["1.0.0", "1.2.0", "1.3.0"]
    assert f"  kept    1.0.0          a container uses {REGISTRY}:1.0.0" in out
    assert hosts.folders("web2") == ["1.2.0", "1.3.0"]


def test_a_host_past_its_deadline_fails_alone_and_the_lock_is_released(hosts: Hosts) -> None:
    (hosts.docker("web1") / "slow").touch()
    code, out = run(hosts, deadlines={"prune": 1})
    assert code == ExitCode.ROLLED_BACK
    assert "  FAILED: prune on web1 passed its deadline of 1 s" in out
    assert out.endswith("prune prod: FAILED on web1")
    assert hosts.folders("web1") == VERSIONS
    assert hosts.folders("web2") == ["1.2.0", "1.3.0"]
    assert [e["result"] for e in hosts.journal("web1")][-1] == "healthy"
    assert not any((hosts.state(h) / "lock").exists() for h in ("web1", "web2"))


def test_a_signal_stops_between_versions_and_what_went_is_journaled(hosts: Hosts) -> None:
    config_one = {"hosts": ["web1"]}  # one host: no thread, the signal reaches the run at once
    (hosts.docker("web1") / "signal").touch()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code, out = run(hosts, **config_one)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == ExitCode.ROLLED_BACK
    assert "FAILED: SIGTERM received" in out
    assert hosts.folders("web1") == ["1.1.0", "1.2.0", "1.3.0"]  # 1.0.0 went whole, then it stopped
    assert [e["version"] for e in hosts.journal("web1") if e["event"] == "prune"] == ["1.0.0"]
    assert not (hosts.state("web1") / "lock").exists()


def test_a_helm_environment_has_nothing_to_prune() -> None:
    helm = load_config({"environments": {"k8s": {"target": "helm", "release": "app", "chart": "chart"}}})
    said: list[str] = []
    assert prune(helm, "k8s", FakeExecutor(), said.append, None, False) == ExitCode.OK
    assert "helm keeps at most history_max=10 revisions of app" in said[0]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        ((), "prune: --env is required"),
        (("--env", "prod", "--keep", "0"), "--keep must be a whole number from 1 to 1000"),
        (("--env", "nope"), "--env: no environment 'nope' in pipeline.environments (prod)"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2_before_any_host_is_asked(
    repo: Repo, args: tuple[str, ...], phrase: str
) -> None:
    repo.write(
        "invoke.yaml",
        "pipeline:\n  environments:\n    prod:\n      target: compose\n"
        "      hosts: ['root@10.255.255.1']\n      path: /srv/app\n      ssh: {connect_timeout: 1}\n",
    )
    done = invoke(repo.path, "prune", *args)
    assert done.code == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and phrase in done.stderr

"""Disk usage of a compose host: the filesystem of the app's path and of docker's data root.

``df -Pk`` is the one format every POSIX system prints alike (1024-byte blocks, one line per
filesystem); the script takes the path as a positional parameter, never interpolated. ``docker system
df`` is left out on purpose: it walks every layer and can take seconds on a busy host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.engine.values import UnitState
    from pipeline.targets.compose import ComposeTarget

_SECTION = "--pl-df "
# The nearest existing folder of the path (before a first deploy it may not exist yet); docker's own
# answer is bounded on the host, so a hung daemon leaves the app's figures readable.
DISK_SCRIPT = f"""
d=$1
while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done
echo '{_SECTION}app'; df -Pk -- "$d"
r=$(timeout 10 docker info --format '{{{{.DockerRootDir}}}}' 2>/dev/null)
if [ -n "$r" ] && [ -e "$r" ]; then echo "{_SECTION}docker $r"; df -Pk -- "$r"; fi
exit 0
"""
_DF_LINE = re.compile(
    r"^(?P<fs>.+?)\s+(?P<size>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+(?P<pct>\d+)%\s+(?P<mount>/.*)$"
)


@dataclass(frozen=True)
class DiskUsage:
    """One filesystem as ``df -Pk`` reports it, and which path of ours lives on it."""

    role: str  # app | docker
    path: str
    filesystem: str
    mounted_on: str
    size_kib: int
    used_kib: int
    available_kib: int
    used_percent: int

    def same_filesystem(self, other: DiskUsage) -> bool:
        """Whether two paths live on one filesystem."""
        return (self.filesystem, self.mounted_on) == (other.filesystem, other.mounted_on)

    def to_data(self, warn_percent: float) -> dict[str, object]:
        """For ``status --json``: the figures in bytes, and whether it is past the threshold."""
        data: dict[str, object] = asdict(self)
        for key in ("size", "used", "available"):
            data[f"{key}_bytes"] = data.pop(f"{key}_kib") * 1024  # type: ignore[operator]
        data["warning"] = self.used_percent >= warn_percent
        return data


def disk_usage(path: str) -> tuple[str, ...]:
    """The command printing ``df -Pk`` of the path's filesystem and of docker's data root."""
    return ("sh", "-c", DISK_SCRIPT, "pl-disk", path)


def parse_df(output: str) -> list[tuple[str, str, int, int, int, int]]:
    """``df -Pk``'s lines as (filesystem, mounted on, size, used, available, used %), header skipped."""
    rows = []
    for line in output.splitlines():
        match = _DF_LINE.match(line.strip())
        if match:
            size, used, avail, pct = (int(match[k]) for k in ("size", "used", "avail", "pct"))
            rows.append((match["fs"], match["mount"], size, used, avail, pct))
    return rows


def parse_disk(path: str, output: str) -> list[DiskUsage]:
    """What ``disk_usage`` printed: the app's filesystem, then docker's data root's."""
    found: list[DiskUsage] = []
    role, where = "", ""
    lines: list[str] = []

    def close() -> None:
        rows = parse_df("\n".join(lines))
        if role and rows:
            fs, mount, size, used, avail, pct = rows[-1]
            found.append(DiskUsage(role, where, fs, mount, size, used, avail, pct))

    for line in output.splitlines():
        if line.startswith(_SECTION):
            close()
            role, _, rest = line[len(_SECTION) :].partition(" ")
            where, lines = (path if role == "app" else rest.strip()), []
        else:
            lines.append(line)
    close()
    return found


def human_bytes(kib: int) -> str:
    """``812 MiB``, ``44.1 GiB``."""
    size = float(kib)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit in ("KiB", "MiB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def disk_lines(usages: Sequence[DiskUsage], warn_percent: float, env: str) -> list[str]:
    """The lines of ``status`` about a host's disks, a WARNING line for each at or past the threshold."""
    lines = []
    for usage in distinct(usages):
        also = [_named(u) for u in usages if u is not usage and u.same_filesystem(usage)]
        lines.append(
            f"  disk: {_named(usage)} on {usage.mounted_on}: {usage.used_percent}% used, "
            f"{human_bytes(usage.available_kib)} free of {human_bytes(usage.size_kib)}"
            + (f" (also {', '.join(also)})" if also else "")
        )
        if usage.used_percent >= warn_percent:
            lines.append(
                f"  WARNING: the disk of {usage.path} ({usage.mounted_on}) is {usage.used_percent}% full "
                f"(warns at {warn_percent:g}%): `invoke prune --env {env}` removes old releases"
            )
    return lines


def _named(usage: DiskUsage) -> str:
    return f"docker's data root {usage.path}" if usage.role == "docker" else usage.path


def distinct(usages: Sequence[DiskUsage]) -> list[DiskUsage]:
    """One usage per filesystem, the first path found on it."""
    found: list[DiskUsage] = []
    for usage in usages:
        if not any(usage.same_filesystem(f) for f in found):
            found.append(usage)
    return found


def free_kib(usages: Sequence[DiskUsage]) -> int:
    """Free space summed over distinct filesystems."""
    return sum(u.available_kib for u in distinct(usages))


def read_disks(
    target: ComposeTarget, states: Sequence[UnitState], seconds: float, warn_percent: float
) -> None:
    """Each host's disk usage, all hosts at once, into its state's facts (``disk``: [] when unread)."""
    hosts = [target.hosts[s.name] for s in states]
    commands = [h.remote.command(disk_usage(h.project.path), timeout=seconds) for h in hosts]
    results = hosts[0].remote.executor.run_all(commands) if hosts else []
    for state, host, result in zip(states, hosts, results, strict=True):
        state.facts["disk"] = parse_disk(host.project.path, result.stdout) if result.ok else []
        state.facts["disk_warn_percent"] = warn_percent


def status_lines(facts: Mapping[str, Any], env: str) -> list[str]:
    """What ``status`` says about a host's disks (nothing for a target that reads none)."""
    if "disk" not in facts:
        return []
    usages = facts["disk"]
    if not usages:
        return ["  disk: could not be read"]
    return disk_lines(usages, facts["disk_warn_percent"], env)


def status_data(facts: Mapping[str, Any]) -> dict[str, object]:
    """``status --json``'s ``disk`` of a host: the threshold and every path's filesystem."""
    if "disk" not in facts:
        return {}
    warn = facts["disk_warn_percent"]
    return {"disk": {"warn_percent": warn, "filesystems": [u.to_data(warn) for u in facts["disk"]]}}

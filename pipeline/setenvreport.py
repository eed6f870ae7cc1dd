"""What ``invoke setenv`` did on each host, in words: the report printed, notified and journaled.

Names only: keys by name, services by name, files by path. Values never reach this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.envfile import KEEP_BACKUPS, Diff
from pipeline.errors import ExitCode
from pipeline.journal import APPLIED, FAILED, REVERTED

UNCHANGED = "unchanged"  # the file already held what was asked: nothing was written
UNTOUCHED = "untouched"  # another host failed first: this one was never changed

OUTCOMES = {
    "applied": ExitCode.OK,
    "unchanged": ExitCode.OK,
    "reverted": ExitCode.ROLLED_BACK,
    "revert_failed": ExitCode.ROLLBACK_FAILED,
}
NOTIFIED = {"applied": "env_applied", "reverted": "env_reverted", "revert_failed": "env_failed"}


@dataclass
class HostChange:
    """One host's part of the run: what its file becomes and what happened there."""

    unit: str
    version: str  # the release it serves (its compose file is the one whose services are recreated)
    commit: str | None
    path: str  # the variables file on the host
    diff: Diff = field(default_factory=Diff)
    services: list[str] = field(default_factory=list)  # whose configuration the change alters
    backup: str = ""  # where the old file was kept ("" before the write, or when there was none)
    backups: str = ""  # the folder of the backups
    touched: bool = False  # the file may have been written
    recreating: bool = False  # `up` of the services was started
    result: str = ""  # applied | unchanged | reverted | failed | untouched
    why: str = ""  # what failed on this host
    revert_why: str = ""  # what failed while putting the old file back

    def line(self) -> str:
        """``10.0.0.2: changed LOG_LEVEL; recreated api; applied (backup ...)``."""
        words = [self.diff.describe()]
        if self.result == UNCHANGED:
            return f"{self.unit}: {self.path} already holds these values; nothing was changed"
        if self.result == UNTOUCHED:
            return f"{self.unit}: not changed (another host failed first)"
        if self.touched:
            done = ", ".join(self.services) if self.services else "no service (none reads what changed)"
            words.append(f"recreated {done}" if self.recreating or not self.services else "")
        if self.why:
            words.append(f"failed: {self.why}")
        words.append(self.result.upper() if self.result == FAILED else self.result)
        if self.result == REVERTED:
            words.append("the old file is back" + (" and its services healthy" if self.recreating else ""))
        if self.result == FAILED:
            words.append(f"PUTTING THE OLD FILE BACK FAILED: {self.revert_why}")
        if self.backup or self.result == FAILED:
            words.append(f"backup {self.backup or 'in ' + self.backups}")
        return f"{self.unit}: " + "; ".join(w for w in words if w)


@dataclass
class SetenvReport:
    """The run's outcome over every host."""

    environment: str
    hosts: list[HostChange]
    outcome: str = ""  # applied | unchanged | reverted | revert_failed | interrupted
    reason: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """0 applied or nothing to change; 1 reverted, healthy; 4 a revert failed; 130/143 a signal
        before any change."""
        if self.outcome == "interrupted":
            return ExitCode.TERMINATED if "SIGTERM" in self.reason else ExitCode.INTERRUPTED
        return OUTCOMES.get(self.outcome, ExitCode.ROLLBACK_FAILED)

    def keys(self) -> list[str]:
        """Every key that changed on some host, by name."""
        names: dict[str, None] = {}
        for host in self.hosts:
            for key in (*host.diff.set_keys, *host.diff.removed):
                names[key] = None
        return list(names)

    def summary(self) -> str:
        """One line a person reads first."""
        keys = ", ".join(self.keys()) or "nothing"
        changed = [h.unit for h in self.hosts if h.result == APPLIED]
        failed = [h for h in self.hosts if h.result == FAILED]
        if self.outcome == "applied":
            return f"{keys} changed on {', '.join(changed)}"
        if self.outcome == "unchanged":
            return f"the variables file of {self.environment} already holds these values: nothing to do"
        if self.outcome == "reverted":
            return f"changing {keys} failed ({self.reason}); the old file is back and healthy"
        if self.outcome == "interrupted":
            return f"setenv interrupted before any change: {self.reason}"
        where = "; ".join(f"{h.unit} (backup {h.backup or 'in ' + h.backups})" for h in failed)
        return (
            f"changing {keys} failed ({self.reason}) and PUTTING THE OLD FILE BACK FAILED on {where}: "
            "a human is needed now"
        )

    def details(self) -> list[str]:
        """A line per host, where the old files are kept, then the warnings."""
        lines = [h.line() for h in self.hosts]
        if any(h.backup for h in self.hosts):
            folders = sorted({h.backups for h in self.hosts if h.backup})
            lines.append(
                f"old files: the newest {KEEP_BACKUPS} of each host are kept in {', '.join(folders)}"
            )
        return lines + [f"warning: {w}" for w in self.warnings]

    def render_text(self) -> str:
        """The text printed at the end of the run."""
        marker = "OK" if self.exit_code == ExitCode.OK else f"EXIT {int(self.exit_code)}"
        lines = [f"setenv {self.environment}: {marker}: {self.summary()}"]
        return "\n".join(lines + ["  " + d for d in self.details()])

    def to_data(self) -> dict[str, Any]:
        """For the webhook's JSON: names and results only."""
        return {
            "environment": self.environment, "outcome": self.outcome, "reason": self.reason,
            "exit_code": int(self.exit_code), "summary": self.summary(),
            "hosts": [
                {"host": h.unit, "result": h.result, "added": list(h.diff.added),
                 "changed": list(h.diff.changed), "removed": list(h.diff.removed),
                 "services": h.services, "backup": h.backup, "why": h.why, "revert_why": h.revert_why}
                for h in self.hosts
            ],
        }  # fmt: skip

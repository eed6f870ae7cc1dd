"""Values the engine and every target share: what to deploy, who holds a lock, what a unit had.

This is the low floor: it imports nothing of the engine nor of any target, so every import points down.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pipeline.environments import DeadlinesConfig as Deadlines
from pipeline.journal import IN_PROGRESS, Damaged, Entry, last_serving
from pipeline.terminal import printable

Database = Literal["none", "shared", "per_host"]
Strategy = Literal["parallel", "rolling"]


@dataclass(frozen=True)
class Release:
    """What to deploy: a version, the commit it is (git source), its compose file (image source), and
    a folder with its deploy files as of that commit (a Helm chart and values files)."""

    version: str
    commit: str | None
    compose_text: str = ""
    files: str = ""


@dataclass(frozen=True)
class Policy:
    """How the engine runs a deploy over a target's units."""

    strategy: Strategy = "parallel"
    batch_size: int = 1
    max_failed_units: int = 0
    database: Database = "none"
    deadlines: Deadlines = field(default_factory=Deadlines)  # seconds per stage and unit


@dataclass(frozen=True)
class LockInfo:
    """Who holds a unit's deploy lock, read back from the unit (every field may be damaged)."""

    who: str = "?"
    at: str = ""
    version: str = "?"
    run: str = ""
    run_url: str = ""
    operation: str = "deploy"
    runner: str = ""
    damaged: str = ""  # why the content is not a holder we wrote (never written to the unit)
    # Where the unit keeps a heartbeat (a Lease's renewTime and leaseDurationSeconds), read, never written:
    renewed: float | None = None  # seconds since the holder last renewed the lock
    lease: float | None = None  # seconds a renewal keeps the lock live

    def to_json(self) -> str:
        """The lock's content as written on the unit."""
        data = asdict(self)
        for key in _READ_ONLY:
            del data[key]
        return json.dumps(data, sort_keys=True)

    @property
    def live(self) -> bool:
        """Whether the holder renewed the lock within its lease: its run is still going."""
        return self.renewed is not None and self.lease is not None and self.renewed < self.lease

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the lock was taken, when ``at`` says."""
        try:
            taken = datetime.strptime(self.at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        return max(0.0, (time.time() if now is None else now) - taken.timestamp())

    def describe(self, now: float | None = None) -> str:
        """``alice since 2026-11-21T10:00:00Z (1.9.0), 3 h 2 min ago``."""
        age = self.age(now)
        since = f" since {self.at}" if self.at else ""
        ago = f", {human_age(age)} ago" if age is not None else ""
        doing = "" if self.operation == "deploy" else f", {self.operation}"
        damaged = f" [damaged lock: {self.damaged}]" if self.damaged else ""
        beat = ""
        if self.renewed is not None:
            state = "running" if self.live else "no longer renewed"
            beat = f", {state}: renewed {human_age(self.renewed)} ago"
        return printable(f"{self.who}{since} ({self.version}{doing}){ago}{beat}{damaged}", keep_lines=False)


_READ_ONLY = ("damaged", "renewed", "lease")
_LOCK_FIELDS = set(LockInfo.__dataclass_fields__) - set(_READ_ONLY)
MAX_LOCK_FIELD = 1024  # characters in a field of a lock


def parse_lock(text: str) -> LockInfo:
    """The holder written in a lock; damaged or foreign content is a held lock of unknown holder."""
    if not text.strip():
        return LockInfo(who="unknown (the lock records no holder)")
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, and integers past the digit limit
        return LockInfo(who="unknown", damaged="not JSON")
    if not isinstance(data, dict):
        return LockInfo(who="unknown", damaged="not a JSON object")
    values = {}
    for key in sorted(_LOCK_FIELDS & data.keys()):
        value = data[key]
        if not isinstance(value, str):
            return LockInfo(who="unknown", damaged=f"{key}: not a string")
        if len(value) > MAX_LOCK_FIELD:
            return LockInfo(who="unknown", damaged=f"{key}: longer than {MAX_LOCK_FIELD} characters")
        values[key] = value
    return LockInfo(**values)  # type: ignore[arg-type]  # only the text fields are read


def human_age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h 2 min``, ``2 d 4 h``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


@dataclass
class UnitState:
    """What a unit had before the run, read without changing anything."""

    name: str
    journal: list[Entry] = field(default_factory=list)
    lock: LockInfo | None = None
    commit: str | None = None
    damaged: str = ""  # why the journal could not be read (then the unit's history is unknown)
    damaged_lines: list[Damaged] = field(default_factory=list)  # lines that are no record, ignored
    cut: bool = False  # the journal is longer than what is read of it: only its end was read
    facts: dict[str, Any] = field(default_factory=dict)  # what the target says besides (helm: revision, pods)

    @property
    def serving(self) -> Entry | None:
        """The release this unit last served healthy, by its own journal."""
        return last_serving(self.journal)

    def interrupted(self) -> list[Entry]:
        """The in-progress records of the run that holds the lock and never recorded an outcome."""
        if self.lock is None or self.lock.damaged or not self.lock.run or self.lock.live:
            return []
        mine = [e for e in self.journal if e.run == self.lock.run]
        if not mine or mine[-1].result != IN_PROGRESS:
            return []
        return [e for e in mine if e.result == IN_PROGRESS]

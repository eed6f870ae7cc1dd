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
from pipeline.journal import IN_PROGRESS, Entry, last_serving

Database = Literal["none", "shared", "per_host"]
Strategy = Literal["parallel", "rolling"]


@dataclass(frozen=True)
class Release:
    """What to deploy: a version, the commit it is (git source), its compose file (image source)."""

    version: str
    commit: str | None
    compose_text: str = ""


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

    def to_json(self) -> str:
        """The lock's content as written on the unit."""
        return json.dumps(asdict(self), sort_keys=True)

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
        return f"{self.who}{since} ({self.version}{doing}){ago}"


def parse_lock(text: str) -> LockInfo:
    """The holder written in a lock; damaged or foreign content gives a holder of unknown fields."""
    try:
        data: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return LockInfo(who="unknown (the lock records no holder)")
    values = {k: v for k, v in data.items() if k in LockInfo.__dataclass_fields__ and isinstance(v, str)}
    return LockInfo(**values)


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

    @property
    def serving(self) -> Entry | None:
        """The release this unit last served healthy, by its own journal."""
        return last_serving(self.journal)

    def interrupted(self) -> list[Entry]:
        """The in-progress records of the run that holds the lock and never recorded an outcome."""
        if self.lock is None or not self.lock.run:
            return []
        mine = [e for e in self.journal if e.run == self.lock.run]
        if not mine or mine[-1].result != IN_PROGRESS:
            return []
        return [e for e in mine if e.result == IN_PROGRESS]

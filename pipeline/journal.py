"""The journal each unit keeps: one JSON object per line for every deploy and rollback.

It is how an ephemeral CI runner knows the last release that was healthy: it asks the units. A run
writes an ``in_progress`` record before its first change and its outcome at the end, so a run that
was killed in between is visible to the next one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

HEALTHY = "healthy"  # a deploy whose checks passed
ROLLED_BACK = "rolled_back"  # a deploy that failed; the previous release was restored
RESTORED = "restored"  # a rollback that brought a release back, healthy
FAILED = "failed"  # something failed and the unit may be in any state
MIGRATED = "migrated"  # `invoke migrate` on its own moved the database of the release that serves
IN_PROGRESS = "in_progress"  # a run started changing the unit; its outcome follows (or it was killed)

BASE = "base"  # the revision of a database with no migration applied


@dataclass(frozen=True)
class Entry:
    """One line of the journal.

    Database revisions are strings, ``base`` for an empty database; None means not recorded.
    """

    event: str  # deploy | rollback | migrate
    version: str
    commit: str | None
    previous_version: str | None
    db_before: str | None
    db_after: str | None
    result: str
    reason: str
    who: str
    at: str
    run_url: str = ""
    host: str = ""
    run: str = ""
    db_end: str | None = None
    touched: bool = True
    phase: str = ""  # for in_progress records: deploying | migrating | rolling back

    @property
    def serving(self) -> bool:
        """Whether this entry left ``version`` serving and healthy."""
        return self.result in (HEALTHY, RESTORED)

    @property
    def db_final(self) -> str | None:
        """Where this entry left the database: at the end of the run, else after its migration."""
        return self.db_end if self.db_end is not None else self.db_after

    def line(self) -> str:
        """The entry as one JSON line."""
        return json.dumps(asdict(self), sort_keys=True) + "\n"


_FIELDS = {f.name: f for f in fields(Entry)}
_OPTIONAL = {"commit", "previous_version", "db_before", "db_after", "db_end"}


def parse_journal(text: str) -> list[Entry]:
    """Every well-formed entry, oldest first; a torn, foreign or mistyped line is skipped, not fatal."""
    entries = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        entry = _entry(data) if isinstance(data, dict) else None
        if entry is not None:
            entries.append(entry)
    return entries


def _entry(data: Mapping[str, Any]) -> Entry | None:
    """An Entry when every known field has its type; None for a damaged record."""
    if not {"event", "version", "result"} <= data.keys():
        return None
    values: dict[str, Any] = {f: None for f in _OPTIONAL}
    values.update(reason="", who="", at="", run_url="", host="", run="", touched=True, phase="")
    for key, value in data.items():
        if key not in _FIELDS:
            continue
        if key == "touched":
            if not isinstance(value, bool):
                return None
        elif not (isinstance(value, str) or (value is None and key in _OPTIONAL)):
            return None
        values[key] = value
    return Entry(**values)


def last_serving(entries: Sequence[Entry]) -> Entry | None:
    """The newest entry that left a release healthy: the rollback target, never ``HEAD~1``."""
    return next((e for e in reversed(entries) if e.serving), None)


def healthy_everywhere(journals: Iterable[Sequence[Entry]]) -> str | None:
    """The newest version that every unit has served healthy, judged by each unit's own journal."""
    per_host = [[e.version for e in entries if e.serving] for entries in journals]
    if not per_host or not all(per_host):
        return None
    common = set(per_host[0]).intersection(*per_host[1:])
    ordered = [v for v in reversed(per_host[0]) if v in common]
    return ordered[0] if ordered else None

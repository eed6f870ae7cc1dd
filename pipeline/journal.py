"""The journal each server keeps: one JSON object per line for every deploy and rollback.

It is how an ephemeral CI runner knows the last release that was healthy: it asks the hosts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

HEALTHY = "healthy"  # a deploy whose checks passed
ROLLED_BACK = "rolled_back"  # a deploy that failed; the previous release was restored
RESTORED = "restored"  # a rollback that brought a release back, healthy
FAILED = "failed"  # something failed and the host may be in any state


@dataclass(frozen=True)
class Entry:
    """One line of the journal."""

    event: str  # deploy | rollback
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

    @property
    def serving(self) -> bool:
        """Whether this entry left ``version`` serving and healthy."""
        return self.result in (HEALTHY, RESTORED)

    def line(self) -> str:
        """The entry as one JSON line."""
        return json.dumps(asdict(self), sort_keys=True) + "\n"


_FIELDS = {f.name for f in fields(Entry)}


def parse_journal(text: str) -> list[Entry]:
    """Every well-formed entry, oldest first; a torn or foreign line is skipped, not fatal."""
    entries = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and {"event", "version", "result"} <= data.keys():
            entries.append(_entry(data))
    return entries


def _entry(data: Mapping[str, Any]) -> Entry:
    known = {k: v for k, v in data.items() if k in _FIELDS}
    defaults: dict[str, Any] = {f: None for f in ("commit", "previous_version", "db_before", "db_after")}
    defaults.update(reason="", who="", at="", run_url="", host="")
    return Entry(**{**defaults, **known})


def last_serving(entries: Sequence[Entry]) -> Entry | None:
    """The newest entry that left a release healthy: the rollback target, never ``HEAD~1``."""
    return next((e for e in reversed(entries) if e.serving), None)


def healthy_everywhere(journals: Iterable[Sequence[Entry]]) -> str | None:
    """The newest version that every host has served healthy, judged by each host's own journal."""
    per_host = [[e.version for e in entries if e.serving] for entries in journals]
    if not per_host or not all(per_host):
        return None
    common = set(per_host[0]).intersection(*per_host[1:])
    ordered = [v for v in reversed(per_host[0]) if v in common]
    return ordered[0] if ordered else None

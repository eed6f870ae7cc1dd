"""The journal each unit keeps: one JSON object per line for every deploy and rollback.

It is how an ephemeral CI runner knows the last release that was healthy: it asks the units. A run
writes an ``in_progress`` record before its first change and its outcome at the end, so a run that
was killed in between is visible to the next one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from pipeline.backups import NAME

HEALTHY = "healthy"  # a deploy whose checks passed
ROLLED_BACK = "rolled_back"  # a deploy that failed; the previous release was restored
RESTORED = "restored"  # a rollback that brought a release back, healthy
FAILED = "failed"  # something failed and the unit may be in any state
MIGRATED = "migrated"  # `invoke migrate` on its own moved the database of the release that serves
IN_PROGRESS = "in_progress"  # a run started changing the unit; its outcome follows (or it was killed)
# `invoke setenv`: the variables file changed and the services are healthy (APPLIED), or it was put
# back (REVERTED); FAILED when putting it back failed. None of them counts as serving a release.
APPLIED = "applied"
REVERTED = "reverted"
PRUNED = "pruned"  # `invoke prune` removed this version's images and release files from the unit
BACKED_UP = "backed_up"  # `invoke backup` kept a dump of the unit's database (never "serving")
DB_RESTORED = "db_restored"  # `invoke restore` loaded a dump into the unit's database (never "serving")
# Lines of operations beside a release (prune, setenv, backup): they change nothing a deploy puts in
# place, so a rerun of what serves stays a no-op after them.
BESIDE_RELEASE = (PRUNED, APPLIED, REVERTED, BACKED_UP)

BASE = "base"  # the revision of a database with no migration applied


@dataclass(frozen=True)
class Entry:
    """One line of the journal.

    Database revisions are strings, ``base`` for an empty database; None means not recorded.
    """

    event: str  # deploy | rollback | migrate | setenv
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
    revision: str = ""  # the target's own number for what serves (a Helm revision); empty for compose
    keys_set: str = ""  # `setenv`: the variables it gave a value, by name, comma-separated (never values)
    keys_unset: str = ""  # `setenv`: the variables it removed, by name
    emergency: str = ""  # the reason of an emergency deploy (``--emergency --reason``); empty otherwise
    backup: str = ""  # the database backup this run took before migrating (or `invoke backup` took)

    @property
    def serving(self) -> bool:
        """Whether this entry left ``version`` serving and healthy."""
        return self.result in (HEALTHY, RESTORED)

    @property
    def beside_release(self) -> bool:
        """Whether this entry is an operation beside a release (prune, setenv, backup), not a deploy."""
        return self.result in BESIDE_RELEASE or self.event == "backup"

    @property
    def db_final(self) -> str | None:
        """Where this entry left the database: at the end of the run, else after its migration."""
        return self.db_end if self.db_end is not None else self.db_after

    def line(self) -> str:
        """The entry as one JSON line (without a backup when it names none, as before there were any)."""
        data = asdict(self)
        if not self.backup:
            del data["backup"]
        return json.dumps(data, sort_keys=True) + "\n"


_FIELDS = {f.name: f for f in fields(Entry)}
_OPTIONAL = {"commit", "previous_version", "db_before", "db_after", "db_end"}
# Values the engine puts in commands (a path, ``git checkout``, ``alembic downgrade``) must look like
# what the pipeline writes, so a damaged or hostile line can never become an argument or a path.
_VERSION = (re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}"), "version")
_REVISION = (re.compile(r"[0-9A-Za-z_]{1,128}"), "database revision")
_SHAPES = {
    "version": _VERSION,
    "previous_version": _VERSION,
    "commit": (re.compile(r"[0-9a-f]{4,64}"), "commit id"),
    "db_before": _REVISION,
    "db_after": _REVISION,
    "db_end": _REVISION,
    "revision": (re.compile(r"[0-9]{0,10}"), "Helm revision number"),
    "backup": (re.compile(rf"(?:{NAME.pattern})?"), "backup name"),
}
MAX_FIELD = 4096  # characters in any text field of a record


@dataclass(frozen=True)
class Damaged:
    """A journal line that is not a record: where it is and why (never used for a decision)."""

    line: int  # 1 is the first line of the file; -1 the last, when only the journal's end was read
    reason: str

    def where(self) -> str:
        """``line 7``, or ``line 3 from the end``."""
        return f"line {self.line}" if self.line > 0 else f"line {-self.line} from the end"


def parse_journal(text: str) -> list[Entry]:
    """Every well-formed entry, oldest first; a torn, foreign or mistyped line is skipped, not fatal."""
    return read_journal(text)[0]


def read_journal(text: str, from_end: bool = False) -> tuple[list[Entry], list[Damaged]]:
    """The well-formed entries and the damaged lines (numbered from the end when ``from_end``)."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    entries, damaged = [], []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        found = _parsed(line)
        if isinstance(found, Entry):
            entries.append(found)
        else:
            number = index - len(lines) if from_end else index + 1
            damaged.append(Damaged(number, found))
    return entries, damaged


def _parsed(line: str) -> Entry | str:
    """The line's Entry, or why it is damaged."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, and integers past the digit limit
        return "not JSON (a torn write or a foreign line)"
    if not isinstance(data, dict):
        return f"not a JSON object but {_kind(data)}"
    return _entry(data)


def _entry(data: Mapping[str, Any]) -> Entry | str:
    """An Entry when every known field has its type and shape; else why it is damaged."""
    missing = [k for k in ("event", "version", "result") if k not in data]
    if missing:
        return f"no {', '.join(missing)}"
    values: dict[str, Any] = {f: None for f in _OPTIONAL}
    values.update(reason="", who="", at="", run_url="", host="", run="", touched=True, phase="", revision="")
    values.update(keys_set="", keys_unset="", emergency="")
    values.update(backup="")
    for key, value in data.items():
        if key not in _FIELDS:
            continue
        if key == "touched":
            if not isinstance(value, bool):
                return f"{key}: {_kind(value)} where true or false belongs"
        elif value is None and key in _OPTIONAL:
            pass
        elif not isinstance(value, str):
            return f"{key}: {_kind(value)} where a string belongs"
        elif len(value) > MAX_FIELD:
            return f"{key}: longer than {MAX_FIELD} characters"
        elif key in _SHAPES and not _SHAPES[key][0].fullmatch(value):
            return f"{key}: not a {_SHAPES[key][1]}"
        values[key] = value
    return Entry(**values)


def _kind(value: object) -> str:
    """A JSON value's type in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


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

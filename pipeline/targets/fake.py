"""A target in memory, scripted per scenario: for the engine's own tests and for users' tests.

``FakeTarget(["web1", "web2"])`` starts with every unit serving 1.0.0 (healthy in its journal) and a
database at 0003. Script what goes wrong with ``fail_at(operation, unit, how)``: ``fail`` (a stage
failure), ``raise`` (a bug: ValueError), ``hang`` (until the deadline or an interrupt), ``kill``
(SIGKILL: ``Killed`` escapes everything, the state stays as it was), or any callable. ``before`` is
called before every operation (a test sends its "signal" there).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.backups import BackupFile
from pipeline.engine.cancel import Call
from pipeline.engine.values import Database, LockInfo, Release, UnitState
from pipeline.errors import Cancelled, InputError, StageError
from pipeline.health import HealthResult
from pipeline.journal import BASE, HEALTHY, Entry
from pipeline.runreport import Evidence

STAGES = {"revision": "migrate", "head": "migrate", "read": "read", "restore_backup": "restore"}


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the engine handles it."""


@dataclass
class FakeUnit:
    """One unit in memory."""

    serving: str | None
    commit: str | None
    journal: list[Entry] = field(default_factory=list)
    lock: LockInfo | None = None
    revision: str = BASE  # its own database (per_host)


class FakeTarget:
    """Units in memory that do what the script says; every operation is recorded in ``calls``."""

    kind = "fake"

    def __init__(
        self,
        units: Sequence[str] = ("web1", "web2"),
        database: Database = "shared",
        serving: str | None = "1.0.0",
        revision: str = "0003",
        heads: dict[str, str] | None = None,
        keep: int = 0,
    ) -> None:
        self.database = database
        self.heads = heads or {"1.0.0": "0003", "2.0.0": "0004", "3.0.0": "0005"}
        self.shared_revision = revision
        self.state: dict[str, FakeUnit] = {}
        for name in units:
            unit = FakeUnit(serving, f"commit-{serving}", revision=revision)
            if serving is not None:
                unit.journal.append(_served(name, serving, revision))
            self.state[name] = unit
        self.broken: set[str] = set()  # versions whose health checks fail
        self.script: dict[tuple[str, str], str | Callable[[Call], None]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.before: Callable[[str, str], None] = lambda operation, unit: None
        self.guard = threading.Lock()
        self.keep = keep  # backups kept per database unit; 0: backups are not configured
        self.kept: dict[str, dict[str, str]] = {}  # unit -> backup name -> the revision it holds

    # -- scripting -------------------------------------------------------------------------------

    def fail_at(self, operation: str, unit: str, how: str | Callable[[Call], None] = "fail") -> None:
        """The next ``operation`` on ``unit`` goes wrong as ``how`` says (once)."""
        self.script[operation, unit] = how

    def db(self, unit: str) -> str:
        """The revision of the database a unit uses."""
        return self.state[unit].revision if self.database == "per_host" else self.shared_revision

    def _set_db(self, unit: str, revision: str) -> None:
        if self.database == "per_host":
            self.state[unit].revision = revision
        else:
            self.shared_revision = revision

    def _act(self, operation: str, unit: str, call: Call | None, detail: str = "") -> None:
        with self.guard:
            self.calls.append((operation, unit, detail))
        self.before(operation, unit)
        if call is not None:
            call.check()
        how = self.script.pop((operation, unit), None)
        stage = STAGES.get(operation, operation)
        if how is None:
            return
        if callable(how):
            assert call is not None
            how(call)
        elif how == "fail":
            raise StageError(stage, f"{operation} failed on {unit} (scripted)", unit, f"{operation} output")
        elif how == "raise":
            raise ValueError(f"a bug in {operation} on {unit} (scripted)")
        elif how == "kill":
            raise Killed(f"killed during {operation} on {unit}")
        elif how == "hang":
            assert call is not None
            while True:
                if call.interrupt():
                    raise Cancelled(str(call.cancel.reason))
                call.check()
                time.sleep(0.005)

    # -- the Target protocol ---------------------------------------------------------------------

    def units(self) -> list[str]:
        """The units' names."""
        return list(self.state)

    def databases(self) -> list[str]:
        """The first unit for a shared database, every unit for per-host ones."""
        if self.database == "none":
            return []
        return list(self.state) if self.database == "per_host" else list(self.state)[:1]

    def read(self, units: Sequence[str], seconds: float) -> list[UnitState]:
        """Copies of what each unit has."""
        states = []
        for name in units:
            self._act("read", name, None)
            unit = self.state[name]
            states.append(UnitState(name, copy.deepcopy(unit.journal), unit.lock, unit.commit))
        return states

    def lock(self, unit: str, info: LockInfo, call: Call, take_over: str = "") -> LockInfo | None:
        """Held: its holder; else taken."""
        self._act("lock", unit, call)
        state = self.state[unit]
        if state.lock is not None and not (take_over and state.lock.run == take_over):
            return state.lock
        state.lock = info
        return None

    def unlock(self, unit: str, call: Call) -> None:
        """Released."""
        self._act("unlock", unit, call)
        self.state[unit].lock = None

    def deploy(self, unit: str, release: Release, call: Call) -> None:
        """The unit serves the release (after the script had its say)."""
        self._act("deploy", unit, call, release.version)
        call.changing()
        self.state[unit].serving, self.state[unit].commit = release.version, release.commit

    def revision(self, unit: str, release: Release, call: Call) -> str:
        """The database's revision."""
        self._act("revision", unit, call)
        return self.db(unit)

    def head(self, unit: str, release: Release, call: Call) -> str:
        """The release's head, from ``heads``."""
        self._act("head", unit, call)
        return self.heads.get(release.version, BASE)

    def migrate(self, unit: str, release: Release, call: Call) -> None:
        """The database at the release's head."""
        self._act("migrate", unit, call, release.version)
        self._set_db(unit, self.heads.get(release.version, BASE))

    def downgrade(self, unit: str, release: Release, revision: str, call: Call) -> None:
        """The database at ``revision``."""
        self._act("downgrade", unit, call, revision)
        self._set_db(unit, revision)

    def backup_units(self) -> list[str]:
        """The database units, when backups are configured (``keep``)."""
        return (self.databases() or list(self.state)[:1]) if self.keep else []

    def backup(self, unit: str, name: str, version: str, call: Call) -> BackupFile:
        """The database's revision kept under ``name``; only the newest ``keep`` stay."""
        if not self.keep:
            raise InputError("backups are not configured")
        self._act("backup", unit, call, name)
        kept = self.kept.setdefault(unit, {})
        kept[name] = self.db(unit)
        for old in sorted(kept)[: -self.keep]:
            del kept[old]
        return BackupFile(name, 100)

    def backups(self, unit: str, call: Call) -> list[BackupFile]:
        """The names kept, oldest first."""
        self._act("backups", unit, call)
        return [BackupFile(name, 100) for name in sorted(self.kept.get(unit, {}))]

    def restore_backup(self, unit: str, name: str, version: str, call: Call) -> None:
        """The database back at the revision the backup holds."""
        self._act("restore_backup", unit, call, name)
        if name not in self.kept.get(unit, {}):
            raise InputError(f"{unit}: there is no backup {name}")
        self._set_db(unit, self.kept[unit][name])

    def describe_backup(self, unit: str, operation: str, name: str, version: str) -> list[str]:
        """One line."""
        return [f"  {operation:<8} [{unit}] {name}"]

    def health(self, unit: str, version: str, call: Call) -> list[HealthResult]:
        """Healthy when the unit serves ``version`` and it is not broken."""
        self._act("health", unit, call, version)
        serving = self.state[unit].serving
        ok = serving == version and version not in self.broken
        detail = "answered 200" if ok else f"serving {serving}, expected a healthy {version}"
        return [HealthResult("fake", unit, ok, detail)]

    def evidence(self, unit: str, release: Release, call: Call) -> list[Evidence]:
        """A log line naming what serves."""
        self._act("evidence", unit, call)
        return [Evidence(unit, "logs", f"{unit} serving {self.state[unit].serving}")]

    def restore(self, unit: str, previous: Entry | None, release: Release, call: Call) -> None:
        """The previous release serves again (nothing serves after a failed first deploy)."""
        self._act("restore", unit, call, previous.version if previous else "")
        state = self.state[unit]
        state.serving = previous.version if previous else None
        state.commit = previous.commit if previous else None

    def record(self, unit: str, entries: Sequence[Entry], call: Call) -> None:
        """Appended to the unit's journal."""
        self._act("record", unit, call, ",".join(e.result for e in entries))
        self.state[unit].journal += list(entries)

    def spent(self) -> float:
        """No real commands."""
        return 0.0

    def describe(
        self, unit: str, operation: str, release: Release, previous: Entry | None = None, revision: str = ""
    ) -> list[str]:
        """One line per operation."""
        extra = previous.version if previous else revision
        return [f"  {operation:<8} [{unit}] {release.version} {extra}".rstrip()]


def _served(unit: str, version: str, revision: str) -> Entry:
    return Entry(
        event="deploy", version=version, commit=f"commit-{version}", previous_version=None,
        db_before=revision, db_after=revision, result=HEALTHY, reason="", who="ci",
        at="2026-11-01T00:00:00Z", host=unit, run="first",
    )  # fmt: skip

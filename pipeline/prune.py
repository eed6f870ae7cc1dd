"""What ``invoke prune`` keeps and what it may remove: journals in, versions out (pure).

A rollback needs the release it goes back to: its images (and, for the image source, its compose
file). So prune keeps, on every host, the release each host serves, the last ``keep`` other releases
healthy on every host (the rollback targets, newest first), and every version an unfinished run's
``in_progress`` record names (what it deployed and what it would go back to). Everything else the
journal or the host knows of may go. Each version removed from a host leaves a ``pruned`` line in
its journal, which is how ``invoke rollback`` knows to refuse it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.journal import IN_PROGRESS, PRUNED, Entry, last_serving

PRUNE = "prune"  # the journal's event of a prune
KEEP_MAX = 1000
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}\Z")  # as the journal accepts a version


def is_version(name: str) -> bool:
    """Whether a name (a release folder on a host) has the shape of a version the pipeline writes."""
    return bool(_VERSION.match(name))


def healthy_everywhere_order(journals: Iterable[Sequence[Entry]]) -> list[str]:
    """Every version each journal has served healthy, newest first (by the first journal's order)."""
    per_unit = [[e.version for e in entries if e.serving] for entries in journals]
    if not per_unit or not all(per_unit):
        return []
    common = set(per_unit[0]).intersection(*per_unit[1:])
    ordered: list[str] = []
    for version in reversed(per_unit[0]):
        if version in common and version not in ordered:
            ordered.append(version)
    return ordered


def unfinished(entries: Sequence[Entry]) -> list[Entry]:
    """The ``in_progress`` records of runs that never recorded an outcome on this unit."""
    ended = {e.run for e in entries if e.run and e.result != IN_PROGRESS}
    return [e for e in entries if e.result == IN_PROGRESS and e.run not in ended]


def kept_versions(journals: Mapping[str, Sequence[Entry]], keep: int) -> dict[str, str]:
    """Every version that must stay on every host, with why (the first reason found).

    Hosts that have served nothing yet (a host just added) are left out of "healthy everywhere",
    so that they never make every rollback target look prunable; a version already pruned from some
    host is no rollback target, so it does not count among the ``keep``.
    """
    reasons: dict[str, str] = {}
    serving: dict[str, list[str]] = {}
    for unit, entries in journals.items():
        current = last_serving(entries)
        if current is not None:
            serving.setdefault(current.version, []).append(unit)
    for version, units in serving.items():
        where = "every host" if len(units) == len(journals) else ", ".join(units)
        reasons[version] = f"serving on {where}"
    served = [entries for entries in journals.values() if last_serving(entries) is not None]
    gone = {v for entries in journals.values() for v in pruned_versions(entries)}  # no rollback goes there
    targets = [v for v in healthy_everywhere_order(served) if v not in serving and v not in gone][:keep]
    for number, version in enumerate(targets, 1):
        reasons[version] = f"rollback target {number} of {keep} (healthy on every host)"
    for unit, entries in journals.items():
        for entry in unfinished(entries):
            for named in (entry.version, entry.previous_version):
                if named and named not in reasons:
                    reasons[named] = f"named by run {entry.run or '?'} on {unit}, which never finished"
    return reasons


def candidates(entries: Sequence[Entry], folders: Iterable[str]) -> list[str]:
    """The versions a host knows of, oldest first: those its journal names, then release folders."""
    found: list[str] = []
    for version in [e.version for e in entries] + sorted(f for f in folders if is_version(f)):
        if version not in found:
            found.append(version)
    return found


def pruned_versions(entries: Sequence[Entry]) -> dict[str, Entry]:
    """The versions prune removed from a unit and that no later run brought back, with the line."""
    pruned: dict[str, Entry] = {}
    for entry in entries:
        if entry.event == PRUNE and entry.result == PRUNED:
            pruned[entry.version] = entry
        elif entry.serving:
            pruned.pop(entry.version, None)  # deployed again: its images and files are back
    return pruned


@dataclass(frozen=True)
class VersionPlan:
    """What goes of one version on one host: its image references and its release folder."""

    version: str
    images: tuple[str, ...]
    folder: str  # "" when the host has none

    def words(self) -> str:
        """``images app/api:1.0.0; release files /srv/app.pipeline/releases/1.0.0``."""
        parts = []
        if self.images:
            parts.append("images " + ", ".join(self.images))
        if self.folder:
            parts.append(f"release files {self.folder}")
        return "; ".join(parts) or "nothing left on the host"


def check_keep(value: int | str | None, default: int) -> int:
    """``--keep`` (or the configured default) as a number from 1 to KEEP_MAX; else an input error."""
    from pipeline.errors import InputError
    from pipeline.terminal import printable

    if value is None or value == "":
        return default
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= KEEP_MAX):
        raise InputError(
            f"--keep must be a whole number from 1 to {KEEP_MAX} (the releases a rollback may go back "
            f"to, besides the serving one), got {printable(repr(text))}"
        )
    return int(text)


def refuse_pruned(
    journals: Mapping[str, Sequence[Entry]], targets: Mapping[str, str | None], env: str = "NAME"
) -> None:
    """Exit 2 when a rollback would go back to a version prune removed from one of its units."""
    from pipeline.errors import InputError

    for unit, version in targets.items():
        line = pruned_versions(journals.get(unit, [])).get(version or "")
        if line is not None:
            raise InputError(
                f"{unit}: {version} was pruned ({line.at} by {line.who}): its images and release files "
                f"are gone, so it cannot be rolled back to; deploy it again with `invoke deploy --env {env} "
                f"--version {version}`; nothing was changed"
            )

"""The pipeline's own files on a compose host: where they live, and the argv that reads and writes them.

They live beside the application's directory (``/srv/app`` keeps its records in ``/srv/app.pipeline``),
never inside it, so they are not in the build context of a ``build: .`` service. Pure builders: the
short POSIX scripts take every value as a positional parameter, never interpolated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.compose import state_dir_of
from pipeline.engine.values import UnitState, parse_lock
from pipeline.journal import read_journal
from pipeline.terminal import printable

HELD = 73  # the exit status of ``take_lock`` when another run holds the lock
UNREADABLE = 71  # the exit status of ``read_state`` when the journal exists but cannot be read
_SECTION = "--pipeline-section-"


@dataclass(frozen=True)
class Paths:
    """The state directory of one host and what it holds."""

    state: str
    legacy: str  # where versions before 0.2 kept it: inside the app directory

    @classmethod
    def of(cls, path: str, state_dir: str = "") -> Paths:
        """The state directory for an app path (``state_dir`` when configured)."""
        return cls(state_dir_of(path, state_dir), f"{path.rstrip('/')}/.pipeline")

    @property
    def journal(self) -> str:
        """The JSON Lines journal of deploys and rollbacks."""
        return f"{self.state}/journal.jsonl"

    @property
    def lock(self) -> str:
        """The lock file, created with its holder in one step."""
        return f"{self.state}/lock"


JOURNAL_BYTES = 2 * 1024 * 1024  # the end of a journal that is read (thousands of records)
JOURNAL_LINES = 5000  # of which at most this many lines are parsed
LOCK_BYTES = 16 * 1024  # of a lock file (a holder is a few hundred bytes)

# Content lines that look like a section marker are escaped, so a journal or a lock cannot forge the
# sections after it; a FIFO or a device in place of a file is refused (reading it would never end).
_ESCAPE = f"sed 's/^{_SECTION}/!&/'"
_READ = f"""
j=$1 old=$2 l=$3 p=$4 git=$5
if [ -e "$j" ]; then f=$j; elif [ -e "$old/journal.jsonl" ]; then f=$old/journal.jsonl; else f=; fi
if [ -n "$f" ]; then
  if [ ! -f "$f" ]; then echo "$f is not a regular file" >&2; exit {UNREADABLE}; fi
  if [ ! -r "$f" ]; then echo "$f: permission denied" >&2; exit {UNREADABLE}; fi
  size=$(wc -c <"$f") || exit {UNREADABLE}
  echo '{_SECTION}size'; echo $size
fi
echo '{_SECTION}journal'
if [ -n "$f" ]; then tail -c {JOURNAL_BYTES} -- "$f" | {_ESCAPE}; fi
echo; echo '{_SECTION}lock'
if [ -e "$l" ] || [ ! -e "$old/lock" ]; then lock=$l; else lock=$old/lock; fi
if [ -d "$lock" ]; then lock=$lock/info.json; echo held
elif [ -e "$lock" ]; then echo held
else echo free
fi
if [ -f "$lock" ]; then head -c {LOCK_BYTES} -- "$lock" | {_ESCAPE}; fi
echo; echo '{_SECTION}commit'
if [ "$git" = 1 ]; then git -C "$p" rev-parse --verify --quiet 'HEAD^{{commit}}' 2>/dev/null; fi
exit 0
"""
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def read_state(paths: Paths, app: str, git: bool) -> tuple[str, ...]:
    """One command printing the journal's end, the lock and the checkout's commit, in sections."""
    return ("sh", "-c", _READ, "pl-read", paths.journal, paths.legacy, paths.lock, app, "1" if git else "0")


def parse_state(unit: str, code: int, out: str, err: str) -> UnitState:
    """What ``read_state`` printed, whatever it is, as a UnitState (bad lines in ``damaged_lines``)."""
    if code == UNREADABLE:
        return UnitState(unit, damaged=printable((err.strip().splitlines() or ["unreadable"])[-1][-300:]))
    if code != 0:
        why = printable(err.strip()[-200:], keep_lines=False)
        return UnitState(unit, damaged=f"reading the host's records exited {code}: {why}")
    sections: dict[str, list[str]] = {}
    current = ""
    for line in out.split("\n"):
        if line.startswith(_SECTION):
            current = line[len(_SECTION) :].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    journal = sections.get("journal", [])
    size = "".join(sections.get("size", [])).strip()
    cut = size.isascii() and size.isdigit() and (len(size) > 18 or int(size) > JOURNAL_BYTES)
    if cut:
        journal = journal[1:]  # the first line is cut short
    if len(journal) > JOURNAL_LINES + 1:  # one more: the empty line the section ends with
        journal, cut = journal[-JOURNAL_LINES - 1 :], True
    entries, damaged = read_journal("\n".join(journal), from_end=cut)
    lock_lines = sections.get("lock", [])
    lock = None
    if lock_lines and lock_lines[0].strip() == "held":
        lock = parse_lock("\n".join(lock_lines[1:]))
    commit = "".join(sections.get("commit", [])).strip()
    return UnitState(
        unit, entries, lock, commit if _COMMIT.fullmatch(commit) else None, damaged_lines=damaged, cut=cut
    )


_LOCK = f"""
s=$1 l=$2 j=$3 old=$4 take=$5
mkdir -p -- "$s" || exit 1
if [ ! -e "$j" ] && [ -f "$old/journal.jsonl" ]; then cp -- "$old/journal.jsonl" "$j" || exit 1; fi
t=$l.$$
cat >"$t" || {{ rm -f -- "$t"; exit 1; }}
if [ ! -d "$l" ] && [ ! -d "$old/lock" ] && ln -- "$t" "$l" 2>/dev/null; then rm -f -- "$t"; exit 0; fi
if [ -n "$take" ] && [ -f "$l" ] && grep -q "\\"run\\": \\"$take\\"" "$l"; then mv -f -- "$t" "$l"; exit 0; fi
rm -f -- "$t"
if [ -d "$l" ]; then i=$l/info.json; elif [ -d "$old/lock" ]; then i=$old/lock/info.json; else i=; fi
if [ -n "$i" ]; then if [ -f "$i" ]; then head -c {LOCK_BYTES} -- "$i"; fi; exit {HELD}; fi
if [ -f "$l" ]; then head -c {LOCK_BYTES} -- "$l"; exit {HELD}; fi
echo "cannot create the lock $l" >&2; exit 1
"""


def take_lock(paths: Paths, take_over: str) -> tuple[str, ...]:
    """Create the lock file with the holder read from stdin, atomically (``ln`` fails when it exists).

    Exits ``HELD`` printing the holder when another run has it; ``take_over`` (a run id) replaces
    the lock of that run only. The first lock also carries an older version's journal over.
    """
    return ("sh", "-c", _LOCK, "pl-lock", paths.state, paths.lock, paths.journal, paths.legacy, take_over)


def append(path: str) -> tuple[str, ...]:
    """Append stdin to a file (the content never appears in argv)."""
    return ("sh", "-c", 'cat >>"$1"', "pl-append", path)

"""``invoke setenv`` on compose hosts: the variables file read, backed up, written and put back, the
services whose configuration it changes, and their recreation.

Builders are pure (argv; the short POSIX scripts take every value as a positional parameter, file
contents only on stdin); ``EnvFiles`` runs them on a ``ComposeTarget``'s hosts under a Call's deadline.
The file's text is read back raw (it is parsed, never shown); everything else a host says goes through
the target's redactor.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import replace
from pathlib import PurePosixPath

from pipeline.compose import Project
from pipeline.engine.cancel import Call
from pipeline.envfile import KEEP_BACKUPS
from pipeline.errors import Cancelled, DeadlineExceeded, InputError, StageError
from pipeline.executor import TIMED_OUT
from pipeline.journal import Entry
from pipeline.targets import hostfiles
from pipeline.targets.compose import ComposeTarget, Host

MAX_BYTES = 256 * 1024  # a variables file larger than this is refused, never half read
UNREADABLE = 71
PRESENT, ABSENT, TRACKED = "present", "absent", "tracked"

_READ = f"""
f=$1 git=$2
if [ -n "$git" ] && git -C "$git" ls-files --error-unmatch -- "$f" >/dev/null 2>&1; then
  echo {TRACKED}; exit 0
fi
if [ ! -e "$f" ]; then echo {ABSENT}; exit 0; fi
if [ ! -f "$f" ]; then echo "$f is not a regular file" >&2; exit {UNREADABLE}; fi
if [ ! -r "$f" ]; then echo "$f: permission denied" >&2; exit {UNREADABLE}; fi
size=$(wc -c <"$f") || exit {UNREADABLE}
if [ "$size" -gt {MAX_BYTES} ]; then echo "$f is larger than {MAX_BYTES} bytes" >&2; exit {UNREADABLE}; fi
echo {PRESENT}; cat -- "$f"
"""

# Backs up the file (when there is one and a stamp is given), writes stdin beside it with mode 600 and
# renames it over the file (a reader sees the old file or the new one, never half of one), then keeps
# the newest backups. Prints the backup's path (empty: no backup).
_WRITE = """
f=$1 d=$2 stamp=$3 keep=$4
umask 077
mkdir -p -- "${f%/*}" || exit 1
base=${f##*/} b=
if [ -n "$stamp" ] && [ -e "$f" ]; then
  mkdir -p -- "$d" || exit 1
  b=$d/$base.$stamp
  if [ -e "$b" ]; then b=$b-$$; fi
  cp -- "$f" "$b" && chmod 600 -- "$b" || { rm -f -- "$b"; exit 1; }
fi
t=$f.pl-new.$$
cat >"$t" && chmod 600 -- "$t" && mv -f -- "$t" "$f" || { rm -f -- "$t"; exit 1; }
if [ -n "$b" ]; then
  set --
  for n in "$d/$base".*; do
    case ${n##*/} in "$base".[0-9]*T[0-9]*Z|"$base".[0-9]*T[0-9]*Z-[0-9]*) set -- "$@" "$n" ;; esac
  done
  while [ $# -gt "$keep" ]; do rm -f -- "$1"; shift; done
fi
echo "$b"
"""


def read_file(path: str, checkout: str = "") -> tuple[str, ...]:
    """Print ``present`` and the file, or ``absent``; ``tracked`` when git tracks it in ``checkout``;
    a file that is no regular file or too large exits ``UNREADABLE``."""
    return ("sh", "-c", _READ, "pl-env-read", path, checkout)


def write_file(path: str, backups: str, stamp: str, keep: int = KEEP_BACKUPS) -> tuple[str, ...]:
    """Write stdin over ``path`` atomically (mode 600); with a ``stamp``, back the old file up first
    as ``backups/NAME.STAMP`` (mode 600) and keep the newest ``keep`` backups."""
    return ("sh", "-c", _WRITE, "pl-env-write", path, backups, stamp, str(keep))


def remove_file(path: str) -> tuple[str, ...]:
    """Remove the file (putting back a file that was not there)."""
    return ("rm", "-f", "--", path)


def hashes(project: Project, version: str, env_file: str | None = None) -> tuple[str, ...]:
    """Each service's configuration hash as compose computes it (``env_file``: read from another file,
    ``/dev/stdin`` for a text not written yet)."""
    return project.compose(version, "config", "--hash", "*", env_file=env_file)


def raw_services(project: Project, version: str) -> tuple[str, ...]:
    """The services as written (no interpolation, no env_file read), as JSON: who names the file."""
    args = ("config", "--no-interpolate", "--no-env-resolution", "--format", "json")
    return project.compose(version, *args)


def recreate(project: Project, version: str, services: Sequence[str]) -> tuple[str, ...]:
    """Recreate these services with what is on the host: never a build."""
    return project.compose(version, "up", "-d", "--no-build", *services)


_HASH = re.compile(r"(\S+)\s+([0-9a-f]{16,128})\s*\Z")


def parse_hashes(output: str) -> dict[str, str]:
    """``service hash`` lines (anything else, a warning, is skipped)."""
    found = {}
    for line in output.splitlines():
        match = _HASH.match(line.strip())
        if match:
            found[match[1]] = match[2]
    return found


def affected(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Services whose configuration differs (or that appear) after the change."""
    return sorted(name for name, value in after.items() if before.get(name) != value)


def reading_services(output: str, path: str) -> list[str]:
    """Services that load ``path`` whole through ``env_file:`` (from ``raw_services``' JSON)."""
    try:
        data = json.loads(output)
    except ValueError:
        return []
    services = data.get("services") if isinstance(data, dict) else None
    found = []
    for name, service in (services or {}).items():
        files = service.get("env_file") if isinstance(service, dict) else None
        for item in files if isinstance(files, list) else []:
            named = item.get("path") if isinstance(item, dict) else item
            if isinstance(named, str) and PurePosixPath(named) == PurePosixPath(path):
                found.append(str(name))
    return sorted(found)


def shown(argv: Sequence[str]) -> str:
    """A command as reports show it: a script by its name and arguments, not its text."""
    return shlex.join(argv[3:] if tuple(argv[:2]) == ("sh", "-c") else argv)


class EnvFiles:
    """The variables file on each host of a compose target, and the services that read it."""

    def __init__(self, target: ComposeTarget) -> None:
        self.target = target

    def host(self, unit: str) -> Host:
        """The target's host of this name."""
        return self.target.hosts[unit]

    def path(self, unit: str) -> str:
        """The file on the host: the environment's ``env_file`` under the host's app path."""
        project = self.host(unit).project
        return project.env_file or f"{project.path.rstrip('/')}/{self.target.env.env_file}"

    def backups(self, unit: str) -> str:
        """Where the host keeps the old files: its state directory, outside the build context."""
        return f"{self.host(unit).files.state}/env-backups"

    def read(self, unit: str, call: Call) -> str | None:
        """The file's text, None when there is none (its content is never redacted nor shown)."""
        project, path = self.host(unit).project, self.path(unit)
        checkout = project.path if project.source == "git" else ""
        marker, _, text = self._read_raw(unit, read_file(path, checkout), call).partition("\n")
        if marker == TRACKED:
            raise InputError(
                f"{unit}: {path} is tracked by git in the checkout: the next deploy's checkout would put "
                "the committed file back; stop tracking it (`git rm --cached`, and list it in .gitignore)"
            )
        if marker == ABSENT:
            return None
        if marker != PRESENT:
            raise StageError(call.stage, f"[{unit}] reading {self.path(unit)} printed no marker", unit)
        return text

    def hashes(self, unit: str, version: str, call: Call, text: str | None = None) -> dict[str, str]:
        """Each service's configuration hash with the file on the host, or with ``text`` instead."""
        project = self.host(unit).project
        argv = hashes(project, version, None if text is None else "/dev/stdin")
        return parse_hashes(self._run(unit, argv, call, stdin=text))

    def reading(self, unit: str, version: str, call: Call) -> list[str]:
        """Services that load the whole file through ``env_file:``."""
        output = self._run(unit, raw_services(self.host(unit).project, version), call)
        return reading_services(output, self.path(unit))

    def write(self, unit: str, text: str, stamp: str, call: Call) -> str:
        """Back the file up and write ``text`` over it; the backup's path ("" when there was no file)."""
        argv = write_file(self.path(unit), self.backups(unit), stamp)
        return self._run(unit, argv, call, stdin=text).strip()

    def put_back(self, unit: str, text: str | None, call: Call) -> None:
        """The old text over the file again (no new backup); no file when there was none."""
        path = self.path(unit)
        if text is None:
            self._run(unit, remove_file(path), call)
        else:
            self._run(unit, write_file(path, self.backups(unit), ""), call, stdin=text)

    def recreate(self, unit: str, version: str, services: Sequence[str], call: Call) -> None:
        """``up -d --no-build`` of these services."""
        self._run(unit, recreate(self.host(unit).project, version, services), call)

    def record(self, unit: str, entry: Entry, call: Call) -> None:
        """Append the run's line to the host's journal. Only its free text is redacted: the rest is
        names and words of ours, which a short value (``fail``) would otherwise garble (``***ed``)."""
        line = replace(entry, reason=self.target.redactor.redact(entry.reason)).line()
        self._run(unit, hostfiles.append(self.host(unit).files.journal), call, stdin=line)

    def describe(self, unit: str, version: str, services: Sequence[str]) -> list[str]:
        """The commands a change runs on a host, as the dry run prints them."""
        project, path = self.host(unit).project, self.path(unit)
        steps = [
            write_file(path, self.backups(unit), "STAMP"),
            hashes(project, version),
            *([recreate(project, version, services)] if services else []),
        ]
        return [
            f"  setenv   [{unit}] {shown(s)}" + ("  < (stdin)" if s[:2] == ("sh", "-c") else "")
            for s in steps
        ]

    # -- running -----------------------------------------------------------------------------------

    def _run(self, unit: str, argv: Sequence[str], call: Call, stdin: str | None = None) -> str:
        """Run argv as every command of the target runs: deadline, output redacted, StageError."""
        return self.target._run(self.host(unit), argv, call, stdin=stdin)

    def _read_raw(self, unit: str, argv: Sequence[str], call: Call) -> str:
        """Run a read whose output is the file's text: returned as the host sent it, never put in an
        error (only the redacted stderr is)."""
        host = self.host(unit)
        with self.target.clock.busy():
            result = host.remote.run(argv, timeout=call.timeout(), interrupt=call.interrupt)
        redact = self.target.redactor.redact
        words = redact(result.stderr).strip().splitlines()[-1:] or ["no output"]
        if result.interrupted:
            raise Cancelled(str(call.cancel.reason or "interrupted"))
        if result.returncode == TIMED_OUT:
            raise DeadlineExceeded(
                call.stage, f"{call.stage} on {unit} passed its deadline of {call.seconds:g} s", unit
            )
        if host.remote.unreachable(result):
            raise StageError(call.stage, f"{unit} is unreachable over ssh: {words[0]}", unit)
        if not result.ok:
            raise StageError(
                call.stage, f"[{unit}] reading {self.path(unit)} exited {result.returncode}: {words[0]}", unit
            )
        return result.stdout

"""Backups on a compose host: the dump compressed into a file beside the journal, and loaded back.

The scripts are pure builders taking every value as a positional parameter. A dump is written under a
hidden temporary name and renamed only once it is complete, so an interrupted or failed dump never
leaves a file that looks like a backup; a restore checks the whole file before it loads anything, and
the decompressed dump goes from the file to the restore command on the host, never through the runner.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeline.backups import NAME_ERE, BackupConfig, BackupFile, parse_listing
from pipeline.engine.cancel import Call
from pipeline.errors import InputError, StageError

if TYPE_CHECKING:
    from pipeline.environments import ComposeEnvironment
    from pipeline.executor import Result
    from pipeline.secrets import Redactor
    from pipeline.targets.compose import Host

MISSING = 66  # the exit status of ``restore_script`` when there is no such backup
DAMAGED = 65  # ... and when the file fails ``gzip -t``: nothing was loaded either way

_TRAPS = "".join(
    f'trap \'rm -f -- "$t" "$t.rc"; exit {code}\' {sig}\n'
    for sig, code in (("TERM", 143), ("INT", 130), ("HUP", 129))
)
_BACKUP = f"""
d=$1 n=$2 keep=$3 ere=$4; shift 4
umask 077
mkdir -p -- "$d" || exit 1
rm -f -- "$d"/.*.partial "$d"/.*.partial.rc
t=$d/.$n.partial
{_TRAPS}{{ "$@"; echo $? >"$t.rc"; }} | gzip -c >"$t"
g=$?
r=$(cat -- "$t.rc" 2>/dev/null)
rm -f -- "$t.rc"
if [ "$r" != 0 ]; then rm -f -- "$t"; echo "the dump command exited ${{r:-without a status}}" >&2; exit 1; fi
if [ "$g" != 0 ]; then rm -f -- "$t"; echo "gzip exited $g" >&2; exit 1; fi
if [ -z "$(gzip -dc -- "$t" | head -c 1)" ]; then
  rm -f -- "$t"; echo "the dump command wrote nothing" >&2; exit 1
fi
mv -f -- "$t" "$d/$n" || {{ rm -f -- "$t"; exit 1; }}
all=$(ls -1a -- "$d" | grep -E "$ere" | sort)
c=$(printf '%s\\n' "$all" | grep -c .)
if [ "$c" -gt "$keep" ]; then
  printf '%s\\n' "$all" | head -n $((c - keep)) | while IFS= read -r f; do rm -f -- "$d/$f"; done
fi
printf '%s %s\\n' "$n" "$(wc -c <"$d/$n")"
"""
_LIST = """
d=$1 ere=$2
[ -d "$d" ] || exit 0
cd -- "$d" || exit 1
ls -1a | grep -E "$ere" | while IFS= read -r f; do printf '%s %s\\n' "$f" "$(wc -c <"$f")"; done
exit 0
"""
_RESTORE = f"""
d=$1 n=$2; shift 2
f=$d/$n
[ -f "$f" ] || {{ echo "there is no backup $n in $d" >&2; exit {MISSING}; }}
gzip -t -- "$f" || {{ echo "$f is damaged (gzip -t failed); nothing was loaded" >&2; exit {DAMAGED}; }}
gzip -dc -- "$f" | "$@"
"""


def backup_script(folder: str, name: str, keep: int, dump: Sequence[str]) -> tuple[str, ...]:
    """Dump into ``folder/name`` through a temporary file, then keep only the newest ``keep`` backups;
    prints ``NAME SIZE``. A signal removes the temporary file; a killed run's one goes at the next."""
    return ("sh", "-c", _BACKUP, "pl-backup", folder, name, str(keep), NAME_ERE, *dump)


def list_script(folder: str) -> tuple[str, ...]:
    """``NAME SIZE`` of every backup in ``folder`` (nothing when it does not exist)."""
    return ("sh", "-c", _LIST, "pl-backups", folder, NAME_ERE)


def restore_script(folder: str, name: str, load: Sequence[str]) -> tuple[str, ...]:
    """Check ``folder/name`` whole, then feed it decompressed to ``load`` on the host."""
    return ("sh", "-c", _RESTORE, "pl-restore", folder, name, *load)


class ComposeBackups:
    """The backup operations of ``ComposeTarget`` (see ``pipeline.targets.base.Target``)."""

    env: ComposeEnvironment
    hosts: dict[str, Host]
    redactor: Redactor

    if TYPE_CHECKING:  # provided by ComposeTarget

        def databases(self) -> list[str]: ...

        def _attempt(
            self,
            host: Host,
            argv: Sequence[str],
            call: Call,
            stdin: str | None = None,
            changing: bool = False,
        ) -> Result: ...

    def _backup_config(self) -> BackupConfig:
        if self.env.backup is None:
            raise InputError("backups are not configured (the environment has no `backup` key)")
        return self.env.backup

    def backup_folder(self, host: Host) -> str:
        """``backup.dir``, else ``backups/`` in the host's state directory."""
        return self._backup_config().dir or f"{host.files.state}/backups"

    def _in_place(self, host: Host, version: str, key: str) -> tuple[str, ...]:
        """The dump or restore command line, in the configured service or on the host."""
        backup = self._backup_config()
        argv = ("sh", "-c", getattr(backup, key))
        if backup.service:
            return host.project.compose(version, "exec", "-T", backup.service, *argv)
        return argv

    def backup_units(self) -> list[str]:
        """Where migrations run (one per database), else the first host; none without ``backup``."""
        if self.env.backup is None:
            return []
        return self.databases() or list(self.hosts)[:1]

    def backup(self, unit: str, name: str, version: str, call: Call) -> BackupFile:
        """The dump, compressed under a temporary name and renamed when complete; then retention."""
        host = self.hosts[unit]
        argv = backup_script(
            self.backup_folder(host),
            name,
            self._backup_config().keep,
            self._in_place(host, version, "command"),
        )
        result = self._checked(host, argv, call, "backup", f"the backup {name}")
        made = parse_listing(result.stdout)
        return made[0] if made else BackupFile(name, 0)

    def backups(self, unit: str, call: Call) -> list[BackupFile]:
        """The backups kept on the host, oldest first."""
        host = self.hosts[unit]
        result = self._checked(
            host, list_script(self.backup_folder(host)), call, "backup", "listing the backups"
        )
        return parse_listing(result.stdout)

    def restore_backup(self, unit: str, name: str, version: str, call: Call) -> None:
        """The backup, checked whole, decompressed into the restore command on the host."""
        host = self.hosts[unit]
        argv = restore_script(self.backup_folder(host), name, self._in_place(host, version, "restore"))
        result = self._attempt(host, argv, call, changing=True)
        if result.returncode in (MISSING, DAMAGED):
            raise InputError(f"{unit}: {_last_words(result)}")
        if not result.ok:
            raise _failed("restore", unit, f"the restore of {name}", result)

    def _checked(self, host: Host, argv: Sequence[str], call: Call, stage: str, what: str) -> Result:
        result = self._attempt(host, argv, call)
        if not result.ok:
            raise _failed(stage, host.name, what, result)
        return result

    def describe_backup(self, unit: str, operation: str, name: str, version: str) -> list[str]:
        """``backup`` or ``restore`` on a host as a person reads it (the script's steps in words)."""
        host = self.hosts[unit]
        path = f"{self.backup_folder(host)}/{name}"
        if operation == "backup":
            dump = shlex.join(self._in_place(host, version, "command"))
            keep = self._backup_config().keep
            return [f"  backup   [{unit}] {dump} | gzip > {path} (written whole, then renamed; keep {keep})"]
        load = shlex.join(self._in_place(host, version, "restore"))
        return [f"  restore  [{unit}] gzip -t {path} && gzip -dc {path} | {load}"]


def _last_words(result: Result) -> str:
    words = (result.stderr or result.stdout).strip().splitlines()[-3:]
    return " / ".join(words) or f"exited {result.returncode}"


def _failed(stage: str, unit: str, what: str, result: Result) -> StageError:
    """A StageError naming what failed on which host and the command's last words (already redacted)."""
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-50:])
    return StageError(
        stage, f"[{unit}] {what} failed (exit {result.returncode}): {_last_words(result)}", unit, tail
    )

"""The compose host's backup scripts, run by a real ``sh`` with real gzip in a temporary folder."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.targets.composebackup import DAMAGED, MISSING, backup_script, list_script, restore_script

NAME = "20261201T041500Z-2.0.0-0003.sql.gz"


def run(argv: tuple[str, ...], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_dump_is_kept_compressed_under_its_name_and_the_script_says_its_size(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    done = run(backup_script(str(folder), NAME, 7, ("sh", "-c", "echo 'CREATE TABLE items;'")))
    assert done.returncode == 0, done.stderr
    assert names(folder) == [NAME]
    assert gzip.decompress((folder / NAME).read_bytes()) == b"CREATE TABLE items;\n"
    assert done.stdout == f"{NAME} {(folder / NAME).stat().st_size}\n"
    assert oct((folder / NAME).stat().st_mode & 0o777) == "0o600"  # a dump holds the data


@pytest.mark.parametrize(
    ("dump", "said"),
    [
        ("echo half; exit 3", "the dump command exited 3"),
        ("true", "the dump command wrote nothing"),
    ],
)
def test_a_failed_dump_leaves_no_file_at_all(tmp_path: Path, dump: str, said: str) -> None:
    folder = tmp_path / "backups"
    done = run(backup_script(str(folder), NAME, 7, ("sh", "-c", dump)))
    assert done.returncode == 1
    assert said in done.stderr
    assert names(folder) == []


def test_only_the_newest_backups_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a backup: never removed")
    made = [f"2026120{day}T000000Z-1.0.0-0003.sql.gz" for day in range(1, 6)]
    for name in made:
        assert run(backup_script(str(folder), name, 3, ("echo", "data"))).returncode == 0
    assert names(folder) == sorted(["notes.txt", *made[-3:]])


def test_a_signal_during_the_dump_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    dump = ("sh", "-c", "echo 'first rows'; sleep 30")
    process = subprocess.Popen(backup_script(str(folder), NAME, 7, dump), start_new_session=True)
    deadline = time.monotonic() + 10
    while not any(n.endswith(".partial") for n in names(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f".{NAME}.partial" in names(folder) and NAME not in names(folder)
    os.killpg(process.pid, signal.SIGTERM)  # what the host's `timeout` does to the command's group
    assert process.wait(timeout=10) == 143
    assert names(folder) == []


def test_what_a_killed_backup_left_is_removed_by_the_next_one(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / f".{NAME}.partial").write_bytes(b"\x1f\x8b half")
    other = "20261202T000000Z-2.0.0-0003.sql.gz"
    assert run(backup_script(str(folder), other, 7, ("echo", "data"))).returncode == 0
    assert names(folder) == [other]


def test_the_listing_names_backups_with_their_sizes(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    assert run(list_script(str(folder))).stdout == ""  # no folder yet: nothing, no error
    run(backup_script(str(folder), NAME, 7, ("echo", "data")))
    (folder / f".{NAME[:-7]}x.sql.gz.partial").write_text("half")
    done = run(list_script(str(folder)))
    assert done.returncode == 0
    assert done.stdout == f"{NAME} {(folder / NAME).stat().st_size}\n"


def test_a_restore_feeds_the_whole_dump_to_the_restore_command(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    run(backup_script(str(folder), NAME, 7, ("printf", "line 1\\nline 2\\n")))
    loaded = tmp_path / "loaded.sql"
    done = run(restore_script(str(folder), NAME, ("sh", "-c", f"cat > {loaded}")))
    assert done.returncode == 0, done.stderr
    assert loaded.read_text() == "line 1\nline 2\n"


def test_a_restore_command_that_fails_is_its_exit_status(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    run(backup_script(str(folder), NAME, 7, ("echo", "data")))
    done = run(
        restore_script(str(folder), NAME, ("sh", "-c", "cat >/dev/null; echo 'ERROR: relation' >&2; exit 3"))
    )
    assert done.returncode == 3 and "ERROR: relation" in done.stderr


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_a_missing_or_damaged_backup_loads_nothing(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "backups"
    run(backup_script(str(folder), NAME, 7, ("echo", "data " * 1000)))
    if damage == "damaged":
        data = (folder / NAME).read_bytes()
        (folder / NAME).write_bytes(data[: len(data) // 2])
    else:
        (folder / NAME).unlink()
    loaded = tmp_path / "loaded.sql"
    done = run(restore_script(str(folder), NAME, ("sh", "-c", f"cat > {loaded}")))
    assert done.returncode == (DAMAGED if damage == "damaged" else MISSING)
    assert not loaded.exists()

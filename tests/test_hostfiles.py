"""The state directory's scripts, run by a real ``sh`` on a temporary directory (as a host would)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.compose import drop_lock
from pipeline.engine.values import LockInfo
from pipeline.journal import Damaged, Entry
from pipeline.targets import hostfiles
from pipeline.targets.hostfiles import (
    HELD,
    JOURNAL_BYTES,
    JOURNAL_LINES,
    LOCK_BYTES,
    UNREADABLE,
    Paths,
    parse_state,
    read_state,
    take_lock,
)

ALICE = LockInfo(who="alice", at="2026-11-30T10:00:00Z", version="1.9.0", run="r-alice")
BOB = LockInfo(who="bob", at="2026-11-30T11:00:00Z", version="2.0.0", run="r-bob")


def sh(argv: tuple[str, ...], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    (tmp_path / "app").mkdir()
    return Paths.of(str(tmp_path / "app"))


def state(paths: Paths, app: str = "/nonexistent"):  # type: ignore[no-untyped-def]
    done = sh(read_state(paths, app, git=False))
    return parse_state("web1", done.returncode, done.stdout, done.stderr)


def entry(version: str) -> Entry:
    return Entry("deploy", version, None, None, "base", "0001", "healthy", "", "ci", "2026-11-01T00:00:00Z")


def test_the_state_directory_sits_beside_the_app_never_inside_its_build_context() -> None:
    paths = Paths.of("/srv/app/")
    assert (paths.journal, paths.lock) == ("/srv/app.pipeline/journal.jsonl", "/srv/app.pipeline/lock")
    assert Paths.of("/srv/app", "/var/lib/deploys/app").journal == "/var/lib/deploys/app/journal.jsonl"


def test_a_host_with_nothing_yet_is_a_first_deploy_and_unlocked(paths: Paths) -> None:
    found = state(paths)
    assert (found.journal, found.lock, found.damaged) == ([], None, "")


def test_the_lock_is_taken_once_with_its_holder_and_a_second_run_reads_that_holder(paths: Paths) -> None:
    first = sh(take_lock(paths, ""), ALICE.to_json())
    assert first.returncode == 0, first.stderr
    second = sh(take_lock(paths, ""), BOB.to_json())
    assert second.returncode == HELD
    assert json.loads(second.stdout)["who"] == "alice"
    assert state(paths).lock == ALICE
    assert not [p for p in Path(paths.state).iterdir() if p.name.startswith("lock.")]  # no temp file left


def test_only_the_named_interrupted_run_can_be_taken_over(paths: Paths) -> None:
    sh(take_lock(paths, ""), ALICE.to_json())
    assert sh(take_lock(paths, "r-other"), BOB.to_json()).returncode == HELD
    assert sh(take_lock(paths, "r-alice"), BOB.to_json()).returncode == 0
    assert state(paths).lock == BOB


def test_a_lock_that_cannot_be_created_is_an_error_not_a_held_lock(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    paths = Paths.of(str(tmp_path / "app"), str(blocked / "state"))
    done = sh(take_lock(paths, ""), ALICE.to_json())
    assert done.returncode not in (0, HELD)


def test_a_lock_directory_of_an_older_version_without_its_info_is_held_and_unlockable(paths: Paths) -> None:
    legacy = Path(paths.legacy) / "lock"
    legacy.mkdir(parents=True)
    found = state(paths)
    assert found.lock is not None and found.lock.who.startswith("unknown")
    assert sh(take_lock(paths, ""), ALICE.to_json()).returncode == HELD
    assert sh(drop_lock(paths.lock, f"{paths.legacy}/lock")).returncode == 0
    assert state(paths).lock is None


def test_an_older_versions_journal_is_read_and_carried_over_by_the_first_lock(paths: Paths) -> None:
    Path(paths.legacy).mkdir()
    Path(paths.legacy, "journal.jsonl").write_text(entry("1.0.0").line())
    assert [e.version for e in state(paths).journal] == ["1.0.0"]
    assert sh(take_lock(paths, ""), ALICE.to_json()).returncode == 0
    assert sh(hostfiles.append(paths.journal), entry("2.0.0").line()).returncode == 0
    assert [e.version for e in state(paths).journal] == ["1.0.0", "2.0.0"]


def test_a_journal_that_cannot_be_read_is_damaged_not_a_first_deploy(paths: Paths) -> None:
    Path(paths.journal).mkdir(parents=True)  # a directory where the journal should be
    done = sh(read_state(paths, "/nonexistent", git=False))
    assert done.returncode == UNREADABLE
    assert "is not a regular file" in parse_state("web1", done.returncode, done.stdout, done.stderr).damaged


def test_torn_and_mistyped_journal_lines_are_skipped(paths: Paths) -> None:
    Path(paths.state).mkdir()
    good = entry("1.0.0").line()
    wrong = json.dumps({"event": "deploy", "version": 3, "result": "healthy"}) + "\n"
    Path(paths.journal).write_text(good + '{"event": "dep' + "\n" + wrong + "[1, 2]\n")
    assert [e.version for e in state(paths).journal] == ["1.0.0"]


def test_the_checkout_commit_is_read_from_the_app_directory(paths: Paths, tmp_path: Path) -> None:
    app = tmp_path / "app"
    subprocess.run(["git", "init", "-q", str(app)], check=True)
    subprocess.run(["git", "-C", str(app), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(app), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    done = sh(read_state(paths, str(app), git=True))
    assert parse_state("web1", done.returncode, done.stdout, done.stderr).commit == head.strip()


def test_a_damaged_journal_line_is_reported_with_its_line_number(paths: Paths) -> None:
    Path(paths.state).mkdir()
    Path(paths.journal).write_text(entry("1.0.0").line() + '{"version": 3}\n' + entry("1.1.0").line())
    found = state(paths)
    assert [e.version for e in found.journal] == ["1.0.0", "1.1.0"]
    assert found.damaged_lines == [Damaged(2, "no event, result")]
    assert not found.cut


def test_only_the_end_of_a_huge_journal_is_sent_and_its_records_still_count(paths: Paths) -> None:
    Path(paths.state).mkdir()
    line = entry("1.0.0").line()
    with open(paths.journal, "w") as journal:
        journal.write("x" * (3 * JOURNAL_BYTES) + "\n")  # one endless line first: never sent whole
        journal.write(line * (JOURNAL_BYTES // len(line) + 10) + "garbage\n" + entry("2.0.0").line())
    done = sh(read_state(paths, "/nonexistent", git=False))
    assert len(done.stdout) < JOURNAL_BYTES + 1000
    found = parse_state("web1", done.returncode, done.stdout, done.stderr)
    assert found.cut and found.serving is not None and found.serving.version == "2.0.0"
    assert len(found.journal) <= JOURNAL_LINES
    assert found.damaged_lines == [Damaged(-2, "not JSON (a torn write or a foreign line)")]


def test_a_journal_of_one_endless_line_is_sent_bounded_and_has_no_record(paths: Paths) -> None:
    Path(paths.state).mkdir()
    Path(paths.journal).write_text("{" * (2 * JOURNAL_BYTES))
    done = sh(read_state(paths, "/nonexistent", git=False))
    assert len(done.stdout) < JOURNAL_BYTES + 1000
    found = parse_state("web1", done.returncode, done.stdout, done.stderr)
    assert (found.journal, found.damaged, found.cut) == ([], "", True)


@pytest.mark.parametrize("which", ["journal", "lock"])
def test_a_fifo_in_place_of_a_file_is_refused_not_read_forever(paths: Paths, which: str) -> None:
    Path(paths.state).mkdir()
    os.mkfifo(getattr(paths, which))
    found = state(paths)
    if which == "journal":
        assert "is not a regular file" in found.damaged
    else:
        assert found.lock is not None and found.damaged == ""
        assert sh(take_lock(paths, ""), ALICE.to_json()).returncode != 0


def test_a_journal_line_that_looks_like_a_section_marker_hides_nothing_and_forges_nothing(
    paths: Paths,
) -> None:
    Path(paths.state).mkdir()
    forged = "--pipeline-section-size\n1\n--pipeline-section-lock\nheld\n" + ALICE.to_json() + "\n"
    Path(paths.journal).write_text(entry("1.0.0").line() + forged + entry("2.0.0").line())
    found = state(paths)
    assert [e.version for e in found.journal] == ["1.0.0", "2.0.0"]
    assert (found.lock, found.commit, found.cut) == (None, None, False)
    assert [d.line for d in found.damaged_lines] == [2, 3, 4, 5, 6]


def test_a_lock_full_of_garbage_is_held_damaged_bounded_and_printable(paths: Paths) -> None:
    Path(paths.state).mkdir()
    Path(paths.lock).write_text("\x1b[2J\x1b]0;owned\x07\r" * (LOCK_BYTES // 4))
    found = state(paths)
    assert found.lock is not None and found.lock.damaged == "not JSON"
    assert "\x1b" not in found.lock.describe()
    held = sh(take_lock(paths, ""), BOB.to_json())
    assert held.returncode == HELD and len(held.stdout) <= LOCK_BYTES


@pytest.mark.parametrize(
    ("content", "damaged"),
    [
        ('{"who": 3, "run": "r-alice"}', "who: not a string"),
        ('{"who": "alice", "run": null}', "run: not a string"),
        ('{"who": "alice", "run": {"id": "r-alice"}}', "run: not a string"),
        ('{"who": "alice", "at": 1e999999}', "at: not a string"),
        ('{"who": "alice", "at": ' + "9" * 5000 + "}", "not JSON"),
        ('["alice"]', "not a JSON object"),
    ],
)
def test_a_lock_of_wrong_types_is_held_and_damaged_never_an_interrupted_run(
    paths: Paths, content: str, damaged: str
) -> None:
    Path(paths.state).mkdir()
    started = Entry("deploy", "2.0.0", None, "1.0.0", None, None, "in_progress", "", "a", "", run="r-alice")
    Path(paths.journal).write_text(started.line())
    Path(paths.lock).write_text(content)
    found = state(paths)
    assert found.lock is not None and found.lock.damaged == damaged
    assert found.interrupted() == []
    assert damaged in found.lock.describe()


def test_the_lock_and_commit_sent_back_must_look_like_what_we_wrote() -> None:
    out = "--pipeline-section-journal\n\n--pipeline-section-lock\nfree\n--pipeline-section-commit\n--evil\n"
    assert parse_state("web1", 0, out, "").commit is None

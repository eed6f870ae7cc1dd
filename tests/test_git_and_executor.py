"""Command builders compared as argv, the executor seam, and the shipped FakeExecutor."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import git
from pipeline.errors import CommandFailed, CommandNotFound
from pipeline.executor import INTERRUPTED, TIMED_OUT, Command, FakeExecutor, LocalExecutor, Result

HERE = Path("/repo")


def test_state_questions_are_four_git_processes() -> None:
    assert git.rev_parse_state(HERE).argv == (
        "git",
        "rev-parse",
        "--show-toplevel",
        "--is-shallow-repository",
        "--git-path",
        "shallow",
    )
    assert git.merged_tags(HERE).argv == (
        "git",
        "for-each-ref",
        "--merged=HEAD",
        "--format=%(refname)",
        "refs/tags",
    )
    assert git.nearest_tag(HERE, "rel-").argv == (
        "git", "describe", "--tags", "--abbrev=0", "--match=rel-[0-9]*", "HEAD"
    )  # fmt: skip
    assert git.status(HERE).argv == ("git", "status", "--porcelain=v2", "--branch", "-z")
    assert git.refs(HERE).argv == (
        "git",
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(*objectname)",
        "refs/tags",
        "refs/heads",
        "refs/remotes",
    )


def test_log_asks_for_the_range_only_and_ends_the_revisions() -> None:
    assert git.log(HERE, "v1.0.0").argv == (
        "git",
        "log",
        "-z",
        "--no-color",
        "--format=%H%x1f%P%x1f%B",
        "v1.0.0..HEAD",
        "--",
    )
    assert git.log(HERE, None).argv[-2:] == ("HEAD", "--")


def test_commands_run_in_their_directory() -> None:
    assert git.status(HERE).cwd == "/repo"


def test_read_state_parses_branch_head_changes_and_refs_from_fake_answers() -> None:
    head = "a" * 40
    fake = FakeExecutor(
        {
            git.rev_parse_state(HERE).argv: (0, "/repo\nfalse\n.git/shallow\n", ""),
            git.nearest_tag(HERE, "v").argv: (0, "v1.0.0\n", ""),
            git.log(HERE, "v1.0.0").argv: (0, f"{head}\x1f\x1ffeat: x\n\0", ""),
            git.status(HERE).argv: (
                0,
                f"# branch.oid {head}\0# branch.head main\0"
                "1 .M N... 100644 100644 100644 abc abc app.py\0"
                "2 R. N... 100644 100644 100644 abc abc R100 new name.py\0old.py\0"
                "? notes.txt\0",
                "",
            ),
            git.refs(HERE).argv: (
                0,
                f"refs/heads/main\0{head}\0\n"
                f"refs/remotes/origin/main\0{head}\0\n"
                f"refs/remotes/origin/HEAD\0{head}\0\n"
                f"refs/tags/v1.0.0\0{'t' * 40}\0{'c' * 40}\n",
                "",
            ),
        }
    )
    state = git.read_state(fake, HERE)
    assert state == git.RepoState(
        root=Path("/repo"),
        shallow=False,
        head=head,
        branch="main",
        changes=("app.py", "new name.py", "notes.txt"),
        tags=(("v1.0.0", "c" * 40),),
        branches=(git.Branch("main", head), git.Branch("main", head, "origin")),
        nearest="v1.0.0",
        untracked=("notes.txt",),
        shallow_file=Path("/repo/.git/shallow"),
    )
    # The nearest tag first, then the rest beside the log since it, which read_whole_range then uses.
    assert [c.argv[1] for c in fake.calls] == ["describe", "rev-parse", "status", "for-each-ref", "log"]
    assert [c.subject for c in git.read_whole_range(fake, state, "v1.0.0")] == ["feat: x"]
    assert len(fake.calls) == 5


def test_a_fake_executor_fails_loudly_on_an_unexpected_command() -> None:
    with pytest.raises(AssertionError, match="no answer for"):
        FakeExecutor().run(Command(("rm", "-rf", "/")))


def test_a_fake_executor_can_answer_with_a_handler() -> None:
    fake = FakeExecutor(handler=lambda c: Result(c, 0, " ".join(c.argv)))
    assert fake.run(Command(("echo", "hi"))).stdout == "echo hi"


def test_the_local_executor_captures_output_and_exit_status(tmp_path: Path) -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = LocalExecutor().run(Command((sys.executable, "-c", script), str(tmp_path)))
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(CommandFailed, match="exited 3: err"):
        result.check()


def test_the_local_executor_feeds_stdin_and_runs_several_at_once() -> None:
    cat = Command((sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"), stdin="abc")
    echo = Command((sys.executable, "-c", "print('second')"))
    first, second = LocalExecutor().run_all([cat, echo])
    assert (first.stdout, second.stdout) == ("ABC\n", "second\n")


def test_argv_is_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    hostile = "x; touch pwned"
    result = LocalExecutor().run(Command(("echo", hostile), str(tmp_path)))
    assert result.stdout == "x; touch pwned\n"
    assert not (tmp_path / "pwned").exists()


def test_a_missing_program_is_a_clear_error() -> None:
    with pytest.raises(CommandNotFound, match="`no-such-tool` is not installed or not on PATH"):
        LocalExecutor().run(Command(("no-such-tool",)))


def test_commands_print_as_copyable_shell() -> None:
    assert str(Command(("git", "commit", "-m", "chore(release): v1.0.0"))) == (
        "git commit -m 'chore(release): v1.0.0'"
    )


def after(seconds: float) -> Callable[[], bool]:
    """An interrupt that asks to stop once ``seconds`` have passed (as a signal handler's flag would)."""
    when = time.monotonic() + seconds
    return lambda: time.monotonic() >= when


def test_a_command_past_its_timeout_is_stopped_and_keeps_what_it_wrote() -> None:
    script = "echo partial; echo trace >&2; exec sleep 30"
    start = time.monotonic()
    result = LocalExecutor().run(Command(("sh", "-c", script), timeout=0.5))
    assert time.monotonic() - start < 1.5
    assert (result.returncode, result.interrupted) == (TIMED_OUT, False)
    assert result.stdout == "partial\n"
    assert result.stderr == "trace\ntimed out after 0.5 s"


def test_an_interrupt_stops_a_running_command_within_a_poll() -> None:
    start = time.monotonic()
    result = LocalExecutor().run(Command(("sleep", "30"), interrupt=after(0.3)))
    assert time.monotonic() - start < 0.6
    assert (result.returncode, result.interrupted, result.stderr) == (INTERRUPTED, True, "interrupted")


def test_a_command_that_ignores_sigterm_is_killed_two_seconds_later() -> None:
    script = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(30)"
    )
    start = time.monotonic()
    result = LocalExecutor().run(Command((sys.executable, "-c", script), interrupt=after(0.3)))
    assert 2.2 < time.monotonic() - start < 2.9
    assert (result.returncode, result.stdout) == (INTERRUPTED, "up\n")


def test_an_interrupt_and_a_timeout_stop_a_shielded_command_and_what_it_started() -> None:
    start = time.monotonic()
    result = LocalExecutor().run(Command(("sh", "-c", "sleep 30; echo never"), shield=True, timeout=0.3))
    assert time.monotonic() - start < 1.0
    assert (result.returncode, result.stdout) == (TIMED_OUT, "")


def test_output_held_open_by_an_orphan_is_given_up_a_second_after_the_deadline() -> None:
    start = time.monotonic()
    result = LocalExecutor().run(Command(("sh", "-c", "sleep 3 & echo started"), timeout=0.3))
    assert time.monotonic() - start < 1.6
    assert (result.returncode, result.stdout) == (TIMED_OUT, "started\n")


def test_a_stdin_kept_open_is_only_closed_once_the_process_is_gone() -> None:
    start = time.monotonic()
    held = LocalExecutor().run(Command(("cat",), keep_stdin_open=True, interrupt=after(0.5)))
    assert time.monotonic() - start >= 0.5
    assert held.interrupted
    start = time.monotonic()
    closed = LocalExecutor().run(Command(("cat",), interrupt=after(0.5)))
    assert time.monotonic() - start < 0.3
    assert (closed.returncode, closed.interrupted) == (0, False)


def test_input_is_fed_whole_and_a_megabyte_of_output_is_read_whole() -> None:
    data = "".join(f"line {i}\n" for i in range(200_000))
    script = "import sys; d = sys.stdin.read(); sys.stdout.write(d); sys.stderr.write(d[:70000])"
    result = LocalExecutor().run(Command((sys.executable, "-c", script), stdin=data, timeout=5))
    assert len(data) > 1024 * 1024
    assert (result.returncode, result.stdout, result.stderr) == (0, data, data[:70000])


def test_output_keeps_the_text_modes_decoding() -> None:
    script = "import sys; sys.stdout.buffer.write(b'a\\r\\nb\\rc\\xff\\n')"
    assert LocalExecutor().run(Command((sys.executable, "-c", script))).stdout == "a\nb\nc\ufffd\n"


def test_run_all_runs_the_commands_at_once_and_answers_in_order() -> None:
    commands = [Command(("sh", "-c", f"sleep 0.5; echo {i}")) for i in range(3)]
    start = time.monotonic()
    results = LocalExecutor().run_all(commands)
    assert time.monotonic() - start < 1.2
    assert [r.stdout for r in results] == ["0\n", "1\n", "2\n"]


def test_one_timeout_in_a_batch_does_not_cut_the_others_short() -> None:
    slow, quick = Command(("sleep", "30"), timeout=0.3), Command(("sh", "-c", "sleep 0.6; echo done"))
    first, second = LocalExecutor().run_all([slow, quick])
    assert (first.returncode, second.returncode, second.stdout) == (TIMED_OUT, 0, "done\n")


def test_a_batch_with_a_missing_program_stops_what_it_had_started() -> None:
    start = time.monotonic()
    with pytest.raises(CommandNotFound):
        LocalExecutor().run_all([Command(("sleep", "30")), Command(("no-such-tool",))])
    assert time.monotonic() - start < 1.0


def test_the_interrupt_is_not_part_of_what_a_command_is() -> None:
    assert Command(("true",), interrupt=lambda: True) == Command(("true",))
    assert "interrupt" not in repr(Command(("true",), interrupt=lambda: True))

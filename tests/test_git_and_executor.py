"""Command builders compared as argv, the executor seam, and the shipped FakeExecutor."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline import git
from pipeline.errors import CommandFailed, CommandNotFound
from pipeline.executor import Command, FakeExecutor, LocalExecutor, Result

HERE = Path("/repo")


def test_state_questions_are_three_git_processes() -> None:
    assert git.rev_parse_state(HERE).argv == (
        "git",
        "rev-parse",
        "--show-toplevel",
        "--is-shallow-repository",
    )
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
            git.rev_parse_state(HERE).argv: (0, "/repo\nfalse\n", ""),
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
    )
    assert [c.argv[1] for c in fake.calls] == ["rev-parse", "status", "for-each-ref"]


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

"""The variables file as compose reads it: parsed, changed line by line, values written back exactly;
and what ``invoke setenv`` accepts as input (refused with a line naming the flag, file and line)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.envfile import (
    Changes,
    Diff,
    changes_of,
    edit,
    parse,
    parse_assignments,
    parse_set,
    render_value,
)
from pipeline.errors import InputError

TRICKY = [
    "plain",
    "",
    "with space",
    "hash # inside",
    "x#y",
    "dollar $HOME and ${USER}",
    "$$double",
    "single ' quote",
    'double " quote',
    "back\\slash",
    "both ' and \" and \\ and $X",
    "trailing\\",
    "tab\there",
    "émoji ✓",
    "=starts=with=equals",
    "'quoted'",
    '"dq"',
    "  padded  ",
]


def compose_binary() -> str | None:
    """The compose CLI (``config`` needs no engine): on PATH, or the sandbox's."""
    sandbox = Path(os.environ.get("SANDBOX_DIR", "/tmp/sbx")) / "tools" / "docker-compose"
    return shutil.which("docker-compose") or (str(sandbox) if sandbox.exists() else None)


def read_by_compose(binary: str, folder: Path, text: str) -> dict[str, str]:
    """What compose makes of a variables file: the environment of a service loading it whole."""
    (folder / ".env").write_text(text)
    (folder / "compose.yaml").write_text("services:\n  a:\n    image: busybox\n    env_file: [.env]\n")
    done = subprocess.run(
        [binary, "--project-directory", str(folder), "-p", "x", "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    environment = json.loads(done.stdout)["services"]["a"].get("environment") or {}
    return {k: (v or "").replace("$$", "$") for k, v in environment.items()}  # `config` prints $ as $$


@pytest.mark.parametrize("value", TRICKY)
def test_a_written_value_is_read_back_by_our_parser_exactly(value: str) -> None:
    [line] = parse(f"KEY={render_value(value)}\n")
    assert (line.key, line.value, line.literal) == ("KEY", value, True)


def test_compose_reads_back_every_written_value_exactly(tmp_path: Path) -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("no docker compose binary here")
    keys = {f"K{i}": value for i, value in enumerate(TRICKY)}
    text = edit("", Changes(tuple(keys.items()))).text
    assert read_by_compose(binary, tmp_path, text) == keys


def test_compose_and_our_parser_agree_on_a_hand_written_file(tmp_path: Path) -> None:
    text = (
        "# comment\nA=plain\nB=a b   # inline\nC=x#y\nD='single \\n \"q\" # no comment'\n"
        'E="esc \\n \\\\ \\" \\$"\nexport F=exported\nG = spaced\nH="multi\nline"\nK=\nM=\'a\\\'b\'\n'
    )
    ours = {line.key: line.value for line in parse(text) if line.key}
    binary = compose_binary()
    if binary is None:
        pytest.skip("no docker compose binary here")
    assert read_by_compose(binary, tmp_path, text) == ours


def test_an_edit_keeps_order_comments_and_untouched_lines_byte_for_byte() -> None:
    text = "# top\nexport A='1 2'\n\nB=old   # why\n  C=keep\n# end\n"
    edited = edit(text, Changes(sets=(("B", "new value"), ("D", "d")), unsets=("A",)))
    assert edited.text == "# top\n\nB='new value'\n  C=keep\n# end\nD=d\n"
    assert edited.diff == Diff(added=("D",), changed=("B",), removed=("A",))
    assert edited.values == ["1 2", "old", "keep"]


def test_setting_a_key_to_the_value_it_has_changes_nothing() -> None:
    text = "A='same'\nB=x\n"
    edited = edit(text, Changes(sets=(("A", "same"),), unsets=("MISSING",)))
    assert edited.text == text and edited.diff.empty


def test_a_value_compose_would_expand_is_rewritten_literally_even_when_it_looks_the_same() -> None:
    edited = edit("A=$HOME\n", Changes(sets=(("A", "$HOME"),)))
    assert edited.text == "A='$HOME'\n" and edited.diff.changed == ("A",)


def test_a_repeated_key_keeps_its_first_place_and_loses_its_repeats() -> None:
    edited = edit("A=1\nB=2\nA=3\n", Changes(sets=(("A", "3"),)))
    assert edited.text == "A=3\nB=2\n" and edited.diff.changed == ("A",)


def test_a_file_without_a_final_newline_and_an_unclosed_quote_are_kept() -> None:
    text = "A=1\nB='never closed\nC=3"
    edited = edit(text, Changes(sets=(("D", "4"),)))
    assert edited.text == "A=1\nB='never closed\nC=3\nD=4\n"


def test_set_and_unset_flags_become_one_change_where_set_wins_over_the_file() -> None:
    changes = changes_of(["A=x=y", "B="], ["C", "C"], [("A", "from file"), ("E", "e")])
    assert changes == Changes(sets=(("A", "x=y"), ("E", "e"), ("B", "")), unsets=("C",))


@pytest.mark.parametrize(
    ("sets", "unsets", "message"),
    [
        (["1BAD=x"], [], "--set: '1BAD' is not a variable name"),
        (["A-B=x"], [], "--set: 'A-B' is not a variable name"),
        (["NOEQUALS"], [], "--set: 'NOEQUALS' is not KEY=VALUE"),
        (["A=x"], ["A"], "--unset: A is also set; a key is either set or unset"),
        ([], ["bad key"], "--unset: 'bad key' is not a variable name"),
        ([], [], "give at least one --set KEY=VALUE, --unset KEY or --from-file FILE"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(sets: list[str], unsets: list[str], message: str) -> None:
    with pytest.raises(InputError) as caught:
        changes_of(sets, unsets, [])
    assert str(caught.value).removeprefix("setenv: ").startswith(message)


@pytest.mark.parametrize("value", ["two\nlines", "cr\rhere", "nul\0here"])
def test_a_value_with_a_newline_or_nul_is_refused_without_showing_it(value: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_set(f"TOKEN={value}")
    assert str(caught.value) == "--set: the value of TOKEN holds a newline, carriage return or NUL"


def test_an_argument_without_equals_that_is_no_name_is_never_echoed() -> None:
    with pytest.raises(InputError) as caught:
        parse_set("hunter2-the-password")
    assert "hunter2" not in str(caught.value)


def test_a_values_file_allows_comments_blanks_export_and_quotes() -> None:
    text = "# values\n\nexport A=1\nB='two words'\nC=\"$keep\"\nD=x # not a comment here\n"
    assert parse_assignments(text, "prod.env") == [
        ("A", "1"), ("B", "two words"), ("C", "$keep"), ("D", "x # not a comment here"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nnot a pair\n", "prod.env, line 2: not KEY=VALUE"),
        ("# c\n9A=1\n", "prod.env, line 2: '9A' is not a variable name"),
        ("A='open\n", "prod.env, line 1: the value of A opens a quote it never closes"),
    ],
)
def test_a_bad_values_file_line_is_refused_naming_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_assignments(text, "prod.env")
    assert str(caught.value).startswith(message)

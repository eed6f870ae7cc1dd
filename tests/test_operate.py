"""`status` and `history` over hosts whose records are damaged or hostile.

Each fake host runs the real read script with a real ``sh`` on its own directory, so what reaches
the parser is what a host would send; the output must stay data: no traceback, no control character.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gitrepos import invoke

from pipeline.config import load_config
from pipeline.engine.values import LockInfo
from pipeline.errors import ExitCode, InputError
from pipeline.executor import Command, FakeExecutor, Result
from pipeline.journal import Entry
from pipeline.operate import HISTORY_MAX, check_limit, history, status
from pipeline.remote import unguard

PATH = "/srv/app"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
HOSTILE = "\x1b[2J\x1b]0;owned\x07\rweb9: serving 6.6.6\n"


def entry(version: str, result: str = "healthy", **fields: Any) -> Entry:
    base = dict(commit=None, previous_version=None, db_before=None, db_after=None, reason="", who="ci")
    return Entry("deploy", version, result=result, at="2026-11-01T00:00:00Z", **{**base, **fields})


class Hosts:
    """Hosts web1 and web2 as directories under ``root``; every command is recorded, then run by sh."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.executor = FakeExecutor(handler=self.answer)
        self.seen: list[tuple[str, ...]] = []

    def state(self, host: str) -> Path:
        folder = self.root / host / "srv" / "app.pipeline"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def answer(self, command: Command) -> Result:
        if "-O" in command.argv:
            return Result(command, 0)
        host = command.argv[-2]
        _, remote = unguard(shlex.split(command.argv[-1]))
        self.seen.append(remote)
        local = [a.replace(PATH, f"{self.root}/{host}{PATH}") if a.startswith(PATH) else a for a in remote]
        done = subprocess.run(local, capture_output=True, text=True, timeout=10, errors="replace")
        return Result(command, done.returncode, done.stdout, done.stderr)


@pytest.fixture
def hosts(tmp_path: Path) -> Hosts:
    found = Hosts(tmp_path)
    found.state("web1").joinpath("journal.jsonl").write_text(
        entry("1.0.0").line()
        + entry("2.0.0", "rolled_back", reason="health failed", db_before="0003", db_after="0004").line()
        + entry("1.0.0", "restored").line()
    )
    found.state("web2").joinpath("journal.jsonl").write_text(
        entry("1.0.0").line()
        + '{"event": "deploy", "version": "9.9.9", "result": "healthy", "who": {"x": 1}}\n'
        + "not json\n"
        + entry("1.0.0", who=HOSTILE, reason=HOSTILE).line()
    )
    lock = LockInfo(who=HOSTILE, at="2026-11-01T00:00:00Z", version="2.0.0", run="r1")
    found.state("web2").joinpath("lock").write_text(lock.to_json())
    return found


CONFIG = load_config(
    {"environments": {"prod": {"target": "compose", "hosts": ["web1", "web2"], "path": PATH}}}
)


def run(task: Any, hosts: Hosts, *args: Any, **kwargs: Any) -> list[str]:
    said: list[str] = []
    assert task(CONFIG, "prod", hosts.executor, said.append, *args, **kwargs) == ExitCode.OK
    return "\n".join(said).split("\n")


def test_status_names_each_damaged_line_and_prints_no_control_character(hosts: Hosts) -> None:
    lines = run(status, hosts)
    assert lines[0] == "web1: serving 1.0.0"
    assert lines[1] == "  last: deploy 1.0.0 restored by ci at 2026-11-01T00:00:00Z"
    assert "web2: serving 1.0.0" in lines
    assert "  DAMAGED journal line 2: who: an object where a string belongs (ignored)" in lines
    assert "  DAMAGED journal line 3: not JSON (a torn write or a foreign line) (ignored)" in lines
    assert not any(CONTROL.search(line) for line in lines)
    assert not any(line.startswith("web9") for line in lines)
    locked = next(line for line in lines if line.startswith("  LOCKED by "))
    assert locked.startswith("  LOCKED by \\x1b[2J\\x1b]0;owned\\x07\\x0dweb9: serving 6.6.6\\x0a since ")


def test_status_json_has_the_same_facts_and_words_as_the_text(hosts: Hosts) -> None:
    data = json.loads("\n".join(run(status, hosts, as_json=True)))
    web1, web2 = data["hosts"]
    assert data["environment"] == "prod"
    assert (web1["host"], web1["serving"], web1["last"]["result"], web1["locked"]) == (
        "web1",
        "1.0.0",
        "restored",
        None,
    )
    assert (web1["damaged"], web1["journal_unreadable"], web1["journal_cut"], web1["interrupted"]) == (
        [],
        None,
        False,
        None,
    )
    assert web2["damaged"] == [
        {"line": 2, "reason": "who: an object where a string belongs"},
        {"line": 3, "reason": "not JSON (a torn write or a foreign line)"},
    ]
    assert web2["locked"]["who"] == HOSTILE and web2["locked"]["run"] == "r1"
    assert web2["locked"]["age_seconds"] > 0 and web2["locked"]["damaged"] == ""
    assert web2["last"]["who"] == HOSTILE


def test_status_json_shows_an_interrupted_run(hosts: Hosts) -> None:
    started = entry("2.0.0", "in_progress", previous_version="1.0.0", run="r1", phase="deploying")
    with (hosts.state("web2") / "journal.jsonl").open("a") as journal:
        journal.write(started.line())
    data = json.loads("\n".join(run(status, hosts, as_json=True)))
    assert data["hosts"][1]["interrupted"] == {"run": "r1", "version": "2.0.0", "phase": "deploying"}
    assert any(line.startswith("  INTERRUPTED: run r1 ") for line in run(status, hosts))


def test_a_journal_that_cannot_be_read_is_unreadable_in_status(hosts: Hosts) -> None:
    (hosts.state("web1") / "journal.jsonl").unlink()
    (hosts.state("web1") / "journal.jsonl").mkdir()
    data = json.loads("\n".join(run(status, hosts, as_json=True)))
    assert "is not a regular file" in data["hosts"][0]["journal_unreadable"]
    assert any(line.startswith("  JOURNAL UNREADABLE: ") for line in run(status, hosts))


def test_many_damaged_lines_are_counted_in_text_and_all_listed_in_json(hosts: Hosts) -> None:
    (hosts.state("web1") / "journal.jsonl").write_text(entry("1.0.0").line() + "\x1b[2J\n" * 40)
    lines = run(status, hosts)
    assert "  DAMAGED journal: 35 more damaged lines (`--json` lists them all)" in lines
    assert lines.count("  DAMAGED journal line 41: not JSON (a torn write or a foreign line) (ignored)") == 1
    data = json.loads("\n".join(run(status, hosts, as_json=True)))
    assert [d["line"] for d in data["hosts"][0]["damaged"]] == list(range(2, 42))


def test_history_shows_the_result_words_of_the_journal_and_the_damaged_lines(hosts: Hosts) -> None:
    lines = run(history, hosts, 2)
    assert lines[:3] == [
        "web1:",
        "  2026-11-01T00:00:00Z deploy   2.0.0        rolled_back ci db 0003->0004 (health failed)",
        "  2026-11-01T00:00:00Z deploy   1.0.0        restored    ci",
    ]
    assert "  DAMAGED journal line 3: not JSON (a torn write or a foreign line) (ignored)" in lines
    assert not any(CONTROL.search(line) for line in lines)
    data = json.loads("\n".join(run(history, hosts, 2, as_json=True)))
    assert (data["environment"], data["limit"]) == ("prod", 2)
    web1, web2 = data["hosts"]
    assert [(e["version"], e["result"]) for e in web1["entries"]] == [
        ("2.0.0", "rolled_back"),
        ("1.0.0", "restored"),
    ]
    assert web1["entries"][0]["reason"] == "health failed" and web1["damaged"] == []
    assert [d["line"] for d in web2["damaged"]] == [2, 3]
    assert web2["entries"][-1]["who"] == HOSTILE


@pytest.mark.parametrize("limit", [0, -5, HISTORY_MAX + 1, "abc", "1.5", "", "10" * 50, "١٢"])
def test_a_history_limit_outside_one_to_the_maximum_is_bad_input_before_any_host_is_asked(
    hosts: Hosts, limit: object
) -> None:
    with pytest.raises(InputError, match=rf"^--limit must be a whole number from 1 to {HISTORY_MAX}, got "):
        history(CONFIG, "prod", hosts.executor, print, limit)  # type: ignore[arg-type]
    assert hosts.executor.calls == []


@pytest.mark.parametrize(("limit", "value"), [("1", 1), (" 20 ", 20), (HISTORY_MAX, HISTORY_MAX)])
def test_a_history_limit_from_one_to_the_maximum_is_accepted(limit: object, value: int) -> None:
    assert check_limit(limit) == value  # type: ignore[arg-type]


def test_history_limit_validation_through_the_cli_exits_2_before_ssh(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("from pipeline.tasks import ns  # noqa: F401\n")
    (tmp_path / "invoke.yaml").write_text(
        "pipeline:\n  environments:\n    prod:\n      target: compose\n"
        "      hosts: [web1.invalid]\n      path: /srv/app\n"
    )
    done = invoke(tmp_path, "history", "--env", "prod", "--limit", "-5")
    assert (done.code, done.stdout) == (2, "")
    assert done.stderr == f"error: --limit must be a whole number from 1 to {HISTORY_MAX}, got '-5'\n"

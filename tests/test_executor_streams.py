"""Output streamed through ``echo`` stays bounded: a ``retain`` keeps only the newest bytes in the Result,
and a line without a newline is handed on in pieces (a log followed for hours must not fill memory)."""

from __future__ import annotations

import sys

from pipeline import executor
from pipeline.executor import Command, Lines, LocalExecutor


def test_retain_keeps_the_newest_output_while_every_line_is_echoed() -> None:
    seen: list[str] = []
    script = "import sys\nfor i in range(20000): print(f'line {i:05d} ' + 'x' * 40)\nsys.stdout.flush()"
    command = Command((sys.executable, "-c", script), echo=lambda line, err: seen.append(line), retain=65536)
    result = LocalExecutor().run(command)
    assert result.ok and len(seen) == 20000 and seen[-1].startswith("line 19999")
    assert result.stdout.endswith("line 19999 " + "x" * 40 + "\n")
    assert len(result.stdout) <= 65536  # the newest chunks only, not the whole megabyte
    assert "line 00000" not in result.stdout


def test_without_retain_the_result_has_everything() -> None:
    script = "for i in range(3000): print(i)"
    result = LocalExecutor().run(Command((sys.executable, "-c", script), echo=lambda line, err: None))
    assert result.stdout.splitlines()[0] == "0" and len(result.stdout.splitlines()) == 3000


def test_a_line_without_newline_is_handed_on_in_pieces(monkeypatch: object) -> None:
    lines = Lines()
    limit = executor.LINE_LIMIT
    pieces = lines.feed(b"a" * (limit * 2 + 10))
    assert [len(p) for p in pieces] == [limit, limit] and len(lines.pending) == 10
    assert lines.feed(b"b\nc") == ["a" * 10 + "b"] and lines.end() == ["c"] and lines.end() == []


def test_broken_utf8_is_replaced_not_fatal() -> None:
    assert Lines().feed(b"caf\xc3\n\xff\n") == ["caf\ufffd", "\ufffd"]

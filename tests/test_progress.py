"""The live status line on a terminal: rewritten in place, cleared before plain lines, never in CI."""

from __future__ import annotations

import io
import threading
import time

import pytest

from pipeline import progress
from pipeline.executor import Command, LocalExecutor
from pipeline.progress import EchoingExecutor, LiveStatus, live_status, progress_wanted
from pipeline.runoutput import RunOutput
from pipeline.secrets import Redactor

SECRET = "s3cret-t0ken-42"


class FakeTTY(io.StringIO):
    """What a terminal receives."""

    def isatty(self) -> bool:
        return True


def screen(written: str) -> list[str]:
    """The lines a terminal shows after this output: ``\\r`` goes back, ``ESC[K`` clears the rest."""
    lines, line, cursor = [], "", 0
    i = 0
    while i < len(written):
        if written.startswith("\x1b[K", i):
            line, i = line[:cursor], i + 3
            continue
        char = written[i]
        if char == "\r":
            cursor = 0
        elif char == "\n":
            lines.append(line)
            line, cursor = "", 0
        else:
            line = line[:cursor] + char + line[cursor + 1 :]
            cursor += 1
        i += 1
    return [*lines, line] if line else lines


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status_on(stream: io.StringIO, clock: Clock, width: int = 80) -> LiveStatus:
    return LiveStatus(stream, Redactor([SECRET]).redact, clock=clock, width=lambda: width)


@pytest.mark.parametrize(
    ("tty", "environ", "wanted"),
    [
        (True, {"TERM": "xterm"}, True),
        (True, {"TERM": "xterm", "NO_COLOR": "1"}, True),  # no colour, but still a status line
        (True, {"TERM": "dumb"}, False),
        (True, {"CI": "true"}, False),
        (True, {"CI": "0"}, True),
        (True, {"GITHUB_ACTIONS": "true"}, False),
        (False, {"TERM": "xterm"}, False),
    ],
)
def test_a_status_line_only_on_a_terminal_outside_ci(
    tty: bool, environ: dict[str, str], wanted: bool
) -> None:
    stream = FakeTTY() if tty else io.StringIO()
    assert progress_wanted(stream, environ) is wanted
    found = live_status(stream, environ, str)
    assert (found is not None) is wanted
    if found is not None:
        assert found.colour is ("NO_COLOR" not in environ)


def test_a_long_stage_is_redrawn_in_place_with_its_host_elapsed_seconds_and_last_line_redacted() -> None:
    stream, clock = FakeTTY(), Clock()
    status = status_on(stream, clock)
    with status.activity("deploy", "web1"):
        echo = status.echo_for_this_thread()
        assert echo is not None
        echo(f"pulling {SECRET} layer\x1b[2J 1/3", False)
        status.draw()
        assert stream.getvalue() == ""  # not long yet
        clock.now += 2.0
        status.draw()
        first = stream.getvalue()
        assert first == "\r\x1b[Kdeploy [web1] 2s  web1: pulling *** layer\\x1b[2J 1/3"
        status.draw()
        assert stream.getvalue() == first  # nothing changed: nothing written
        echo("pulled 3/3", True)
        clock.now += 1.0
        status.draw()
    assert stream.getvalue().endswith("\r\x1b[Kdeploy [web1] 3s  web1: pulled 3/3")
    assert SECRET not in stream.getvalue()
    status.close()
    assert screen(stream.getvalue()) == []  # cleared at the end


def test_the_line_is_cleared_before_a_plain_line_so_the_screen_reads_as_the_plain_output() -> None:
    stream, clock = FakeTTY(), Clock()
    out = RunOutput(lambda line: stream.write(line + "\n"), {"TERM": "xterm"}, stream)
    assert out.live is not None
    out.live = status_on(stream, clock)
    out.say("-> deploy [web1, web2]")
    with out.activity("deploy", "web1"), out.activity("deploy", "web2"):
        clock.now += 5
        out.live.draw()
        out.say("   tolerated: 1 of 2 units failed")  # a line while the status shows
        assert "deploy [web1, web2] 5s" in stream.getvalue()
    out.say("deploy prod: OK")
    out.close()
    assert screen(stream.getvalue()) == [
        "-> deploy [web1, web2]",
        "   tolerated: 1 of 2 units failed",
        "deploy prod: OK",
    ]


def test_the_line_never_wraps_a_narrow_terminal() -> None:
    stream, clock = FakeTTY(), Clock()
    status = status_on(stream, clock, width=20)
    with status.activity("migrate", "database-host-with-a-long-name"):
        clock.now += 1
        status.draw()
    assert len(stream.getvalue().removeprefix("\r\x1b[K")) == 19


def test_a_command_in_an_activity_reports_its_lines_through_the_executor() -> None:
    stream, clock = FakeTTY(), Clock()
    status = status_on(stream, clock)
    executor = EchoingExecutor(LocalExecutor(), status)
    with status.activity("deploy", "web1"):
        result = executor.run(Command(("sh", "-c", f"echo one; echo 'two {SECRET}'; echo")))
        clock.now += 1
        assert status.render() == "deploy [web1] 1s  web1: two ***"
    assert result.stdout == f"one\ntwo {SECRET}\n\n"  # what the caller gets is untouched
    outside = Command(("true",))
    assert executor._with_echo(outside) is outside  # no activity in this thread: no echo


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt], ids=["a bug", "a signal"])
def test_the_ticker_draws_a_few_times_a_second_and_is_gone_after_the_run_even_on_an_error(
    monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    monkeypatch.setattr(progress, "LONG_SECONDS", 0.0)
    stream = FakeTTY()
    with pytest.raises(error), RunOutput(lambda line: None, {"TERM": "xterm"}, stream) as out:
        assert any(t.name == "progress" for t in threading.enumerate())
        with out.activity("health", "web1"):
            deadline = time.monotonic() + 2
            while "health [web1]" not in stream.getvalue() and time.monotonic() < deadline:
                time.sleep(0.01)
            raise error("stop")
    assert "health [web1]" in stream.getvalue()
    assert not any(t.name == "progress" for t in threading.enumerate())
    assert screen(stream.getvalue()) == []
    draws = stream.getvalue().count("\r\x1b[K")
    assert draws <= 2 / progress.TICK_SECONDS + 2  # at most a few a second


def test_not_on_a_terminal_nothing_is_rewritten_and_no_thread_runs() -> None:
    stream, said = io.StringIO(), []
    with RunOutput(said.append, {"TERM": "xterm"}, stream) as out:
        assert out.live is None and not any(t.name == "progress" for t in threading.enumerate())
        out.say("-> deploy")
        with out.activity("deploy", "web1"):
            pass
    assert said == ["-> deploy"] and stream.getvalue() == ""


def test_the_line_shows_the_newest_output_of_any_unit_and_the_last_part_of_a_rewritten_line() -> None:
    stream, clock = FakeTTY(), Clock()
    status = status_on(stream, clock)
    heard = {}
    with status.activity("deploy", "web1"):
        heard["web1"] = status.echo_for_this_thread()
        with status.activity("deploy", "web2"):
            heard["web2"] = status.echo_for_this_thread()
            clock.now += 3
            heard["web2"]("Pulling 10%\rPulling 55%\r", False)
            assert status.render() == "deploy [web1, web2] 3s  web2: Pulling 55%"
            heard["web1"]("Started", True)
            assert status.render() == "deploy [web1, web2] 3s  web1: Started"
            heard["web1"]("   ", True)  # a blank line does not hide the last one
            assert status.render().endswith("web1: Started")

"""``invoke logs``: the flags, the argv and API query they become, the printed lines, and the compose
hosts behind the shipped FakeExecutor (which host says what, what runs there, the exit code)."""

from __future__ import annotations

import io
import json
import shlex
import signal
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from gitrepos import Repo, invoke

from pipeline.compose import Project
from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.executor import TIMED_OUT, Command, FakeExecutor, Lines, Result
from pipeline.helm import Workload
from pipeline.journal import Entry
from pipeline.logs import (
    DEFAULT_TAIL,
    MAX_TAIL,
    LogRequest,
    Printer,
    Since,
    Stop,
    compose_logs,
    kube_log_query,
    outcome,
    parse_since,
    parse_tail,
    request_of,
    show_logs,
)
from pipeline.remote import GUARD_SCRIPT, unguard
from pipeline.targets.composelogs import following
from pipeline.targets.helmlogs import Source, Stream, chosen, pump, selector_of, wait

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
PROJECT = Project("/srv/app", "compose.yaml", "app", "APP_VERSION", "git", "/srv/app.pipeline/releases")
HEAD = ("env", "APP_VERSION=1.2.0", "docker", "compose", "--project-directory", "/srv/app")
HEAD += ("-f", "/srv/app/compose.yaml", "-p", "app")


# -- flags ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"), [("0", 0), ("1", 1), ("100", 100), (" 250 ", 250), ("10000", 10000)]
)
def test_tail_takes_whole_numbers_from_0_to_10000(text: str, lines: int) -> None:
    assert parse_tail(text) == lines


@pytest.mark.parametrize("text", ["-1", "10001", "1.5", "ten", "", "1e3", "٣", "100000000"])
def test_a_tail_that_is_not_a_whole_number_in_range_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(InputError, match=r"--tail must be a whole number of lines from 0 to 10000"):
        parse_tail(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1h30m", 5400),
        ("90s", 90),
        ("1h0m5s", 3605),
        ("8784h", 31622400),
    ],
)
def test_since_takes_durations_as_docker_and_kubectl_do(text: str, seconds: int) -> None:
    since = parse_since(text, NOW)
    assert since == Since(seconds=seconds)
    assert since.compose == f"{seconds}s"
    assert since.query == {"sinceSeconds": str(seconds)}


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-12-01T09:30:00Z", "2026-12-01T09:30:00Z"),
        ("2026-12-01t09:30:00z", "2026-12-01T09:30:00Z"),
        ("2026-12-01T11:30:00+02:00", "2026-12-01T09:30:00Z"),
        ("2026-11-30T23:30:00.123456789-10:00", "2026-12-01T09:30:00Z"),
    ],
)
def test_since_takes_an_rfc3339_time_given_to_both_targets_in_utc(text: str, utc: str) -> None:
    since = parse_since(text, NOW)
    assert since == Since(time=utc)
    assert since.compose == utc
    assert since.query == {"sinceTime": utc}


@pytest.mark.parametrize(
    "text",
    ["0s", "1d", "10", "m", "1m1h", "-5m", "8785h", "2026-12-01", "2026-12-01T09:30:00",
     "2026-13-01T09:30:00Z", "2026-12-05T00:00:00Z", "yesterday", "10m; rm -rf /"],
)  # fmt: skip
def test_a_since_neither_duration_nor_time_is_refused_with_examples(text: str) -> None:
    with pytest.raises(InputError, match=r"^--since"):
        parse_since(text, NOW)


def test_without_tail_100_lines_and_with_since_every_line_since_up_to_the_bound() -> None:
    assert request_of(None, None, None, False) == LogRequest(tail=DEFAULT_TAIL)
    assert request_of(None, None, "10m", False).tail == MAX_TAIL
    assert request_of(None, "5", "10m", True) == LogRequest("", 5, Since(seconds=600), True)


@pytest.mark.parametrize("service", ["", "api worker", "api;id", "-f", "../x", "a\x1b[2J"])
def test_a_service_that_cannot_be_a_name_is_refused(service: str) -> None:
    with pytest.raises(InputError, match="--service must be a service, container or workload name"):
        request_of(service, None, None, False)


# -- what runs -------------------------------------------------------------------------------------------


def test_compose_logs_argv_is_the_runbooks_command_for_the_release() -> None:
    assert compose_logs(PROJECT, "1.2.0", LogRequest()) == (*HEAD, "logs", "--no-color", "--tail", "100")
    asked = LogRequest("api", 20, Since(time="2026-12-01T09:30:00Z"), follow=True, timestamps=True)
    assert compose_logs(PROJECT, "1.2.0", asked) == (
        *HEAD, "logs", "--no-color", "--tail", "20", "--since", "2026-12-01T09:30:00Z",
        "--timestamps", "--follow", "api",
    )  # fmt: skip


def test_the_kubernetes_log_query_per_container() -> None:
    assert kube_log_query("app", LogRequest()) == {"container": "app", "tailLines": "100"}
    asked = LogRequest("", 0, Since(seconds=30), follow=True, timestamps=True)
    assert kube_log_query("app", asked) == {
        "container": "app", "tailLines": "0", "sinceSeconds": "30", "timestamps": "true", "follow": "true",
    }  # fmt: skip


def test_a_followed_command_is_guarded_without_deadline_and_ends_with_its_stdin() -> None:
    argv = following(("docker", "compose", "logs", "-f"))
    assert argv[:5] == ("sh", "-c", GUARD_SCRIPT, "pl-guard", "0")  # `timeout 0`: no deadline at all
    assert unguard(argv) == (0.0, ("docker", "compose", "logs", "-f"))


# -- printing -----------------------------------------------------------------------------------------------


def printer(redact: Any = lambda s: s) -> tuple[Printer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Printer(out, err, redact), out, err


def test_each_line_is_prefixed_with_its_padded_source_redacted_and_printable() -> None:
    shown, out, err = printer(lambda s: s.replace("hunter22", "***"))
    shown.sources(["10.0.0.1", "web2"])
    shown.line("web2", "api-1  | password=hunter22\tok\r")
    shown.line("10.0.0.1", "api-1  | \x1b[2Jcleared \u202eevil")
    shown.note("web2", "unreachable over ssh:\nhunter22")
    assert out.getvalue() == (
        "web2     | api-1  | password=***\tok\n10.0.0.1 | api-1  | \\x1b[2Jcleared \\u202eevil\n"
    )
    assert err.getvalue() == "web2: unreachable over ssh:\\x0a***\n"


def test_without_follow_lines_are_printed_source_by_source_in_configuration_order() -> None:
    shown, out, err = printer()
    shown.sources(["web1", "web2"])
    shown.hold()
    for source, text in [("web2", "b1"), ("web1", "a1"), ("web3", "c1"), ("web2", "b2"), ("web1", "a2")]:
        shown.line(source, text)
    shown.line("web1", "warning", is_err=True)
    assert out.getvalue() == err.getvalue() == ""
    shown.release(["web1", "web2"])
    assert out.getvalue().splitlines() == ["web1 | a1", "web1 | a2", "web2 | b1", "web2 | b2", "web3 | c1"]
    assert err.getvalue() == "web1 | warning\n"
    shown.line("web2", "now")  # released: printed as it comes again
    assert out.getvalue().endswith("web2 | now\n")


def test_lines_from_many_sources_at_once_are_never_torn() -> None:
    shown, out, _ = printer()
    lines = Lines()
    chunks = [b"abc", b"def\nghi\n", b"\xc3", b"\xa9\npartial"]
    assert [line for c in chunks for line in lines.feed(c)] == ["abcdef", "ghi", "é"]
    assert lines.end() == ["partial"] and lines.end() == []

    def source(n: int) -> None:
        for i in range(300):
            shown.line(f"h{n}", f"{n}:{i}:" + "x" * 500)

    threads = [threading.Thread(target=source, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    printed = out.getvalue().splitlines()
    assert len(printed) == 1800
    for line in printed:
        name, _, rest = line.partition(" | ")
        n, _, tail = rest.split(":")
        assert name == f"h{n}" and tail == "x" * 500


def test_output_whose_reader_went_stops_like_a_signal_quietly() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    stop = Stop()
    shown = Printer(Closed(), io.StringIO(), lambda s: s, stop.reader_gone)
    shown.line("h1", "one")
    shown.line("h1", "two")
    assert stop.is_set() and shown.closed and stop.signum == 0
    assert outcome(False, stop, follow=True) == (0, "")


@pytest.mark.parametrize(
    ("failed", "signum", "follow", "code", "line"),
    [
        (False, 0, False, 0, ""),
        (True, 0, True, 1, ""),
        (False, signal.SIGINT, True, 0, "logs: stopped following (Ctrl-C)"),
        (True, signal.SIGINT, True, 1, "logs: stopped following (Ctrl-C)"),
        (False, signal.SIGINT, False, 130, "logs: interrupted by SIGINT before every log was read"),
        (False, signal.SIGTERM, True, 143, "logs: stopped by SIGTERM"),
    ],
)
def test_the_exit_code_and_closing_line(
    failed: bool, signum: int, follow: bool, code: int, line: str
) -> None:
    stop = Stop()
    if signum:
        stop.handler(signum, None)
        stop.handler(signal.SIGTERM if signum == signal.SIGINT else signal.SIGINT, None)  # the first counts
    assert outcome(failed, stop, follow) == (code, line)


# -- compose hosts behind the FakeExecutor ---------------------------------------------------------------

HOSTS = ("web1", "web2", "web3")
ENTRY = Entry("deploy", "1.2.0", "a" * 40, None, None, None, "healthy", "", "ci", "2026-11-01", host="x")


class Hosts:
    """Three hosts: what each journal says, what ``docker compose logs`` prints there, who fails."""

    def __init__(self) -> None:
        self.journals = dict.fromkeys(HOSTS, ENTRY.line())
        self.answers: dict[str, tuple[int, str, str]] = {}
        self.seen: list[tuple[str, tuple[str, ...], float | None, Command]] = []
        self.executor = FakeExecutor(handler=self.answer)

    def answer(self, command: Command) -> Result:
        if "-O" in command.argv:
            return Result(command, 0)
        host = command.argv[-2]
        seconds, remote = unguard(shlex.split(command.argv[-1]))
        self.seen.append((host, remote, seconds, command))
        if remote[:2] == ("sh", "-c") and remote[3] == "pl-read":
            text = "\n".join(
                ["--pipeline-section-journal", self.journals[host], "--pipeline-section-lock", "free"]
            )
            return Result(command, 0, text + "\n")
        if "config" in remote:
            return Result(command, 0, "api\nworker\n")
        code, out, err = self.answers.get(host, (0, f"api-1  | hello from {host}\n", ""))
        for line in out.splitlines():
            assert command.echo is not None
            command.echo(line, False)
        return Result(command, code, out, err)

    def logs_on(self, host: str) -> list[tuple[tuple[str, ...], float | None, Command]]:
        return [(r, s, c) for h, r, s, c in self.seen if h == host and "logs" in r]


def run(hosts: Hosts, request: LogRequest, **changes: Any) -> tuple[int, str, str]:
    config = load_config(
        {"environments": {"prod": {"target": "compose", "hosts": list(HOSTS), "path": "/srv/app", **changes}}}
    )
    out, err = io.StringIO(), io.StringIO()
    code = show_logs(config, "prod", hosts.executor, request, out, err)
    return code, out.getvalue(), err.getvalue()


def test_every_host_runs_its_releases_logs_under_the_read_deadline_each_line_prefixed() -> None:
    hosts = Hosts()
    code, out, err = run(hosts, LogRequest(tail=5))
    assert code == 0 and err == ""
    assert out.splitlines() == [f"{h} | api-1  | hello from {h}" for h in HOSTS]
    for host in HOSTS:
        [(remote, seconds, _)] = hosts.logs_on(host)
        assert remote == (*HEAD, "logs", "--no-color", "--tail", "5")
        assert seconds == 30.0  # deadlines.read
    remotes = [" ".join(r) for _, r, _, _ in hosts.seen]
    assert not any("pl-lock" in r or "pl-append" in r or "rm -rf" in r for r in remotes)  # read-only


def test_follow_has_no_deadline_and_keeps_stdin_open_for_the_remote_guard() -> None:
    hosts = Hosts()
    code, _, err = run(hosts, LogRequest(follow=True))
    assert code == 0
    for host in HOSTS:
        [(remote, seconds, command)] = hosts.logs_on(host)
        assert seconds == 0.0 and remote[-1] == "--follow"
        assert command.timeout is None and command.keep_stdin_open and command.shield
    assert err.count("the logs ended (its containers stopped)") == 3  # they ended by themselves here


def test_a_host_unreachable_or_failing_says_so_and_the_others_go_on_with_exit_1() -> None:
    hosts = Hosts()
    hosts.answers["web2"] = (255, "", "ssh: connect to host web2 port 22: Connection refused")
    hosts.answers["web3"] = (TIMED_OUT, "api-1  | slow\n", "")
    code, out, err = run(hosts, LogRequest())
    assert code == 1
    assert "web1 | api-1  | hello from web1" in out and "web3 | api-1  | slow" in out
    assert err.splitlines() == [
        "web2: unreachable over ssh: ssh: connect to host web2 port 22: Connection refused",
        "web3: docker compose logs did not finish within 30 s (deadlines.read); stopped there",
    ]


def test_a_host_with_nothing_deployed_says_so_and_runs_nothing_more() -> None:
    hosts = Hosts()
    hosts.journals["web3"] = ""
    code, out, err = run(hosts, LogRequest())
    assert code == 0
    assert err == "web3: nothing deployed (its journal records no release healthy here)\n"
    assert hosts.logs_on("web3") == [] and "web3" not in out


def test_an_unknown_service_is_refused_naming_the_services_before_any_log_is_read() -> None:
    hosts = Hosts()
    with pytest.raises(InputError, match="--service db: no such service; the services are api, worker"):
        run(hosts, LogRequest(service="db"))
    assert all(hosts.logs_on(h) == [] for h in HOSTS)


def test_a_known_service_reads_only_its_logs() -> None:
    hosts = Hosts()
    code, _, _ = run(hosts, LogRequest(service="worker"))
    assert code == 0
    assert [r[-1] for h in HOSTS for r, _, _ in hosts.logs_on(h)] == ["worker"] * 3


def test_an_image_release_reads_the_compose_file_it_uploaded() -> None:
    hosts = Hosts()
    code, _, _ = run(hosts, LogRequest(), source="image")
    assert code == 0
    [(remote, _, _)] = hosts.logs_on("web1")
    assert "/srv/app.pipeline/releases/1.2.0/compose.yaml" in remote


# -- Helm: which containers, and the streams ---------------------------------------------------------------

WORKLOADS = [
    Workload("Deployment", "app", "ns", {"spec": {"containers": [{"name": "app"}, {"name": "proxy"}]}}),
    Workload("Job", "seed", "ns", {"spec": {"containers": [{"name": "seed"}]}}),
]
SOURCES = [
    Source("app", "app-1", "app"), Source("app", "app-1", "proxy"), Source("seed", "seed-x", "seed"),
]  # fmt: skip


def test_a_helm_service_is_a_workload_or_else_a_container() -> None:
    assert chosen(SOURCES, WORKLOADS, "") == SOURCES
    assert chosen(SOURCES, WORKLOADS, "app") == SOURCES[:2]  # the workload, both its containers
    assert chosen(SOURCES, WORKLOADS, "proxy") == [SOURCES[1]]
    with pytest.raises(InputError, match="the workloads are app, seed, the containers app, proxy, seed"):
        chosen(SOURCES, WORKLOADS, "db")


def test_a_workloads_pods_are_found_by_its_selector() -> None:
    deployment = {"spec": {"selector": {"matchLabels": {"b": "2", "a": "1"}}}}
    assert selector_of(WORKLOADS[0], deployment) == "a=1,b=2"
    assert selector_of(WORKLOADS[1], {}) == "job-name=seed"


class Response:
    """A log stream: ``lines`` at once, then open until shut (``endless``) or ended."""

    def __init__(self, lines: list[bytes], endless: bool, broken: bool = False) -> None:
        self.lines, self.endless, self.broken = lines, endless, broken
        self.down = threading.Event()
        self.closed = False

    def stream(self, amount: int) -> Any:
        yield from self.lines
        if self.broken:
            raise ConnectionResetError("reset by peer")
        if self.endless:
            self.down.wait(30)
            raise OSError("shut down")

    def shutdown(self) -> None:
        self.down.set()

    def close(self) -> None:
        self.closed = True


def streams_of(*responses: Response) -> list[Stream]:
    streams = []
    for n, response in enumerate(responses):
        stream = Stream(Source("app", f"app-{n}", "app"), response)
        stream.thread = threading.Thread(target=pump, args=(stream, shown_to[0]), daemon=True)
        stream.thread.start()
        streams.append(stream)
    return streams


shown_to: list[Printer] = []


@pytest.fixture
def helm_printer() -> Any:
    shown, out, err = printer()
    shown_to[:] = [shown]
    yield shown, out, err
    shown_to.clear()


def test_without_follow_a_stream_still_open_at_the_deadline_is_shut_and_fails(helm_printer: Any) -> None:
    shown, out, err = helm_printer
    done, hanging = Response([b"one\ntw", b"o\n"], False), Response([b"three\n"], True)
    streams = streams_of(done, hanging)
    assert wait(streams, LogRequest(), 0.5, shown, Stop()) is True
    assert sorted(out.getvalue().splitlines()) == ["app-0/app | one", "app-0/app | two", "app-1/app | three"]
    assert err.getvalue() == "app-1/app: the log did not end within 0.5 s (deadlines.read)\n"
    assert done.closed and hanging.closed and hanging.down.is_set()


def test_a_signal_shuts_every_followed_stream_and_a_broken_one_is_noted(helm_printer: Any) -> None:
    shown, _, err = helm_printer
    stop = Stop()
    open_one, broken = Response([b"a\n"], True), Response([b"b\n"], False, broken=True)
    streams = streams_of(open_one, broken)
    threading.Timer(0.3, stop.handler, (signal.SIGINT, None)).start()
    assert wait(streams, LogRequest(follow=True), 30, shown, stop) is True
    assert err.getvalue() == "app-1/app: the log stream broke: ConnectionResetError: reset by peer\n"
    assert open_one.down.is_set() and not any(s.thread and s.thread.is_alive() for s in streams)


# -- through the program a user runs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("--tail", "lots"), "error: --tail must be a whole number of lines from 0 to 10000, got 'lots'"),
        (("--since", "1d"), "error: --since must be a duration such as 30s, 10m, 2h or 1h30m"),
        (("--service", "a b"), "error: --service must be a service, container or workload name"),
        (("--env", "nowhere"), "error: --env: no environment 'nowhere' in pipeline.environments (prod)"),
        (("--env", ""), "error: logs: --env is required"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2_before_any_host_is_asked(
    repo: Repo, args: tuple[str, ...], phrase: str
) -> None:
    config = {"environments": {"prod": {"target": "compose", "hosts": ["127.0.0.1:1"], "path": "/srv/app"}}}
    repo.write("invoke.yaml", json.dumps({"pipeline": config}))
    flags = dict(zip(args[::2], args[1::2], strict=True))
    run = invoke(repo.path, "logs", *[x for k, v in {"--env": "prod", **flags}.items() for x in (k, v)])
    assert run.code == 2, run
    assert run.stderr.splitlines()[0] == phrase or run.stderr.startswith(phrase), run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_the_follow_guard_has_no_deadline_and_stops_its_command_when_stdin_closes() -> None:
    import subprocess
    import time

    process = subprocess.Popen(following(("sleep", "60")), stdin=subprocess.PIPE)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(1.5)  # `timeout 0`: no deadline ends it
        assert process.stdin is not None
        started = time.monotonic()
        process.stdin.close()  # what the host sees when the ssh client is gone
        assert process.wait(10) == 143  # 128 + SIGTERM: the guard stopped `sleep`
        assert time.monotonic() - started < 5
    finally:
        process.kill()
        process.wait()

"""Hosts, ssh client options and the ssh argv that carries a remote argv, compared exactly."""

from __future__ import annotations

import shlex

import pytest

from pipeline.environments import HostConfig, SshConfig
from pipeline.executor import Command, FakeExecutor, Result
from pipeline.remote import (
    GUARD_SCRIPT,
    Host,
    Remote,
    SshOptions,
    close_master,
    guarded,
    parse_host,
    ssh_argv,
    unguard,
)

OPTIONS = SshOptions(control_dir="/tmp/pl-x")
DEFAULT_ARGS = (
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "ControlMaster=auto",
    "-o", "ControlPath=/tmp/pl-x/%C",
    "-o", "ControlPersist=60",
    "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=3",
)  # fmt: skip
WEB1 = Host(name="web1", user="deploy", port=2222, path="/srv/app")
PLAIN = Host(name="web2", user=None, port=None, path="/srv/app")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("deploy@web1:2222", Host("web1", "deploy", 2222, "/srv/app")),
        ("deploy@web1", Host("web1", "deploy", None, "/srv/app")),
        ("web1.example.com:22", Host("web1.example.com", None, 22, "/srv/app")),
        ("10.0.0.5", Host("10.0.0.5", None, None, "/srv/app")),
        ("[::1]:2222", Host("::1", None, 2222, "/srv/app")),
        ("[::1]", Host("::1", None, None, "/srv/app")),
        ("root@[fe80::1]:22", Host("fe80::1", "root", 22, "/srv/app")),
        ("web1", Host("web1", None, None, "/srv/app")),
    ],
)
def test_parse_host_splits_user_name_and_port(address: str, expected: Host) -> None:
    assert parse_host(HostConfig(address=address, path="/srv/app")) == expected


def test_a_host_is_named_in_reports_by_its_name() -> None:
    # Where its records live is the compose target's: tests/test_hostfiles.py.
    assert WEB1.label == "web1"


def test_default_client_args_are_batch_mode_strict_keys_and_a_shared_master() -> None:
    assert OPTIONS.client_args() == DEFAULT_ARGS


def test_client_args_name_the_config_file_first_then_the_identity_and_known_hosts() -> None:
    options = SshOptions(
        control_dir="/tmp/c",
        identity_file="/keys/deploy",
        known_hosts="/keys/known_hosts",
        config_file="/etc/ssh/deploy.conf",
        strict=False,
        connect_timeout=3,
        control_persist=5,
        keepalive=2,
    )
    assert options.client_args() == (
        "-F", "/etc/ssh/deploy.conf",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=3",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "ControlMaster=auto",
        "-o", "ControlPath=/tmp/c/%C",
        "-o", "ControlPersist=5",
        "-o", "ServerAliveInterval=2",
        "-o", "ServerAliveCountMax=3",
        "-i", "/keys/deploy", "-o", "IdentitiesOnly=yes",
        "-o", "UserKnownHostsFile=/keys/known_hosts",
    )  # fmt: skip


def test_ssh_options_come_from_the_environments_ssh_section() -> None:
    config = SshConfig(identity_file="/k", strict_host_key_checking=False, connect_timeout=4)
    assert SshOptions.from_config(config, "/tmp/c") == SshOptions(
        control_dir="/tmp/c", identity_file="/k", strict=False, connect_timeout=4, keepalive=5
    )


def test_the_keepalive_comes_from_the_ssh_section_when_it_has_one() -> None:
    class WithKeepalive:
        identity_file = known_hosts = config_file = ""
        strict_host_key_checking, connect_timeout, control_persist, keepalive = True, 10, 60, 2

    options = SshOptions.from_config(WithKeepalive(), "/tmp/c")  # type: ignore[arg-type]
    assert options.keepalive == 2
    assert options.client_args()[12:16] == ("-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3")


def test_ssh_argv_puts_port_and_user_as_options_and_the_remote_argv_last_as_one_string() -> None:
    argv = ssh_argv(WEB1, ["docker", "compose", "ps"], OPTIONS)
    assert argv == ("ssh", *DEFAULT_ARGS, "-p", "2222", "-l", "deploy", "--", "web1", "docker compose ps")


def test_ssh_argv_for_a_plain_host_has_no_port_or_user() -> None:
    assert ssh_argv(PLAIN, ["true"], OPTIONS) == ("ssh", *DEFAULT_ARGS, "--", "web2", "true")


def test_an_ipv6_host_is_passed_to_ssh_without_brackets() -> None:
    host = parse_host(HostConfig(address="[::1]:2222", path="/srv/app"))
    assert ssh_argv(host, ["true"], OPTIONS)[-5:] == ("-p", "2222", "--", "::1", "true")


def test_a_host_name_that_looks_like_an_option_comes_after_the_end_of_options() -> None:
    host = Host(name="-oProxyCommand=x", user=None, port=None, path="/srv/app")
    assert ssh_argv(host, ["true"], OPTIONS)[-3:] == ("--", "-oProxyCommand=x", "true")


@pytest.mark.parametrize(
    "value",
    ["api; rm -rf /", "$(reboot)", "`id`", "it's", 'a "b" c', "x && y || z", "line\nbreak", "", "*", "-rf"],
)
def test_a_hostile_value_in_the_remote_argv_reaches_the_remote_shell_quoted(value: str) -> None:
    remote = ["docker", "compose", "exec", "-T", value, "echo", value]
    argv = ssh_argv(WEB1, remote, OPTIONS)
    assert argv[-3:-1] == ("--", "web1")
    assert shlex.split(argv[-1]) == remote


def test_close_master_asks_the_master_to_exit_with_the_same_options() -> None:
    assert close_master(WEB1, OPTIONS) == (
        "ssh", *DEFAULT_ARGS, "-O", "exit", "-p", "2222", "-l", "deploy", "web1",
    )  # fmt: skip
    assert close_master(PLAIN, OPTIONS) == ("ssh", *DEFAULT_ARGS, "-O", "exit", "web2")


def test_remote_command_is_shielded_from_terminal_signals_and_keeps_stdin_and_timeout() -> None:
    remote = Remote(WEB1, OPTIONS, FakeExecutor())
    command = remote.command(["tee", "/srv/app/x"], stdin="data\n", timeout=7.5)
    assert command == Command(
        ssh_argv(WEB1, ("timeout", "-k", "5", "8", "tee", "/srv/app/x"), OPTIONS),
        stdin="data\n",
        timeout=27.5,
        shield=True,
    )
    assert remote.command(["true"]).timeout is None


def test_without_a_timeout_a_remote_command_is_the_plain_argv_with_the_interrupt_passed_on() -> None:
    stop = lambda: False  # noqa: E731
    command = Remote(WEB1, OPTIONS, FakeExecutor()).command(["docker", "ps"], interrupt=stop)
    assert command == Command(ssh_argv(WEB1, ["docker", "ps"], OPTIONS), shield=True)
    assert (command.interrupt, command.keep_stdin_open) == (stop, False)


def test_a_timeout_without_input_watches_the_held_open_stdin_on_the_host() -> None:
    stop = lambda: False  # noqa: E731
    command = Remote(WEB1, OPTIONS, FakeExecutor()).command(["sleep", "60"], timeout=3, interrupt=stop)
    assert command == Command(
        ssh_argv(WEB1, guarded(["sleep", "60"], 3, watch_stdin=True), OPTIONS),
        timeout=23,
        shield=True,
        keep_stdin_open=True,
    )
    assert command.interrupt is stop
    assert unguard(shlex.split(command.argv[-1])) == (3.0, ("sleep", "60"))


def test_remote_run_passes_the_timeout_and_interrupt_to_the_executor() -> None:
    stop = lambda: True  # noqa: E731
    fake = FakeExecutor(handler=lambda c: Result(c, 0, repr(unguard(shlex.split(c.argv[-1])))))
    result = Remote(WEB1, OPTIONS, fake).run(["uptime"], timeout=1.5, interrupt=stop)
    assert result.stdout == "(2.0, ('uptime',))"
    assert (fake.calls[0].interrupt, fake.calls[0].timeout) == (stop, 21.5)


def test_guarded_runs_timeout_on_the_host_in_whole_seconds() -> None:
    assert guarded(["tee", "/x"], 7.5, watch_stdin=False) == ("timeout", "-k", "5", "8", "tee", "/x")
    assert guarded(["true"], 0.2, watch_stdin=False)[3] == "1"
    assert guarded(["true"], 0, watch_stdin=False)[3] == "1"
    assert guarded(["true"], 3, watch_stdin=False)[3] == "3"
    with pytest.raises(ValueError, match="program"):
        guarded([], 3, watch_stdin=False)


def test_guarded_with_a_stdin_watch_passes_the_argv_as_positional_parameters() -> None:
    argv = guarded(["docker", "compose", "up", "-d"], 30, watch_stdin=True)
    assert argv == ("sh", "-c", GUARD_SCRIPT, "pl-guard", "30", "docker", "compose", "up", "-d")


def test_the_guard_script_is_fixed_text_that_names_no_argument() -> None:
    assert "$@" in GUARD_SCRIPT
    assert "timeout -k 5" in GUARD_SCRIPT
    for word in ("docker", "30", "pl-guard"):
        assert word not in GUARD_SCRIPT


@pytest.mark.parametrize("watch", [True, False])
@pytest.mark.parametrize(
    "argv",
    [
        ("a; rm -rf /",),
        ("echo", "$(x)", "`id`", "it's", "-rf", "", "line\nbreak"),
        ("timeout", "-k", "5", "3", "true"),
        ("sh", "-c", "exit 3"),
    ],
)
def test_unguard_is_the_inverse_of_guarded_and_the_words_stay_words(
    watch: bool, argv: tuple[str, ...]
) -> None:
    remote = guarded(argv, 2.5, watch_stdin=watch)
    assert unguard(remote) == (3.0, argv)
    quoted = ssh_argv(WEB1, remote, OPTIONS)[-1]
    assert shlex.split(quoted) == list(remote)
    for word in argv:
        if word:
            assert shlex.quote(word) in quoted


def test_a_hostile_word_is_a_single_quoted_word_after_the_script() -> None:
    quoted = ssh_argv(WEB1, guarded(["a; rm -rf /", "$(x)"], 5, watch_stdin=True), OPTIONS)[-1]
    assert quoted.endswith(" pl-guard 5 'a; rm -rf /' '$(x)'")
    quoted = ssh_argv(WEB1, guarded(["a; rm -rf /", "$(x)"], 5, watch_stdin=False), OPTIONS)[-1]
    assert quoted == "timeout -k 5 5 'a; rm -rf /' '$(x)'"


@pytest.mark.parametrize(
    "argv",
    [
        ("docker", "ps"),
        ("timeout", "3", "true"),
        ("timeout", "-k", "5", "x", "true"),
        ("timeout", "-k", "5", "3"),
        ("sh", "-c", "echo hi", "pl-guard", "3", "true"),
        (),
    ],
)
def test_unguard_leaves_any_other_argv_alone(argv: tuple[str, ...]) -> None:
    assert unguard(argv) == (None, argv)


def test_remote_run_goes_through_the_executor_seam() -> None:
    expected = ssh_argv(WEB1, ["cat", "/etc/hostname"], OPTIONS)
    fake = FakeExecutor({expected: (0, "web1\n", "")})
    result = Remote(WEB1, OPTIONS, fake).run(["cat", "/etc/hostname"])
    assert (result.ok, result.stdout) == (True, "web1\n")
    assert [c.argv for c in fake.calls] == [expected]


@pytest.mark.parametrize(("code", "unreachable"), [(255, True), (1, False), (124, False), (0, False)])
def test_only_exit_255_means_ssh_itself_could_not_reach_the_host(code: int, unreachable: bool) -> None:
    remote = Remote(WEB1, OPTIONS, FakeExecutor())
    assert remote.unreachable(Result(remote.command(["true"]), code)) is unreachable

"""Deadlines and interrupts over real OpenSSH: the remote process ends, not only the local client.

A private sshd on 127.0.0.1 (its own keys and config, stopped by its own PID); the remote commands
write their PID to a file so the test can see them go.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.environments import HostConfig
from pipeline.executor import INTERRUPTED, TIMED_OUT, Command, LocalExecutor, Result
from pipeline.remote import SSH_FAILED, Remote, SshOptions, close_master, parse_host

SSHD = Path("/usr/sbin/sshd")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: sshd logs in as root"),
    pytest.mark.skipif(not SSHD.exists(), reason=f"needs {SSHD} (apt-get install openssh-server)"),
]


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def keygen(path: Path) -> str:
    """A new ed25519 key pair at ``path``; its public half."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text()


def wait_listening(port: int, sshd: subprocess.Popen[bytes], seconds: float = 10) -> None:
    """Return once the port accepts connections; fail when sshd died or never listened."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert sshd.poll() is None, "sshd exited at start"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"sshd did not listen on port {port}")


class Server(NamedTuple):
    """The private sshd (by its PID) and a Remote that reaches it."""

    remote: Remote
    pid: int


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A private sshd on 127.0.0.1, reached as root with a connection master in a short /tmp dir."""
    # ControlPath is a unix socket: its path must stay short, hence /tmp rather than pytest's tmp_path.
    with tempfile.TemporaryDirectory(prefix="pl-ssh-", dir="/tmp") as tmp:
        root = Path(tmp)
        host_key, client_key = root / "host_ed25519", root / "client_ed25519"
        host_pub = keygen(host_key)
        (root / "authorized_keys").write_text(keygen(client_key))
        port = free_port()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}")
        (root / "ssh_config").write_text("")  # the user's ~/.ssh/config stays out of it
        (root / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PidFile none\nLogLevel ERROR\n"
        )
        (root / "control").mkdir()
        options = SshOptions(
            control_dir=str(root / "control"),
            identity_file=str(client_key),
            known_hosts=str(root / "known_hosts"),
            config_file=str(root / "ssh_config"),
        )
        host = parse_host(HostConfig(address=f"root@127.0.0.1:{port}", path="/tmp"))
        executor = LocalExecutor()
        argv = [str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")]
        with (root / "sshd.log").open("wb") as log:
            # Its output to the log: an sshd left behind must not hold the test run's pipes open.
            sshd = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            wait_listening(port, sshd)
            yield Server(Remote(host, options, executor), sshd.pid)
        finally:
            try:
                executor.run(Command(close_master(host, options), timeout=10))
            finally:
                # Our own sshd only, by the PID we started it with.
                sshd.terminate()
                sshd.wait(5)


@pytest.fixture
def remote(server: Server) -> Remote:
    """The Remote of the private sshd, sharing one connection master across the tests."""
    return server.remote


def after_start(pid_file: Path, seconds: float) -> Callable[[], bool]:
    """An interrupt that asks to stop ``seconds`` after the marked remote command started.

    Counted from the start on the host, not from the call: on a busy machine the session alone can
    take longer than that, and an interrupt before the command runs proves nothing about the host.
    """
    started: list[float] = []

    def interrupt() -> bool:
        if not started and pid_file.exists() and pid_file.read_text().strip():
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] >= seconds

    return interrupt


def marker(pid_file: Path, then: str = "exec sleep 60") -> list[str]:
    """A remote argv that writes its PID to ``pid_file``, then runs ``then`` as that same process."""
    return ["sh", "-c", f"echo $$ > {shlex.quote(str(pid_file))}; {then}"]


def stat(pid: int) -> tuple[str, str, int] | None:
    """A process's name, state and parent PID, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 1 :].split()
    return name, rest[0], int(rest[1])


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent counts as gone)."""
    found = stat(pid)
    return found is not None and found[1] != "Z"


def marked_pid(pid_file: Path, seconds: float = 10) -> int:
    """The PID the marked remote command wrote, once it has."""
    until = time.monotonic() + seconds
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < until, "the remote command never started"
        time.sleep(0.02)
    return int(pid_file.read_text())


def gone_within(pid_file: Path, seconds: float) -> float:
    """How long the marked remote process took to end, failing past ``seconds``."""
    pid = marked_pid(pid_file)
    start = time.monotonic()
    while alive(pid):
        if time.monotonic() - start >= seconds:
            left = f"{stat(pid)} {Path(f'/proc/{pid}/cmdline').read_bytes()!r}"
            os.kill(pid, signal.SIGKILL)  # the test's own leftover, not to outlive the failure
            raise AssertionError(f"remote process {pid} still runs after {seconds} s: {left}")
        time.sleep(0.02)
    return time.monotonic() - start


def sessions(pid: int, listener: int) -> list[int]:
    """The sshd processes serving a remote command: its ancestors below our own sshd's listener."""
    found = []
    while (info := stat(pid)) is not None and info[2] not in (listener, 0, 1):
        pid = info[2]
        if (parent := stat(pid)) is not None and parent[0] == "sshd":
            found.append(pid)
    assert info is not None and info[2] == listener, "the remote command does not run under our sshd"
    return found


def test_a_deadline_ends_the_command_on_the_host(remote: Remote, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    start = time.monotonic()
    result = remote.run(marker(pid_file), timeout=1)
    took = time.monotonic() - start
    assert result.returncode == TIMED_OUT, result.stderr
    assert took < 4
    gone_within(pid_file, 3)


def test_an_interrupt_ends_the_command_on_the_host_through_the_master(remote: Remote, tmp_path: Path) -> None:
    assert remote.run(["true"], timeout=5).ok
    assert os.listdir(remote.options.control_dir), "no connection master"
    pid_file = tmp_path / "pid"
    start = time.monotonic()
    result = remote.run(marker(pid_file), timeout=30, interrupt=after_start(pid_file, 0.5))
    took = time.monotonic() - start
    assert (result.returncode, result.interrupted) == (INTERRUPTED, True)
    assert took < 3
    gone_within(pid_file, 3)


def test_a_normal_command_keeps_its_output_and_exit_status_through_the_guard(remote: Remote) -> None:
    argv = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    guarded, plain = remote.run(argv, timeout=5), remote.run(argv)
    assert (guarded.returncode, guarded.stdout, guarded.stderr) == (3, "out\n", "err\n")
    assert (plain.returncode, plain.stdout, plain.stderr) == (3, "out\n", "err\n")


def test_input_still_reaches_a_command_with_a_deadline(remote: Remote, tmp_path: Path) -> None:
    target = tmp_path / "written"
    result = remote.run(["tee", str(target)], stdin="first\nsecond\n", timeout=5)
    assert (result.returncode, result.stdout) == (0, "first\nsecond\n")
    assert target.read_text() == "first\nsecond\n"


def test_a_dead_link_is_noticed_by_keepalives_then_the_host_ends_the_command(
    server: Server, tmp_path: Path
) -> None:
    with tempfile.TemporaryDirectory(prefix="pl-ka-", dir="/tmp") as control:
        # A master of its own, keepalives every second: the shared master is not the one that dies.
        options = dataclasses.replace(server.remote.options, control_dir=control, keepalive=1)
        remote = dataclasses.replace(server.remote, options=options)
        pid_file, outcome = tmp_path / "pid", list[Result]()
        runner = threading.Thread(target=lambda: outcome.append(remote.run(marker(pid_file), timeout=10)))
        runner.start()
        pid = marked_pid(pid_file)
        frozen = sessions(pid, server.pid)
        assert frozen
        # The link goes silent: the server side stops answering, keepalives included.
        for session in frozen:
            os.kill(session, signal.SIGSTOP)
        try:
            start = time.monotonic()
            runner.join(6)
            noticed = time.monotonic() - start
        finally:
            for session in frozen:
                os.kill(session, signal.SIGCONT)
        assert not runner.is_alive()
        assert outcome[0].returncode == SSH_FAILED
        assert 2 < noticed < 5
        # Back, the session finds its client gone: the command's stdin ends and the guard kills it,
        # well before its own deadline.
        assert gone_within(pid_file, 1) < 1
        server.remote.executor.run(Command(close_master(remote.host, options), timeout=5))

"""A real HTTP server on 127.0.0.1 that answers a script (200, 429, 500, slowly) and records requests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One answer: a status, a body, headers, and seconds to wait before answering."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    gate: threading.Event | None = None  # with a delay: answer as soon as this is set


@dataclass(frozen=True)
class Received:
    """One request as the server got it."""

    path: str
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Server(ThreadingHTTPServer):
    """Answers the replies in order (the last one repeats) and records every request."""

    daemon_threads = True
    replies: list[Reply]
    received: list[Received]
    arrived: threading.Event  # set by the first request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class _Handler(BaseHTTPRequestHandler):
    server: Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(
            Received(self.path, body, {k.lower(): v for k, v in self.headers.items()})
        )
        self.server.arrived.set()
        reply = self.server.next_reply()
        if reply.gate is not None:
            reply.gate.wait(reply.delay)
        elif reply.delay:
            time.sleep(reply.delay)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            pass  # the client gave up waiting (a timeout test)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(*replies: Reply) -> Iterator[Server]:
    """A server answering ``replies`` (default: 200 ok) for the block's duration."""
    server = Server(("127.0.0.1", 0), _Handler)
    server.received, server.arrived = [], threading.Event()
    server.answer(*(replies or (Reply(),)))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


TELEGRAM_OK = Reply(200, b'{"ok": true, "result": {"message_id": 7}}', {"Content-Type": "application/json"})


def telegram_429(seconds: int) -> Reply:
    """The Bot API's flood control answer."""
    body = {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {seconds}",
        "parameters": {"retry_after": seconds},
    }
    return Reply(429, json.dumps(body).encode(), {"Content-Type": "application/json"})


class FakeClock:
    """A monotonic clock whose sleeps return at once: real time plus the sleeps the calling thread
    asked for (each channel is delivered in its own thread, with its own budget)."""

    def __init__(self) -> None:
        self.slept: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.setdefault(threading.current_thread().name, []).append(seconds)

    def __call__(self) -> float:
        with self._lock:
            return time.monotonic() + sum(self.slept.get(threading.current_thread().name, []))

    def sleeps(self, channel: str) -> list[float]:
        """What the channel's thread (``notify NAME``) slept."""
        return self.slept.get(f"notify {channel}", [])

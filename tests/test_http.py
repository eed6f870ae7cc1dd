"""The HTTP seam: safe URLs in errors, the shipped fake, the real client on a loopback server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.errors import PipelineError
from pipeline.http import (
    BODY_LIMIT,
    FakeHttpClient,
    HttpError,
    HttpRequest,
    HttpResponse,
    UrllibClient,
    safe_url,
)


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Server(ThreadingHTTPServer):
    """A loopback server that records requests and answers from ``routes`` by path."""

    received: list[Received]
    routes: dict[str, tuple[int, bytes, dict[str, str]]]
    release: threading.Event

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.received.append(Received(self.command, self.path, headers, body))
        route = self.path.partition("?")[0]
        if route == "/slow":
            self.server.release.wait(5)
            return
        status, payload, extra = self.server.routes.get(route, (200, b"ok", {}))
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.received, httpd.routes, httpd.release = [], {}, threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://hooks.example.com/hook?token=abc#frag", "https://hooks.example.com/hook"),
        ("https://user:pass@api.example.com:8443/v1/x", "https://api.example.com:8443/v1/x"),
        ("http://a@b:c@host/p", "http://host/p"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("user:pass@host/path", "<invalid URL>"),
        ("http://[::1/", "<invalid URL>"),
        ("", "<invalid URL>"),
    ],
)
def test_safe_url_keeps_scheme_host_port_and_path_only(url: str, safe: str) -> None:
    assert safe_url(url) == safe


def test_an_http_error_never_carries_the_query_or_userinfo() -> None:
    error = HttpError("POST", "https://bot:pw@hooks.example.com/h?token=abc", "timed out")
    assert str(error) == "POST https://hooks.example.com/h failed: timed out"
    assert (error.method, error.url, error.reason) == (
        "POST",
        "https://hooks.example.com/h",
        "timed out",
    )
    assert isinstance(error, PipelineError)


@pytest.mark.parametrize(("status", "ok"), [(199, False), (200, True), (204, True), (301, False)])
def test_a_response_is_ok_only_for_2xx(status: int, ok: bool) -> None:
    assert HttpResponse(status).ok is ok


def test_the_fake_records_every_request_with_its_body_headers_and_timeout() -> None:
    fake = FakeHttpClient(responses=[HttpResponse(200)])
    fake.request("POST", "http://x/h", body=b"{}", headers={"A": "1"}, timeout=2.0)
    fake.request("GET", "http://x/health")
    assert fake.requests == [
        HttpRequest("POST", "http://x/h", b"{}", {"A": "1"}, 2.0),
        HttpRequest("GET", "http://x/health", None, {}, 10.0),
    ]


def test_the_fake_answers_responses_in_order_then_repeats_the_last() -> None:
    refused = HttpError("GET", "http://x/health", "connection refused")
    fake = FakeHttpClient(responses=[refused, HttpResponse(503), HttpResponse(200, "up")])
    with pytest.raises(HttpError) as caught:
        fake.request("GET", "http://x/health")
    assert caught.value is refused
    answers = [fake.request("GET", "http://x/health") for _ in range(3)]
    assert [(r.status, r.body) for r in answers] == [(503, ""), (200, "up"), (200, "up")]


def test_the_fake_answers_from_a_handler() -> None:
    fake = FakeHttpClient(lambda request: HttpResponse(201, request.method))
    assert fake.request("PUT", "http://x/") == HttpResponse(201, "PUT")


def test_the_fake_fails_loudly_with_nothing_to_answer() -> None:
    with pytest.raises(AssertionError, match="no answer for GET http://x/health"):
        FakeHttpClient(responses=[]).request("GET", "http://x/health?token=t")
    with pytest.raises(AssertionError):
        FakeHttpClient().request("GET", "http://x/")


def test_the_fake_refuses_both_a_handler_and_responses() -> None:
    with pytest.raises(ValueError, match="not both"):
        FakeHttpClient(lambda r: HttpResponse(200), responses=[HttpResponse(200)])


def test_a_200_comes_back_with_its_body_and_lowercase_headers(server: Server) -> None:
    server.routes["/health"] = (200, "version 2.0.0 ✓".encode(), {"X-App-Version": "2.0.0"})
    response = UrllibClient().request("GET", f"{server.url}/health")
    assert (response.status, response.body) == (200, "version 2.0.0 ✓")
    assert response.headers["x-app-version"] == "2.0.0"


def test_a_500_is_an_answer_not_an_error(server: Server) -> None:
    server.routes["/health"] = (500, b"database down", {})
    response = UrllibClient().request("GET", f"{server.url}/health")
    assert (response.status, response.body, response.ok) == (500, "database down", False)


def test_a_post_delivers_its_body_and_headers(server: Server) -> None:
    UrllibClient().request(
        "POST",
        f"{server.url}/hook?token=t",
        body=b'{"text": "hi"}',
        headers={"Content-Type": "application/json", "X-Trace": "42"},
    )
    [received] = server.received
    assert (received.method, received.path, received.body) == (
        "POST",
        "/hook?token=t",
        b'{"text": "hi"}',
    )
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-trace"] == "42"


def test_a_huge_body_is_cut_at_64_kib(server: Server) -> None:
    server.routes["/big"] = (200, b"x" * (BODY_LIMIT + 1000), {})
    assert len(UrllibClient().request("GET", f"{server.url}/big").body) == BODY_LIMIT


def test_an_undecodable_body_is_replaced_not_an_error(server: Server) -> None:
    server.routes["/bin"] = (200, b"ok \xff\xfe", {})
    assert UrllibClient().request("GET", f"{server.url}/bin").body == "ok \ufffd\ufffd"


def test_proxy_variables_cannot_reroute_a_loopback_request(
    server: Server, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert UrllibClient().request("GET", f"{server.url}/health").status == 200
    assert len(server.received) == 1


def test_a_refused_connection_is_an_http_error_without_the_query(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/hook?token=s3cr3t-token"
    with pytest.raises(HttpError) as caught:
        UrllibClient().request("POST", url, body=b"{}")
    assert str(caught.value) == (f"POST http://127.0.0.1:{closed_port}/hook failed: connection refused")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_server_that_does_not_answer_in_time_is_an_http_error(server: Server) -> None:
    with pytest.raises(HttpError, match=r"/slow failed: timed out after 0.2 s$") as caught:
        UrllibClient().request("GET", f"{server.url}/slow?token=s3cr3t-token", timeout=0.2)
    assert "s3cr3t-token" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "not an http:// or https:// URL"),
        ("not a url?token=s3cr3t-token", "not an http:// or https:// URL"),
        ("http://127.0.0.1:notaport/?token=s3cr3t-token", "invalid URL or header"),
        ("http://127.0.0.1/a b?token=s3cr3t-token\n", "invalid URL or header"),
    ],
)
def test_a_bad_url_is_an_http_error_that_does_not_quote_it(url: str, reason: str) -> None:
    with pytest.raises(HttpError) as caught:
        UrllibClient().request("GET", url, timeout=1)
    assert caught.value.reason == reason
    assert "s3cr3t-token" not in str(caught.value)


def test_a_header_value_with_a_newline_is_an_http_error_that_does_not_quote_it(
    server: Server,
) -> None:
    with pytest.raises(HttpError, match="invalid URL or header"):
        UrllibClient().request("GET", server.url, headers={"Authorization": "s3cr3t\nX: y"})
    assert server.received == []

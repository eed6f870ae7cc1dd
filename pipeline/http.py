"""The one seam through which the pipeline speaks HTTP (stdlib only), and its fake for tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    import urllib.request

# Health pages and webhook answers are small; a runaway body must not fill the run report.
BODY_LIMIT = 64 * 1024


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: never its userinfo, query or fragment (tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not parts.netloc:
        return "<invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


class HttpError(PipelineError):
    """A request got no HTTP answer (refused, DNS, timeout, bad URL); any status is an answer."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = safe_url(url)
        self.reason = reason
        super().__init__(f"{method} {self.url} failed: {reason}")


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer of any status; header names are lowercase, the body capped at 64 KiB."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class HttpRequest:
    """A request as the fake received it."""

    method: str
    url: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0


class HttpClient(Protocol):
    """Sends one request and returns the answer, whatever its status; raises HttpError if none."""

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        """Send one request; ``timeout`` bounds the connection and each read, in seconds."""
        ...


class UrllibClient:
    """The real client, on urllib; proxy variables are ignored (health checks hit loopback)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        """Send one request; ``timeout`` bounds the connection and each read, in seconds."""
        import http.client
        import urllib.error
        import urllib.request

        if safe_url(url).partition("://")[0] not in ("http", "https"):
            raise HttpError(method, url, "not an http:// or https:// URL")
        try:
            request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
            return _exchange(request, timeout)
        except (ValueError, http.client.InvalidURL):
            # These messages quote the URL or a header value, so they never reach ours.
            raise HttpError(method, url, "invalid URL or header") from None
        except urllib.error.URLError as exc:
            raise HttpError(method, url, _describe(exc.reason, timeout)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise HttpError(method, url, _describe(exc, timeout)) from None


def _exchange(request: urllib.request.Request, timeout: float) -> HttpResponse:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        # Not an error here: a 500 from a health endpoint is an answer the caller judges.
        with exc:
            return HttpResponse(exc.code, _read(exc), _headers(exc.headers.items()))
    with response:
        return HttpResponse(response.status, _read(response), _headers(response.headers.items()))


class _Body(Protocol):
    def read(self, amt: int, /) -> bytes: ...


def _read(response: _Body) -> str:
    chunks: list[bytes] = []
    remaining = BODY_LIMIT
    while remaining > 0:
        chunk = response.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _describe(reason: BaseException | str, timeout: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return str(reason) or type(reason).__name__


Handler = Callable[[HttpRequest], HttpResponse]


class FakeHttpClient:
    """A test double: answers from a handler or a list, and records every request.

    ``FakeHttpClient(responses=[HttpError(...), HttpResponse(200)])`` raises once, then answers
    200 for ever after; a fake with nothing to answer fails the test loudly.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        responses: Sequence[HttpResponse | Exception] | None = None,
    ) -> None:
        if handler is not None and responses is not None:
            raise ValueError("give FakeHttpClient a handler or responses, not both")
        self.handler = handler
        self.responses = list(responses or [])
        self.requests: list[HttpRequest] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        """Record the request; answer from the handler, or the next response (the last repeats)."""
        request = HttpRequest(method, url, body, dict(headers or {}), timeout)
        self.requests.append(request)
        if self.handler is not None:
            return self.handler(request)
        if not self.responses:
            raise AssertionError(f"FakeHttpClient has no answer for {method} {safe_url(url)}")
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

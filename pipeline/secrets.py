"""Secrets as a type that hides itself when printed, and a redactor for every text that leaves."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from pipeline.errors import ConfigError

MASK = "***"
# Shorter values are too likely to occur by accident: redacting "abc" would garble every log.
MIN_LENGTH = 4

_T = TypeVar("_T")


class Secret:
    """A secret string: prints as ``***`` everywhere; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that must send it."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(self._value)


class Redactor:
    """Collects secret values and replaces them with ``***`` in text and JSON-like data."""

    def __init__(self, values: Iterable[str | Secret] = ()) -> None:
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: str | Secret) -> None:
        """Hide this value and every form it takes on the way out (``forms``); short ones are ignored."""
        text = value.reveal() if isinstance(value, Secret) else value
        if len(text) < MIN_LENGTH:
            return
        self._values.update(f for f in forms(text) if len(f) >= MIN_LENGTH)

    def known(self) -> list[str]:
        """Every value hidden (each secret in each of its forms), for a CI log's own masking."""
        return sorted(self._values)

    def redact(self, text: str) -> str:
        """The text with every occurrence of every secret, and every URL's credentials, as ``***``."""
        text = _URL_CREDENTIALS.sub(_mask_credentials, text)
        spans = sorted(_occurrences(text, self._values))
        if not spans:
            return text
        # Overlapping or adjacent occurrences merge into one span, so no fragment of either shows.
        merged = [list(spans[0])]
        for start, end in spans[1:]:
            if start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        parts, position = [], 0
        for start, end in merged:
            parts += [text[position:start], MASK]
            position = end
        parts.append(text[position:])
        return "".join(parts)

    def redact_data(self, obj: _T) -> _T:
        """``redact`` applied to every string in nested dicts, lists, tuples (keys included) and
        dataclass instances (a copy is returned)."""
        if isinstance(obj, str):
            return cast(_T, self.redact(obj))
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            changes = {
                f.name: self.redact_data(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init
            }
            return cast(_T, dataclasses.replace(obj, **changes))
        if isinstance(obj, Mapping):
            return cast(_T, {self.redact_data(k): self.redact_data(v) for k, v in obj.items()})
        if isinstance(obj, list):
            return cast(_T, [self.redact_data(v) for v in obj])
        if isinstance(obj, tuple):
            return cast(_T, tuple(self.redact_data(v) for v in obj))
        return obj

    def redact_error(self, exc: BaseException) -> BaseException:
        """The exception with its message and every attribute (output, results) redacted in place."""
        exc.args = tuple(self.redact_data(a) for a in exc.args)
        for name, value in vars(exc).items():
            setattr(exc, name, self.redact_data(value))
        return exc

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"


def forms(value: str) -> set[str]:
    """The value as it looks after the encodings between us and a reader: URL-encoded (path and
    form), JSON-escaped (ASCII or not), inside shell single quotes, in a Python repr, and base64."""
    found = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        value.replace("'", "'\"'\"'"),  # what shlex.quote makes of it, inside the quotes
        repr(value)[1:-1],
        base64.b64encode(value.encode("utf-8")).decode("ascii"),
    }
    # a JSON string written inside another JSON string (a JSON log line in the JSON report)
    found.add(json.dumps(json.dumps(value)[1:-1])[1:-1])
    for part in _url_parts(value):
        found |= forms(part)
    return found


# A path segment or query value this long in a secret URL is a token (Slack's, a webhook's), not a word.
TOKEN_LENGTH = 16


def _url_parts(value: str) -> list[str]:
    """For a secret URL: its path and query, and the tokens in them, which logs show without the
    host (``POST /services/T0/B0/xoxb...``); nothing for any other value."""
    if "://" not in value or any(c.isspace() for c in value):
        return []
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    words = [*parts.path.split("/"), *(p.partition("=")[2] for p in parts.query.split("&"))]
    found = [w for w in words if len(w) >= TOKEN_LENGTH]
    found += split_credentials(value).secrets
    return [tail, *found] if len(tail) >= TOKEN_LENGTH else found


# scheme://userinfo@ : the userinfo is everything up to the first @ before the host's end.
_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@\s'\"<>]+)@")
_TOKEN_SCHEMES = ("http", "https", "ftp", "ftps")


def _mask_credentials(match: re.Match[str]) -> str:
    scheme, userinfo = match[1], match[2]
    user, colon, _ = userinfo.partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@"
    # a user alone is a token in web URLs (https://TOKEN@github.com), a login name elsewhere (ssh://git@)
    return f"{scheme}{MASK}@" if scheme[:-3].lower() in _TOKEN_SCHEMES else match[0]


@dataclasses.dataclass(frozen=True)
class UrlCredentials:
    """A URL split into the part that may be shown and written, and the credentials it carried."""

    url: str  # without password (and without the user, for web URLs)
    user: str
    password: str

    @property
    def secrets(self) -> list[str]:
        """What must never be shown: the password, or a web URL's user alone (a token)."""
        if self.password:
            return [self.password]
        return [self.user] if self.user and self.web else []

    @property
    def web(self) -> bool:
        """Whether the URL is http(s), where git sends the credentials as HTTP basic auth."""
        return urlsplit(self.url).scheme.lower() in ("http", "https")

    def basic_auth(self) -> str:
        """The ``Authorization`` header git would send for this user and password ("" when none)."""
        if not self.web or not (self.user or self.password):
            return ""
        pair = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def split_credentials(url: str) -> UrlCredentials:
    """A URL and the credentials in its user part (``https://TOKEN@host/..``, ``user:pass@``)."""
    if "://" not in url:
        return UrlCredentials(url, "", "")  # scp-like ``git@host:repo`` or a path: nothing secret
    try:
        parts = urlsplit(url)
        user, password = parts.username or "", parts.password or ""
    except ValueError:
        return UrlCredentials(url, "", "")
    if "@" not in parts.netloc:
        return UrlCredentials(url, "", "")
    from urllib.parse import unquote

    user, password = unquote(user), unquote(password)
    host = parts.netloc.rpartition("@")[2]
    web = parts.scheme.lower() in _TOKEN_SCHEMES
    keep = "" if web or not user else f"{parts.netloc.rpartition('@')[0].partition(':')[0]}@"
    return UrlCredentials(urlunsplit(parts._replace(netloc=keep + host)), user, password)


def redactor_for(config: Any, environ: Mapping[str, str], redactor: Redactor | None = None) -> Redactor:
    """A redactor (a new one, or ``redactor``) that knows every secret of a configuration section: the
    values of the environment variables its ``*_env`` keys name, and the credentials of every URL in it."""
    redactor = Redactor() if redactor is None else redactor
    for key, value in _settings(config):
        if key.endswith("_env"):
            for name in [value] if isinstance(value, str) else value:
                if isinstance(name, str) and environ.get(name, "").strip():
                    redactor.add(environ[name].strip())
        elif isinstance(value, str) and "://" in value:
            credentials = split_credentials(value)
            for secret in credentials.secrets:
                redactor.add(secret)
            if credentials.basic_auth():
                redactor.add(credentials.basic_auth().removeprefix("Basic "))
    return redactor


def _settings(config: Any, key: str = "") -> Iterable[tuple[str, Any]]:
    """Every (key, value) in nested configuration structs, tuples and dicts."""
    names = getattr(type(config), "__struct_fields__", None)
    if names is not None:
        for name in names:
            yield from _settings(getattr(config, name), name)
    elif isinstance(config, Mapping):
        for name, value in config.items():
            yield from _settings(value, str(name))
    elif isinstance(config, (list, tuple)) and not key.endswith("_env"):
        for value in config:
            yield from _settings(value, key)
    else:
        yield key, config


def _occurrences(text: str, values: Iterable[str]) -> Iterable[tuple[int, int]]:
    """Every (start, end) of every value in the text, overlapping occurrences included."""
    for value in values:
        start = text.find(value)
        while start != -1:
            yield start, start + len(value)
            start = text.find(value, start + 1)


def secret_from_env(env: Mapping[str, str], name: str, key: str) -> Secret:
    """The secret held by environment variable ``name``; ``key`` is the config path naming it."""
    # A secret pasted into CI with a trailing newline is the same secret.
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{key}: environment variable {name} is not set")
    return Secret(value)

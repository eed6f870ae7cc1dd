"""Example service deployed by the pipeline's end-to-end tests (stdlib + psycopg2 only).

GET /health -> 200 {"status": "ok", "version": ..., "db_revision": ...}
            -> 500 {"status": "fail", ...} when the release is broken on purpose
            -> 503 {"status": "error", ...} when the database cannot be reached
GET /       -> 200 {"service": "api", "version": ...}

Release knobs (all baked into the image from the source tree):
  VERSION          the version reported by /health
  app/health_mode  "ok" (default), "fail" (/health answers 500), "fail-on-hN" (500 only on the
                   sandbox host hN, from SANDBOX_HOST) or "crash" (the process exits at start)
The HEALTH_MODE environment variable, when set and not empty, overrides app/health_mode.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def read(path: Path, default: str) -> str:
    try:
        return path.read_text().strip() or default
    except OSError:
        return default


VERSION = os.environ.get("APP_VERSION_OVERRIDE") or read(ROOT / "VERSION", "0.0.0")


def health_mode() -> str:
    return (os.environ.get("HEALTH_MODE") or read(ROOT / "app" / "health_mode", "ok")).lower()


def db_revision() -> str | None:
    """Current alembic revision, None when not migrated yet; raises when the DB is unreachable."""
    import psycopg2

    conn = psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SELECT version_num FROM alembic_version")
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def failing(mode: str) -> bool:
    """Whether /health must answer 500 on this host."""
    if mode.startswith("fail-on-"):
        return os.environ.get("SANDBOX_HOST", "") == mode.removeprefix("fail-on-")
    return mode != "ok"


class Handler(BaseHTTPRequestHandler):
    server_version = "example-api"

    def _send(self, code: int, body: dict) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            body = {
                "status": "ok",
                "version": VERSION,
                "db_revision": None,
                "host": socket.gethostname(),
            }
            try:
                body["db_revision"] = db_revision()
            except Exception as exc:  # DB down or misconfigured
                body.update(status="error", error=f"database: {exc}".strip())
                return self._send(503, body)
            if failing(health_mode()):
                body.update(status="fail", error="this release is broken on purpose (health_mode=fail)")
                return self._send(500, body)
            return self._send(200, body)
        if self.path == "/":
            return self._send(200, {"service": "api", "version": VERSION})
        return self._send(404, {"error": "not found"})

    def log_message(self, fmt: str, *args: object) -> None:
        if self.client_address[0] == "127.0.0.1" and self.path == "/health":
            return  # the container healthcheck, every 2 s: keep the logs readable
        sys.stdout.write(f"{self.address_string()} {fmt % args}\n")


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    mode = health_mode()
    print(f"api {VERSION} starting on :{port} (health_mode={mode})", flush=True)
    if mode == "crash":
        print("health_mode=crash: exiting on purpose", flush=True)
        sys.exit(3)
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

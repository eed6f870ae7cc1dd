"""Container healthcheck: exit 0 when GET /health answers 200."""

import os
import sys
import urllib.request

try:
    port = os.environ.get("PORT", "8000")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception as exc:
    print(exc)
    sys.exit(1)

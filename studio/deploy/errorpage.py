"""The page a pod shows on :8000 when its first boot failed: the reason, instead of a container
that restarts in a loop and shows the user nothing. Standard library only (it must run when
nothing else of Studio could be installed); every path answers 503, ``/api/health`` too, so the
image's health check reports the pod unhealthy."""

from __future__ import annotations

import argparse
import html
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_REASON_CHARS = 8000


def _page(reason: str) -> bytes:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>Studio could not start</title><style>body{font:16px/1.5 system-ui,sans-serif;margin:0;"
            "background:#111418;color:#e8eaed}main{max-width:48rem;margin:0 auto;padding:2rem}"
            "pre{white-space:pre-wrap;background:#1d2126;padding:1rem;border-radius:6px;overflow-wrap:anywhere}"
            "</style></head><body><main><h1>Studio could not start</h1>"
            "<p>The first boot of this volume failed. Fix the cause (often <code>REPO_URL</code>, "
            "<code>REPO_BRANCH</code> or the network), then restart the pod.</p>"
            f"<pre>{html.escape(reason)}</pre></main></body></html>").encode()


def serve(host: str, port: int, reason: str) -> None:
    page = _page(reason[-MAX_REASON_CHARS:])
    body = json.dumps({"error": {"code": "bootstrap_failed", "message": reason[-MAX_REASON_CHARS:],
                                 "details": None}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            is_api = self.path.startswith("/api/")
            self.send_response(503)
            self.send_header("Content-Type", "application/json" if is_api else "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Retry-After", "60")
            self.end_headers()
            self.wfile.write(body if is_api else page)

        do_HEAD = do_GET
        do_POST = do_GET

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            sys.stderr.write("[error-page] " + (format % args) + "\n")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    sys.stdout.write(f"[error-page] serving the bootstrap failure on {host}:{port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.deploy.errorpage")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - the container's one exposed port
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--reason-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        reason = args.reason_file.read_text(errors="replace").strip() or "no reason was recorded"
    except OSError as err:
        reason = f"no reason was recorded ({err})"
    serve(args.host, args.port, reason)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

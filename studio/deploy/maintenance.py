"""Maintenance mode while an update runs: the supervisor writes ``deploy/maintenance.json``, and
every Studio process answers API calls with 503 + ``Retry-After`` and pages with a small
"Updating…" page that reloads itself. A file (not process memory) because the process that
updates is not the one that serves, and because a crash must not leave it on: the supervisor
removes it whenever it starts.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from studio.deploy.layout import Layout, read_json, write_json
from studio.errors import error_body
from studio.jsonio import dumps

RETRY_AFTER_S = 15
# Still answered during an update: liveness for the supervisor's health check, and the update's
# own progress for the admin's page and scripts.
OPEN_PATHS = ("/api/health", "/api/updates")
PHASE_TEXT = {
    "waiting_for_jobs": "Studio is about to update: the jobs that are running finish first.",
    "updating": "Studio is updating. This page reloads by itself when it is back.",
}


def start(layout: Layout, phase: str, *, release: str | None = None) -> None:
    write_json(layout.root, layout.maintenance_file, {"phase": phase, "since": time.time(), "to": release})


def stop(layout: Layout) -> None:
    layout.maintenance_file.unlink(missing_ok=True)


def current(layout: Layout) -> dict[str, Any] | None:
    if not layout.maintenance_file.exists():
        return None
    state = read_json(layout.maintenance_file)
    return state if isinstance(state, dict) else {"phase": "updating"}


def _page(message: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"refresh\" content=\"{RETRY_AFTER_S}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>Updating — ComfyUI Studio</title>"
            "<style>body{font:16px/1.5 system-ui,sans-serif;margin:0;display:grid;place-items:center;"
            "min-height:100vh;background:#111418;color:#e8eaed}main{max-width:32rem;padding:2rem}"
            "h1{font-size:1.4rem}</style></head><body><main><h1>Updating…</h1>"
            f"<p>{html.escape(message)}</p></main></body></html>")


def install(app: Flask, studio_dir: Path) -> None:
    """Registers the check before every other request hook (so even signed-out callers see 503)."""
    layout = Layout(studio_dir)

    def _maintenance() -> Response | None:
        path = request.path
        if any(path == open_path or path.startswith(open_path + "/") for open_path in OPEN_PATHS) \
                and request.method in ("GET", "HEAD"):
            return None
        state = current(layout)
        if state is None:
            return None
        message = PHASE_TEXT.get(str(state.get("phase")), PHASE_TEXT["updating"])
        headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
        if path.startswith("/api/") or path == "/ws" or request.accept_mimetypes.best == "application/json":
            body = dumps(error_body("maintenance", message, {"phase": state.get("phase")}))
            return Response(body, status=503, headers=headers, mimetype="application/json")
        return Response(_page(message), status=503, headers=headers, mimetype="text/html")

    app.before_request_funcs.setdefault(None, []).insert(0, _maintenance)

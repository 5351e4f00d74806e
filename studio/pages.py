"""Serves the web UI from ``webui/``: one shell page for every app route, plus its assets.

Files are resolved with ``send_from_directory`` (``safe_join``), so nothing outside ``webui/``
can be read whatever the path says.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from studio.errors import NotFound

WEBUI_DIR = Path(__file__).resolve().parent.parent / "webui"

# Each page of the app; the shell page's router picks the module for the path.
PAGES = (
    "run", "queue", "history", "workflows", "models", "loras", "downloads", "presets", "gallery", "civitai",
    "llm", "settings", "login",
)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
)

bp = Blueprint("pages", __name__)


def _with_page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def home() -> Response:
    return _with_page_headers(send_from_directory(WEBUI_DIR, "index.html"))


@bp.get("/<any(" + ", ".join(PAGES) + "):page>")
def page(page: str) -> Response:
    return _with_page_headers(send_from_directory(WEBUI_DIR, "index.html"))


@bp.get("/assets/<path:filename>")
def asset(filename: str) -> Response:
    if filename.endswith(".html"):
        raise NotFound("Nothing here.")
    response = send_from_directory(WEBUI_DIR, filename, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response

"""Serves the web UI from ``webui/``: the app shell for every app route, the sign-in and setup
pages, and their assets.

Asset paths are resolved (symlinks included) and must stay inside the web UI folder, so nothing
else on disk can be read whatever the URL says; HTML files are only served as pages.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, Response, current_app, request

from studio.apidocs import documented
from studio.errors import NotFound

WEBUI_DIR = Path(__file__).resolve().parent.parent / "webui"

# Each page of the app; the shell page's router picks the module for the path.
PAGES = (
    "system", "run", "queue", "history", "workflows", "models", "loras", "downloads", "presets", "gallery",
    "civitai", "llm", "comfyui", "settings", "account", "users", "job", "webhooks", "apidocs", "telegram",
)
# Pages about one thing, named by the last part of the path: /run/<workflow id>, /job/<job id>.
ITEM_PAGES = ("run", "job")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)

bp = Blueprint("pages", __name__)


def webui_dir() -> Path:
    return Path(current_app.config.get("WEBUI_DIR", WEBUI_DIR)).resolve()


def _file_response(path: Path, mimetype: str | None = None) -> Response:
    """Web UI files are small: read whole, so no file handle outlives an aborted request."""
    response = Response(path.read_bytes(), mimetype=mimetype or mimetypes.guess_type(path.name)[0]
                        or "application/octet-stream")
    response.add_etag()
    response.headers["Cache-Control"] = "no-cache"
    response.make_conditional(request)
    return response


def _page(name: str) -> Response:
    response = _file_response(webui_dir() / name, "text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/")
@documented("The web app (Home)",
            answers={200: {"content": "text/html"}, 302: {"empty": True, "description": "to sign-in or setup first"}},
            tags=["pages"])
def home() -> Response:
    return _page("index.html")


@bp.get("/<any(" + ", ".join(f'"{page}"' for page in PAGES) + "):page>")  # quoted: "api-docs" has a dash
@documented("A page of the web app",
            answers={200: {"content": "text/html"}, 302: {"empty": True, "description": "to sign-in or setup first"}},
            tags=["pages"])
def page(page: str) -> Response:
    return _page("index.html")


@bp.get("/<any(" + ", ".join(f'"{page}"' for page in ITEM_PAGES) + "):page>/<item>")
@documented("A page about one thing (a workflow to run, a job)",
            answers={200: {"content": "text/html"}, 302: {"empty": True, "description": "to sign-in or setup first"}},
            tags=["pages"])
def item_page(page: str, item: str) -> Response:
    """One segment only: ``/run/a/b`` is nothing, and 404s like any other unknown path."""
    return _page("index.html")


@bp.get("/login")
@documented("The sign-in page", answers={200: {"content": "text/html"}}, tags=["pages"])
def login() -> Response:
    return _page("login.html")


@bp.get("/setup")
@documented("The first-admin setup page", answers={200: {"content": "text/html"}, 302: {"empty": True}}, tags=["pages"])
def setup() -> Response:
    return _page("setup.html")


@bp.get("/assets/<path:filename>")
@documented("A web UI file (script, style, image)",
            answers={200: {"content": "application/octet-stream"}, 304: {"empty": True}}, tags=["pages"])
def asset(filename: str) -> Response:
    root = webui_dir()
    if "\x00" in filename or "\\" in filename:
        raise NotFound("Nothing here.")
    try:
        path = (root / filename).resolve(strict=True)
    except (OSError, RuntimeError) as err:
        raise NotFound("Nothing here.") from err
    if not path.is_relative_to(root) or not path.is_file() or path.suffix == ".html":
        raise NotFound("Nothing here.")
    response = _file_response(path)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response

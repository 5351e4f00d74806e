"""Closed by default: every route refuses anonymous requests except a short allowlist, static
files cannot leave webui/, and the first admin can only be created once."""

import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.test_errors import concrete_path

# A Telegram result's one-time link: its random token is the proof (tests/test_telegram.py checks it).
ANONYMOUS_OK = {"/api/health", "/api/auth/state", "/api/auth/login", "/login", "/api/telegram/files/x"}
# Werkzeug refuses a plain HTTP request to the WebSocket route before any view runs (400);
# test_auth_sessions checks real WebSocket handshakes.
WEBSOCKET = "/ws"
SETUP_OK = {"/api/health", "/api/auth/state", "/api/auth/setup", "/setup"}


def all_requests(app: Flask) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, concrete_path(rule)))
    return found


def test_every_route_refuses_anonymous_requests_except_the_allowlist(app: Flask, client: FlaskClient) -> None:
    anonymous = app.test_client()
    checked = 0
    for _endpoint, method, path in all_requests(app):
        response = anonymous.open(path, method=method, json={} if method != "GET" else None)
        checked += 1
        if path == WEBSOCKET:
            assert response.status_code == 400
        elif path == "/api/auth/setup":
            assert response.status_code == 409
        elif path in ANONYMOUS_OK or path.startswith("/assets/"):
            assert response.status_code not in (401, 302), (method, path)
        elif path.startswith("/api/") or path == "/ws":
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.get_json()["error"]["code"] == "unauthorized"
        elif path == "/setup":
            assert response.status_code == 302
            assert response.headers["Location"] == "/login"
        else:
            assert response.status_code == 302, (method, path)
            assert response.headers["Location"].startswith("/login?next=")
    assert checked >= 25


def test_before_setup_only_the_setup_page_answers(app: Flask) -> None:
    anonymous = app.test_client()
    for _endpoint, method, path in all_requests(app):
        response = anonymous.open(path, method=method, json={} if method != "GET" else None)
        if path == WEBSOCKET:
            assert response.status_code == 400
        elif path in SETUP_OK or path.startswith("/assets/"):
            assert response.status_code != 401, (method, path)
        elif path.startswith("/api/") or path == "/ws":
            assert response.status_code == 401, (method, path)
            assert response.get_json()["error"]["code"] == "setup_required"
        else:
            assert (response.status_code, response.headers.get("Location")) == (302, "/setup"), (method, path)


def test_the_first_visitor_creates_the_admin_once(app: Flask) -> None:
    first = app.test_client()
    weak = first.post("/api/auth/setup", json={"username": "admin", "password": "short"})
    assert weak.status_code == 400
    assert "password" in weak.get_json()["error"]["details"]["fields"]

    made = first.post("/api/auth/setup", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD})
    assert made.status_code == 200
    assert made.get_json()["user"]["role"] == "admin"

    again = app.test_client().post("/api/auth/setup", json={"username": "mallory", "password": "x" * 20})
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "already_set_up"


TRAVERSALS = [
    "../pyproject.toml", "..%2Fpyproject.toml", "%2e%2e/pyproject.toml", "%2e%2e%2fpyproject.toml",
    "..%252Fpyproject.toml", "%252e%252e%252fpyproject.toml", "css/../../pyproject.toml",
    "css/..%2F..%2Fpyproject.toml",
    "..\\pyproject.toml", "..%5Cpyproject.toml", "css\\..\\..\\pyproject.toml", "/etc/passwd", "%2Fetc%2Fpasswd",
    "//etc/passwd", "css/%00../../pyproject.toml", "favicon.svg%00.html", "..%c0%afpyproject.toml",
    "%c0%ae%c0%ae/pyproject.toml", "....//pyproject.toml", "..;/pyproject.toml", "link-out/secret.txt",
    "link-file.txt", "index.html", "login.html", ".%2e/pyproject.toml", "css/.%2e/.%2e/pyproject.toml",
    "../studio/auth/keys.py", "../../secrets/session_signing_key",
]


@pytest.fixture
def webui_copy(tmp_path: Path) -> Path:
    """A web UI folder holding symlinks that point outside it, next to a file that must stay secret."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET")
    webui = tmp_path / "webui"
    (webui / "css").mkdir(parents=True)
    (webui / "css" / "app.css").write_text("body{}")
    (webui / "index.html").write_text("<main id=page></main>")
    (webui / "login.html").write_text("<form></form>")
    os.symlink(outside, webui / "link-out")
    os.symlink(outside / "secret.txt", webui / "link-file.txt")
    return webui


def test_static_files_cannot_leave_the_web_ui_folder(settings, services, webui_copy: Path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings, services)
    app.config["WEBUI_DIR"] = str(webui_copy)
    anonymous = app.test_client()
    assert anonymous.get("/assets/css/app.css").data == b"body{}"
    for attempt in TRAVERSALS:
        with anonymous.get("/assets/" + attempt, follow_redirects=True) as response:
            body = response.get_data()
            assert response.status_code in (400, 404), (attempt, response.status_code)
            for leaked in (b"TOP-SECRET", b"[project]", b"<main"):
                assert leaked not in body, attempt


def test_pages_and_api_answers_carry_security_headers(client: FlaskClient) -> None:
    page = client.get("/")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert page.headers["X-Content-Type-Options"] == "nosniff"

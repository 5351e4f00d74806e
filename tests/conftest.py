"""Shared fixtures: a fresh data folder and SQLite file per test, the ComfyUI test server on a free
port, and Studio itself (a Flask test client, or the real threaded server for socket tests)."""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from studio.app import create_app
from studio.auth.models import TokenScope
from studio.config import Settings
from studio.db import upgrade
from studio.paths import DataDir
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.servers.comfyui import ComfyUITestServer

# Values that must never reach a log line: passwords and tokens the tests use or create.
LEAK_CANARIES: set[str] = set()
TOKEN_PATTERN = re.compile(r"sst_[A-Za-z0-9_-]{20,}")


def canary(value: str) -> str:
    """Remember a secret; the session ends by checking that no log record contains it."""
    LEAK_CANARIES.add(value)
    return value


class LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(message)s").format(record))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log_line() -> Iterator[None]:
    """Every record Studio logs during the whole run (DEBUG included) is checked for secrets."""
    collector = LogCollector()
    root = logging.getLogger()
    studio_logger = logging.getLogger("studio")
    previous = studio_logger.level
    studio_logger.setLevel(logging.DEBUG)
    root.addHandler(collector)
    yield
    root.removeHandler(collector)
    studio_logger.setLevel(previous)
    text = "\n".join(collector.lines)
    leaked = sorted(value for value in LEAK_CANARIES if value in text)
    assert not leaked, f"secrets found in log output: {[v[:4] + '…' for v in leaked]}"
    assert not TOKEN_PATTERN.search(text), "an API token appeared in the log output"


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def comfy_server(tmp_path: Path) -> Iterator[ComfyUITestServer]:
    server = ComfyUITestServer(tmp_path / "comfyui").start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, comfy_server: ComfyUITestServer) -> Settings:
    return Settings(
        studio_dir=tmp_path / "studio",
        comfyui_url=comfy_server.url,
        comfyui_reconnect_max_s=0.5,
        studio_telemetry_interval_s=0.2,
        # Nothing in a test reaches the internet: a closed loopback port unless a test serves them.
        civitai_endpoint="http://127.0.0.1:9",
        hf_endpoint="http://127.0.0.1:9",
    )


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file brought to the newest revision per test worker: each test starts from a copy,
    because running every migration again costs about 0.3 s a test. The copy is still upgraded (a
    no-op at head), so a database that is not at head would show up as it would for a person."""
    path = tmp_path_factory.mktemp("migrated") / "studio.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return path


@pytest.fixture
def services(settings: Settings, migrated_database: Path) -> Iterator[Services]:
    DataDir(settings.studio_dir).ensure()
    if settings.database_url is None:
        shutil.copyfile(migrated_database, settings.studio_dir / "db" / "studio.db")
    built = build_services(settings)
    upgrade(built.engine)
    yield built
    built.engine.dispose()


@pytest.fixture
def app(settings: Settings, services: Services) -> Flask:
    return create_app(settings, services)


ADMIN_NAME = "admin"
ADMIN_PASSWORD = canary("correct horse battery staple")


@pytest.fixture
def anon(app: Flask) -> FlaskClient:
    """A client that has not signed in."""
    return app.test_client()


def signed_in_admin(app: Flask) -> FlaskClient:
    """The first admin, signed in through the setup page's API, sending its CSRF token."""
    signed_in = app.test_client()
    answer = signed_in.post("/api/auth/setup", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    signed_in.environ_base["HTTP_X_CSRF_TOKEN"] = answer.get_json()["csrf_token"]
    return signed_in


def signed_in_user(app: Flask, admin: FlaskClient, username: str) -> FlaskClient:
    """A new account with the ``user`` role, created by ``admin``, signed in and sending its CSRF token."""
    password = f"{username}'s long password"
    made = admin.post("/api/users", json={"username": username, "password": password})
    assert made.status_code == 201, made.get_json()
    person = app.test_client()
    answer = person.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.get_json()
    person.environ_base["HTTP_X_CSRF_TOKEN"] = answer.get_json()["csrf_token"]
    return person


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return signed_in_admin(app)


@pytest.fixture
def admin_token(services: Services) -> str:
    """A full-scope API token of a fresh admin, for socket and script-style tests."""
    services.users.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
    _, identity = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    plain, _ = services.auth.create_token(identity, name="tests", scope=TokenScope.FULL, expires_at=None)
    return canary(plain)


@pytest.fixture
def runtime(app: Flask, services: Services) -> Iterator[Runtime]:
    """Studio serving for real on a free loopback port, with its ComfyUI listener running."""
    running = Runtime(app, services)
    running.start_in_thread()
    yield running
    running.stop()

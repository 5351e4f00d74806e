"""The second outside review's findings at the request, auth, event and ComfyUI-client layers,
each tested as a class."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
from pathlib import Path

import pytest
import websocket
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.auth.models import TokenScope
from studio.comfy import ComfyProtocolError
from studio.comfy.messages import decode_binary_frame, decode_json_message
from studio.config import Settings
from studio.events import EventBus
from studio.events.hub import SocketHub
from studio.events.types import EVENT_TYPES
from studio.logs import NoFollowRotatingFileHandler
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary, signed_in_user, wait_until

# -- every /api answer is inert in a browser tab ---------------------------------------------------


def test_every_api_answer_is_never_sniffed_or_run(client: FlaskClient, anon: FlaskClient) -> None:
    for caller, path in ((client, "/api/status"), (client, "/api/jobs"), (anon, "/api/health"),
                         (anon, "/api/jobs"), (client, "/api/no-such-thing")):
        answer = caller.get(path)
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path
        assert "sandbox" in answer.headers["Content-Security-Policy"], path
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"], path
    page = client.get("/")
    assert "sandbox" not in page.headers["Content-Security-Policy"]  # the app itself must still run


# -- a deleted person's events ---------------------------------------------------------------------


def test_per_user_events_without_an_owner_reach_admins_only() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=10)
    admin, bob = hub.connect(is_admin=True, user_id=1), hub.connect(is_admin=False, user_id=2)
    bus.publish("jobs/update", {"id": "orphan", "params": {"prompt": "secret"}})  # owner deleted: no user
    bus.publish("jobs/update", {"id": "bobs"}, user_id=2)
    bus.publish("system/notice", {"level": "info", "message": "for everyone"})
    assert [json.loads(f)["payload"].get("id") for f in bob.get_batch(0)] == ["bobs", None]
    assert len(admin.get_batch(0)) == 3


def test_a_deleted_users_activity_goes_with_them(app: Flask, client: FlaskClient, services: Services) -> None:
    signed_in_user(app, client, "alice")
    alice = next(u for u in client.get("/api/users").get_json()["items"] if u["username"] == "alice")
    services.bus.publish("jobs/finished", {"id": "a-job", "status": "completed"}, user_id=alice["id"])
    services.bus.publish("jobs/finished", {"id": "orphaned", "status": "completed"})
    assert client.delete(f"/api/users/{alice['id']}").status_code == 200
    # The next account may get the same id (SQLite reuses the highest): it must see none of it.
    mallory = signed_in_user(app, client, "mallory")
    seen = [item["payload"]["id"] for item in mallory.get("/api/events?type=jobs/").get_json()["items"]]
    assert seen == []
    assert {"orphaned"} <= {i["payload"]["id"] for i in client.get("/api/events?type=jobs/").get_json()["items"]}


# -- sockets take no messages ----------------------------------------------------------------------


def test_a_socket_that_sends_data_is_closed_before_it_can_pile_up(runtime: Runtime, services: Services,
                                                                   admin_token: str) -> None:
    ws = websocket.create_connection(f"ws://127.0.0.1:{runtime.port}/ws", timeout=10,
                                     header=[f"Authorization: Bearer {admin_token}"])
    assert json.loads(ws.recv())["type"] == "events/hello"
    for _ in range(20):
        try:
            ws.send("x" * 60_000)
        except (BrokenPipeError, ConnectionResetError, websocket.WebSocketConnectionClosedException):
            break
    while True:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (ConnectionResetError, websocket.WebSocketConnectionClosedException):
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert int.from_bytes(data[:2], "big") == 1003
            break
    ws.shutdown()
    wait_until(lambda: services.hub.client_count == 0)


# -- admin resets end scripts too --------------------------------------------------------------------


@pytest.mark.parametrize("action", ["revoke-sessions", "password"])
def test_sign_out_everywhere_and_a_password_reset_end_api_tokens(
    app: Flask, client: FlaskClient, services: Services, action: str
) -> None:
    signed_in_user(app, client, "carl")
    carl = next(u for u in client.get("/api/users").get_json()["items"] if u["username"] == "carl")
    _, identity = services.auth.login("carl", "carl's long password", ip="127.0.0.1", user_agent="tests")
    plain, _ = services.auth.create_token(identity, name="script", scope=TokenScope.FULL, expires_at=None)
    script = app.test_client()
    assert script.get("/api/auth/me", headers={"X-API-Key": canary(plain)}).status_code == 200
    body = {"password": "an entirely new password"} if action == "password" else {}
    assert client.post(f"/api/users/{carl['id']}/{action}", json=body).status_code == 200
    assert script.get("/api/auth/me", headers={"X-API-Key": plain}).status_code == 401


# -- settings that would sign everyone out -----------------------------------------------------------


def test_session_lifetimes_have_floors(client: FlaskClient) -> None:
    for key, value in (("session_idle_hours", 1e-6), ("session_idle_hours", 0.1), ("session_max_days", 0.01)):
        assert client.put("/api/settings", json={key: value}).status_code == 400, (key, value)
    assert client.put("/api/settings", json={"session_idle_hours": 0.25, "session_max_days": 1 / 24}).status_code == 200
    assert client.get("/api/auth/me").status_code == 200


# -- throttle ------------------------------------------------------------------------------------------


def test_signing_in_to_ones_own_account_does_not_reset_the_guessing_limit(app: Flask, client: FlaskClient) -> None:
    signed_in_user(app, client, "gus")
    browser = app.test_client()
    codes = []
    for n in range(24):
        codes.append(browser.post("/api/auth/login", json={"username": f"victim{n % 6}", "password": "guess"},
                                  environ_base={"REMOTE_ADDR": "10.2.2.2"}).status_code)
        browser.post("/api/auth/login", json={"username": "gus", "password": "gus's long password"},
                     environ_base={"REMOTE_ADDR": "10.2.2.2"})
    assert 429 in codes


# -- the log file ------------------------------------------------------------------------------------


def test_a_planted_log_link_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    logs = tmp_path / "logs"
    logs.mkdir()
    os.symlink(outside, logs / "studio.log")
    handler = NoFollowRotatingFileHandler(logs / "studio.log", maxBytes=1000, backupCount=1, encoding="utf-8")
    logger = logging.getLogger("tests.planted-link")
    logger.addHandler(handler)
    try:
        logger.warning("a line")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert outside.read_text() == "untouched"
    assert not (logs / "studio.log").is_symlink()
    assert "a line" in (logs / "studio.log").read_text()


# -- what ComfyUI's socket may send ------------------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.one_of(
    st.binary(max_size=64),
    st.builds(lambda kind, body: struct.pack(">I", kind) + body, st.sampled_from([1, 2, 3, 4, 99]),
              st.binary(max_size=64)),
    st.builds(lambda meta, image: struct.pack(">II", 4, len(meta)) + meta + image,
              st.sampled_from([b"[]", b"7", b'"x"', b"null", b'{"prompt_id": 5}', b"[" * 5000, b"\xff"]),
              st.binary(max_size=8)),
    st.builds(lambda node, text: struct.pack(">II", 3, len(node)) + node + text,
              st.sampled_from([b"\xff\xfe", b"ok", b""]), st.binary(max_size=16)),
))
def test_any_binary_frame_decodes_or_is_a_protocol_error(frame: bytes) -> None:
    with contextlib.suppress(ComfyProtocolError):
        decode_binary_frame(frame)


def test_hostile_text_messages_are_protocol_errors() -> None:
    for text in ("[" * 100_000, "7", "[]", '{"type": 5}', "{", "\ud800"):
        with pytest.raises(ComfyProtocolError):
            decode_json_message(text)


def test_stored_settings_from_an_older_studio_never_stop_the_socket(settings: Settings) -> None:
    # The URL forms that once killed the listener thread are refused by the settings themselves.
    for bad in ("http://[::1", "http://a:99999", "http:///x"):
        with pytest.raises(ValueError, match="comfyui_url"):
            Settings(studio_dir=settings.studio_dir, comfyui_url=bad)

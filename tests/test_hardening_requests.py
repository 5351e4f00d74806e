"""What an outsider's probes broke at the request layer, each tested as a class: host names
(DNS rebinding), Origin with its scheme, sign-in throttling that cannot lock the admin out and
cannot be raced, hostile JSON on every JSON route, settings that cannot brick a restart, errors
raised before Flask, credentials inside URLs, and live sockets that outlive their sign-in."""

from __future__ import annotations

import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import websocket
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.app import create_app
from studio.auth.models import TokenScope
from studio.auth.throttle import FREE_FAILURES, FREE_FAILURES_PER_ACCOUNT
from studio.config import Settings
from studio.db.models import ActivityEvent
from studio.preferences.models import StoredSetting
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary, signed_in_user, wait_until

# -- host names and origins ------------------------------------------------------------------------


def test_setup_cannot_be_taken_over_through_a_rebound_host_name(app: Flask, services: Services) -> None:
    browser = app.test_client()
    for host in ("rebind.example:8000", "rebind.example", "localhost.evil.example", "evil.localhost.example"):
        answer = browser.post("/api/auth/setup", json={"username": "mallory", "password": "a long password"},
                              headers={"Host": host, "Origin": f"http://{host}"})
        assert answer.status_code == 421, host
        assert answer.get_json()["error"]["code"] == "host_not_allowed"
        assert browser.get("/", headers={"Host": host}).status_code == 421  # pages too, not only the API
    assert services.users.setup_needed()  # nobody was created

    # Our own names still work: loopback names, any IP address, this machine's name.
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "192.0.2.7", "studio.localhost",
                 socket.gethostname()):
        assert browser.get("/api/auth/state", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_setting_and_forwarded_names(settings: Settings, services: Services) -> None:
    configured = settings.model_copy(update={"studio_allowed_hosts": "studio.example.com, *.proxy.runpod.net",
                                             "trusted_proxies": "127.0.0.1"})
    app = create_app(configured, build_services(configured, engine=services.engine))
    browser = app.test_client()
    for host, status in (("studio.example.com", 200), ("abc-8000.proxy.runpod.net", 200),
                         ("proxy.runpod.net.evil.example", 421), ("xstudio.example.com", 421),
                         ("proxy.runpod.net", 421)):
        assert browser.get("/api/auth/state", headers={"Host": host}).status_code == status, host
    # A trusted proxy's X-Forwarded-Host is the name the browser used: it is checked too.
    forwarded = browser.get("/api/auth/state", headers={"X-Forwarded-Host": "rebind.example"})
    assert forwarded.status_code == 421


def test_origin_must_match_scheme_host_and_port(client: FlaskClient, services: Services) -> None:
    before = services.auth.list_tokens(1)
    for origin in ("https://localhost", "http://localhost:8001", "null", "http://evil.example", "localhost",
                   "http://localhost.evil.example"):
        answer = client.post("/api/auth/tokens", json={"name": "x"}, headers={"Origin": origin})
        assert answer.status_code == 403, origin
        assert answer.get_json()["error"]["code"] == "csrf_failed"
    assert services.auth.list_tokens(1) == before
    same = client.post("/api/auth/tokens", json={"name": "ok"}, headers={"Origin": "http://localhost"})
    assert same.status_code == 201


# -- sign-in throttling ----------------------------------------------------------------------------


def _login(app: Flask, password: str, ip: str, username: str = ADMIN_NAME) -> int:
    answer = app.test_client().post("/api/auth/login", json={"username": username, "password": password},
                                    environ_base={"REMOTE_ADDR": ip})
    return answer.status_code


def test_wrong_passwords_from_elsewhere_never_lock_the_admin_out(app: Flask, client: FlaskClient) -> None:
    for _ in range(FREE_FAILURES + 2):
        _login(app, "guess", "203.0.113.5")
    assert _login(app, ADMIN_PASSWORD, "203.0.113.5") == 429  # the guesser's address waits
    assert _login(app, ADMIN_PASSWORD, "198.51.100.1") == 200  # the real admin, elsewhere, gets in


def test_many_addresses_against_one_account_alert_and_hold_back_only_failing_addresses(
    app: Flask, client: FlaskClient
) -> None:
    for n in range(FREE_FAILURES_PER_ACCOUNT + 1):
        assert _login(app, "guess", f"203.0.113.{n + 1}") == 401
    alerts = client.get("/api/events?type=auth/account_attacked").get_json()["items"]
    assert len(alerts) == 1
    assert alerts[0]["payload"]["username"] == ADMIN_NAME
    # An address that already failed now waits even with the right password…
    assert _login(app, ADMIN_PASSWORD, "203.0.113.1") == 429
    # …one that has not failed still signs in.
    assert _login(app, ADMIN_PASSWORD, "198.51.100.1") == 200


def test_concurrent_wrong_passwords_neither_race_the_limit_nor_fail(app: Flask, client: FlaskClient) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _login(app, "guess", "203.0.113.9"), range(24)))
    assert 500 not in statuses
    assert statuses.count(401) == FREE_FAILURES + 1
    assert statuses.count(429) == 24 - FREE_FAILURES - 1


# -- tokens ----------------------------------------------------------------------------------------


def test_a_token_expiry_without_a_time_zone_is_utc(client: FlaskClient) -> None:
    made = client.post("/api/auth/tokens", json={"name": "naive", "expires_at": "2999-01-01T00:00:00"})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["expires_at"] == "2999-01-01T00:00:00+00:00"
    offset = client.post("/api/auth/tokens", json={"name": "offset", "expires_at": "2999-01-01T02:00:00+02:00"})
    assert offset.get_json()["expires_at"] == "2999-01-01T00:00:00+00:00"
    for bad in ("9999-12-31T23:59:59-12:00", "2000-01-01T00:00:00", "soon", 12):
        answer = client.post("/api/auth/tokens", json={"name": "bad", "expires_at": bad})
        assert answer.status_code == 400, bad
        assert "expires_at" in answer.get_json()["error"]["details"]["fields"]


# -- hostile JSON ----------------------------------------------------------------------------------

HOSTILE_JSON = {
    "nan": b'{"username": "admin", "password": NaN}',
    "infinity": b'{"username": "admin", "password": Infinity}',
    "minus infinity": b'{"username": "admin", "password": -Infinity}',
    "1e309": b'{"username": "admin", "password": 1e309}',
    "10**400": b'{"username": "admin", "password": ' + b"1" + b"0" * 400 + b"}",
    "deep list": b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "deep object": b'{"a": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}",
    "65 levels": b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}",
    "lone surrogate": b'{"username": "\\ud800", "password": "x"}',
    "lone surrogate key": b'{"\\udfff": 1}',
    "not utf-8": b'{"username": "\xff\xfe"}',
    "truncated": b'{"username": ',
}

JSON_ROUTES = [
    ("post", "/api/auth/login"), ("post", "/api/auth/tokens"), ("put", "/api/settings"),
    ("post", "/api/auth/password"), ("post", "/api/users"), ("post", "/api/comfy/free"),
    ("post", "/api/workflows/sd15-txt2img/run"), ("put", "/api/workflows/sd15-txt2img/mapping"),
    ("post", "/api/downloads"), ("post", "/api/downloads/batch"), ("post", "/api/catalogs/models"),
    ("post", "/api/jobs/no-such-job/move"), ("post", "/api/queue/pause"),
]


@pytest.mark.parametrize("shape", sorted(HOSTILE_JSON))
def test_hostile_json_is_a_400_on_every_json_route(app: Flask, client: FlaskClient, shape: str) -> None:
    anonymous = app.test_client()
    for method, path in JSON_ROUTES:
        caller = anonymous if path == "/api/auth/login" else client
        answer = getattr(caller, method)(path, data=HOSTILE_JSON[shape], content_type="application/json")
        assert answer.status_code in (400, 413), (shape, path, answer.status_code, answer.get_data()[:200])
        error = answer.get_json()["error"]
        assert error["code"] in ("invalid_json", "bad_request", "payload_too_large"), (shape, path)
        assert error["message"]


def test_anonymous_and_oversized_bodies_are_refused_before_parsing(app: Flask, client: FlaskClient) -> None:
    padding = b"[" + b"0," * 400_000 + b"0]"  # 800 KB of tiny values: cheap to send, costly to walk
    answer = app.test_client().post("/api/auth/login", data=b'{"username": "a", "password": "b", "pad": '
                                    + padding + b"}", content_type="application/json")
    assert answer.status_code == 413
    many = client.put("/api/settings", data=b'{"x": [' + b"0," * 1_100_000 + b'0]}', content_type="application/json")
    assert many.status_code == 413  # over the 2 MiB default
    values = client.post("/api/catalogs/models", data=b'{"catalog": [' + b"0," * 1_100_000 + b"0]}",
                         content_type="application/json")
    assert values.status_code == 400  # a catalog may be big, but not a million values
    assert "values" in values.get_json()["error"]["message"]


def test_studio_never_writes_nan_in_an_answer(client: FlaskClient, services: Services) -> None:
    services.bus.publish("system/notice", {"level": "info", "message": "odd", "value": float("nan")})
    answer = client.get("/api/events?type=system/")
    text = answer.get_data(as_text=True)
    assert "NaN" not in text
    assert "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in an answer"))


def test_numbers_in_queries_and_paths_too_big_for_a_row_are_refused(client: FlaskClient) -> None:
    assert client.get("/api/events?before=12345678901234567890123").status_code == 400
    assert client.get("/api/events?before=9223372036854775808").status_code == 400
    assert client.get("/api/events?type=" + "x" * 5000).status_code == 400
    assert client.delete("/api/auth/tokens/12345678901234567890123").status_code == 404
    assert client.delete("/api/users/99999999999999999999").status_code in (404, 405)


# -- settings --------------------------------------------------------------------------------------

SETTING_VALUES = {
    "comfyui_url": "http://127.0.0.1:9",
    "download_concurrency": 3,
    "trusted_proxies": "10.0.0.0/8",
    "session_idle_hours": 5.0,
    "session_max_days": 3.0,
}


@pytest.mark.parametrize("key", sorted(SETTING_VALUES))
def test_a_null_setting_goes_back_to_the_configuration_and_never_bricks_a_restart(
    settings: Settings, services: Services, client: FlaskClient, key: str
) -> None:
    configured = client.get("/api/settings").get_json()["settings"][key]["value"]
    assert client.put("/api/settings", json={key: SETTING_VALUES[key]}).status_code == 200
    reset = client.put("/api/settings", json={key: None})
    assert reset.status_code == 200, reset.get_json()
    shown = reset.get_json()["settings"][key]
    assert shown == {"value": configured, "source": "configuration", "secret": False}
    for wrong in ("abc", True, [], {}, -1, "" if key != "trusted_proxies" else "x"):
        assert client.put("/api/settings", json={key: wrong}).status_code == 400, (key, wrong)
    assert client.get("/api/settings").get_json()["settings"][key]["source"] == "configuration"


def test_a_stored_value_that_no_longer_validates_is_ignored_at_start(
    settings: Settings, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    with Session(services.engine) as session:  # written by an older Studio, or by hand
        for key, value in (("session_idle_hours", None), ("comfyui_url", "ftp://nope"), ("trusted_proxies", "x"),
                           ("download_concurrency", None), ("session_max_days", -4), ("retired_setting", 1)):
            session.add(StoredSetting(key=key, value=value))
        session.commit()
    restarted = build_services(settings, engine=services.engine)
    runtime = Runtime(create_app(settings, restarted), restarted)
    with caplog.at_level(logging.WARNING, logger="studio.preferences"):
        runtime.start_in_thread()
    try:
        effective = restarted.preferences.effective()
        assert effective["session_idle_hours"] == settings.studio_session_idle_hours
        assert effective["comfyui_url"] == settings.comfyui_url
        assert effective["download_concurrency"] == 2
        assert sum("ignoring stored setting" in r.getMessage() for r in caplog.records) == 6
    finally:
        runtime.stop()


# -- errors raised before Flask ------------------------------------------------------------------


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def test_errors_before_flask_answer_with_the_error_body(runtime: Runtime) -> None:
    long_uri = b"GET /api/health?x=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    many_headers = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
        f"X-H{n}: v\r\n".encode() for n in range(120)) + b"\r\n"
    long_header = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n"
    for request, status, code in ((long_uri, 414, "uri_too_long"), (many_headers, 431, "headers_too_large"),
                                   (long_header, 431, "headers_too_large")):
        got, headers, body = _raw(runtime.port, request)
        assert got == status
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["error"]["code"] == code


# -- credentials inside URLs -------------------------------------------------------------------------


def test_credentials_in_the_comfyui_url_are_never_shown(
    runtime: Runtime, services: Services, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = canary("pw-in-the-url-7d3f")
    url = f"http://studio:{secret}@127.0.0.1:9"  # nothing listens there: readiness and the socket say so
    ws = _socket(runtime.port, _token_of(services, ADMIN_NAME, ADMIN_PASSWORD))
    with caplog.at_level(logging.DEBUG, logger="studio"):
        assert client.put("/api/settings", data=json.dumps({"comfyui_url": url}),
                          content_type="application/json").status_code == 200
        frames = []
        while not any('"comfy/connection"' in f and '"connected": false' in f for f in frames):
            frames.append(ws.recv())
        answers = [client.get(path) for path in ("/api/settings", "/api/status", "/api/workflows", "/api/events")]
    ws.close()
    for text in [a.get_data(as_text=True) for a in answers] + frames + [r.getMessage() for r in caplog.records]:
        assert secret not in text
        assert "studio:" not in text
    assert answers[0].get_json()["settings"]["comfyui_url"]["value"] == "http://…@127.0.0.1:9"
    with Session(services.engine) as session:  # stored masked too: the activity log is not a side door
        assert secret not in json.dumps([row.payload for row in session.exec(select(ActivityEvent))])
    # A prompt that merely mentions a URL with a user is left as it is.
    assert "ssh://git@example.com" in services.bus.publish(
        "system/notice", {"level": "info", "message": "ssh://git@example.com"}).wire


def test_urls_that_would_break_the_comfyui_socket_are_refused(client: FlaskClient) -> None:
    for bad in ("http://[::1", "http://a:99999", "http://:80", "http:///x", "http://a..b", "http://" + "a" * 300,
                "http://u:pa'ss@h", "http://h:0", "ftp://h", "http://h/?q=1", "http://h b"):
        answer = client.put("/api/settings", data=json.dumps({"comfyui_url": bad}), content_type="application/json")
        assert answer.status_code == 400, bad
        assert "comfyui_url" in answer.get_json()["error"]["details"]["fields"]
    for good in ("http://[::1]:8188", "http://comfy_ui:8188", "https://abc-8188.proxy.runpod.net/sub"):
        assert client.put("/api/settings", json={"comfyui_url": good}).status_code == 200, good


# -- live sockets after revocation ---------------------------------------------------------------


def _socket(port: int, token: str) -> websocket.WebSocket:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=10,
                                     header=[f"Authorization: Bearer {token}"])
    assert json.loads(ws.recv())["type"] == "events/hello"
    return ws


def _close_code(ws: websocket.WebSocket, services: Services) -> tuple[int | None, list[str]]:
    """Reads until Studio closes the socket; returns the close code and the event types received."""
    seen: list[str] = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            ws.shutdown()
            return (int.from_bytes(data[:2], "big") if len(data) >= 2 else None), seen
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frame = json.loads(data)
            seen.extend(item["type"] for item in (frame if isinstance(frame, list) else [frame]))


def _token_of(services: Services, username: str, password: str) -> str:
    _, identity = services.auth.login(username, password, ip="127.0.0.1", user_agent="tests")
    plain, _ = services.auth.create_token(identity, name="socket", scope=TokenScope.FULL, expires_at=None)
    return canary(plain)


def test_a_disabled_users_socket_is_closed_and_gets_nothing_more(
    app: Flask, runtime: Runtime, services: Services, client: FlaskClient
) -> None:
    signed_in_user(app, client, "bob")
    bob = next(u for u in client.get("/api/users").get_json()["items"] if u["username"] == "bob")
    ws = _socket(runtime.port, _token_of(services, "bob", "bob's long password"))
    wait_until(lambda: services.hub.client_count == 1)
    assert client.patch(f"/api/users/{bob['id']}", json={"disabled": True}).status_code == 200
    services.bus.publish("system/notice", {"level": "info", "message": "after disabling"})
    code, seen = _close_code(ws, services)
    assert code == 1008
    assert "system/notice" not in seen
    wait_until(lambda: services.hub.client_count == 0)


def test_a_demoted_admins_socket_stops_receiving_audit_events(
    app: Flask, runtime: Runtime, services: Services, client: FlaskClient
) -> None:
    made = client.post("/api/users", json={"username": "eve", "password": "eve's long password", "role": "admin"})
    ws = _socket(runtime.port, _token_of(services, "eve", "eve's long password"))
    wait_until(lambda: services.hub.client_count == 1)
    assert client.patch(f"/api/users/{made.get_json()['id']}", json={"role": "user"}).status_code == 200
    services.bus.publish("auth/logout", {"username": "someone"})  # admin-only
    code, seen = _close_code(ws, services)
    assert code == 4001
    assert "auth/user_changed" not in seen
    assert "auth/logout" not in seen


def test_a_revoked_tokens_socket_is_closed(runtime: Runtime, services: Services, admin_token: str) -> None:
    ws = _socket(runtime.port, admin_token)
    wait_until(lambda: services.hub.client_count == 1)
    token_id = services.auth.list_tokens(1)[0]["id"]
    identity = services.auth.resolve_token(admin_token)
    assert identity is not None
    services.auth.revoke_token(identity, token_id)
    code, _ = _close_code(ws, services)
    assert code == 1008

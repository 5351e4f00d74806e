"""Cookie sessions: tampered, expired, revoked and rotated cookies; CSRF; Secure behind proxies;
the growing delay after failed sign-ins; roles; the WebSocket's own checks."""

from datetime import UTC, datetime, timedelta

import pytest
import websocket
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from studio.app import create_app
from studio.auth.guard import SESSION_COOKIE
from studio.auth.keys import rotate_signing_key
from studio.auth.models import AuthSession, Role
from studio.auth.throttle import FREE_FAILURES, FREE_FAILURES_PER_IP
from studio.db import write_with_retry
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD


def login(
    app: Flask, username: str = ADMIN_NAME, password: str = ADMIN_PASSWORD, *, https: bool = False,
    headers: dict[str, str] | None = None,
) -> FlaskClient:
    browser = app.test_client()
    answer = browser.post("/api/auth/login", json={"username": username, "password": password},
                          base_url="https://localhost" if https else "http://localhost", headers=headers or {})
    assert answer.status_code == 200, answer.get_json()
    browser.environ_base["HTTP_X_CSRF_TOKEN"] = answer.get_json()["csrf_token"]
    return browser


def session_cookie(browser: FlaskClient) -> str:
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return cookie.value


def test_cookie_flags_and_a_tampered_cookie(app: Flask, client: FlaskClient) -> None:
    browser = login(app)
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert not cookie.secure
    assert browser.get("/api/auth/me").status_code == 200

    value = cookie.value
    tampered = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    browser.set_cookie(SESSION_COOKIE, tampered)
    assert browser.get("/api/auth/me").status_code == 401
    forged = app.test_client()
    forged.set_cookie(SESSION_COOKIE, "some-session-id.forged-signature")
    assert forged.get("/api/status").status_code == 401


def test_logout_ends_the_session_on_the_server(app: Flask, client: FlaskClient) -> None:
    browser = login(app)
    old = session_cookie(browser)
    assert browser.post("/api/auth/logout").status_code == 200

    replay = app.test_client()
    replay.set_cookie(SESSION_COOKIE, old)
    assert replay.get("/api/auth/me").status_code == 401
    page = replay.get("/")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login")


@pytest.mark.parametrize("expiry", ["absolute", "idle"])
def test_expired_sessions_end(app: Flask, client: FlaskClient, services: Services, expiry: str) -> None:
    browser = login(app)
    past = datetime.now(UTC) - timedelta(seconds=1)
    values = {"expires_at": past} if expiry == "absolute" else {
        "last_seen_at": past - services.auth.idle_timeout}
    write_with_retry(services.engine, lambda s: s.execute(update(AuthSession).values(**values)))
    assert browser.get("/api/auth/me").status_code == 401


def test_a_password_change_ends_other_sessions_but_not_this_one(app: Flask, client: FlaskClient) -> None:
    laptop, phone = login(app), login(app)
    changed = laptop.post("/api/auth/password",
                          json={"current_password": ADMIN_PASSWORD, "new_password": "a brand new passphrase"})
    assert changed.status_code == 200
    assert laptop.get("/api/auth/me").status_code == 200
    assert phone.get("/api/auth/me").status_code == 401
    wrong = laptop.post("/api/auth/password",
                        json={"current_password": "nope", "new_password": "another new passphrase"})
    assert wrong.status_code == 400
    assert "current_password" in wrong.get_json()["error"]["details"]["fields"]


def test_admin_reset_and_disable_revoke_a_users_sessions(app: Flask, client: FlaskClient) -> None:
    made = client.post("/api/users", json={"username": "bob", "password": "bob's long password", "role": "user"})
    assert made.status_code == 201
    bob_id = made.get_json()["id"]
    bob = login(app, "bob", "bob's long password")
    assert client.post(f"/api/users/{bob_id}/revoke-sessions").status_code == 200
    assert bob.get("/api/auth/me").status_code == 401

    bob = login(app, "bob", "bob's long password")
    assert client.post(f"/api/users/{bob_id}/password", json={"password": "reset by the admin"}).status_code == 200
    assert bob.get("/api/auth/me").status_code == 401
    bob = login(app, "bob", "reset by the admin")
    assert client.patch(f"/api/users/{bob_id}", json={"disabled": True}).status_code == 200
    assert bob.get("/api/auth/me").status_code == 401
    refused = app.test_client().post("/api/auth/login", json={"username": "bob", "password": "reset by the admin"})
    assert refused.status_code == 401


def test_users_cannot_administer_and_do_not_see_the_audit_trail(app: Flask, client: FlaskClient) -> None:
    client.post("/api/users", json={"username": "carol", "password": "carol's long password"})
    carol = login(app, "carol", "carol's long password")
    assert carol.get("/api/users").status_code == 403
    assert carol.post("/api/users", json={"username": "x", "password": "y" * 12}).status_code == 403
    assert carol.get("/api/auth/me").get_json()["user"]["role"] == Role.USER
    types = {item["type"] for item in carol.get("/api/events").get_json()["items"]}
    assert not any(t.startswith("auth/") for t in types)
    admin_types = {item["type"] for item in client.get("/api/events").get_json()["items"]}
    assert {"auth/login", "auth/user_changed"} <= admin_types


def test_admins_cannot_lock_themselves_out(client: FlaskClient) -> None:
    me = client.get("/api/auth/me").get_json()["user"]["id"]
    assert client.patch(f"/api/users/{me}", json={"role": "user"}).status_code == 409
    assert client.patch(f"/api/users/{me}", json={"disabled": True}).status_code == 409
    assert client.delete(f"/api/users/{me}").status_code == 409


def test_cookie_writes_need_the_csrf_token_and_our_origin(app: Flask, client: FlaskClient) -> None:
    browser = login(app)
    token = browser.environ_base.pop("HTTP_X_CSRF_TOKEN")
    body = {"name": "t"}
    missing = browser.post("/api/auth/tokens", json=body)
    assert missing.status_code == 403
    assert missing.get_json()["error"]["code"] == "csrf_failed"
    assert browser.post("/api/auth/tokens", json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    foreign = browser.post("/api/auth/tokens", json=body,
                           headers={"X-CSRF-Token": token, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    same = browser.post("/api/auth/tokens", json=body, headers={"X-CSRF-Token": token, "Origin": "http://localhost"})
    assert same.status_code == 201


def test_sign_in_cannot_be_forged_from_another_site(app: Flask, client: FlaskClient) -> None:
    anonymous = app.test_client()
    form = anonymous.post("/api/auth/login", data=f'{{"username":"{ADMIN_NAME}","password":"{ADMIN_PASSWORD}"}}',
                          content_type="text/plain")
    assert form.status_code == 403
    cross = anonymous.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD},
                           headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403


def test_secure_cookies_behind_https_and_trusted_proxies(settings, services: Services, client) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings, services)
    direct = login(app, https=True)
    assert direct.get_cookie(SESSION_COOKIE, domain="localhost").secure
    spoofed = login(app, headers={"X-Forwarded-Proto": "https"})
    assert not spoofed.get_cookie(SESSION_COOKIE).secure

    trusting = build_services(settings.model_copy(update={"trusted_proxies": "127.0.0.0/8"}), engine=services.engine)
    proxied = login(create_app(settings, trusting), headers={"X-Forwarded-Proto": "https"})
    assert proxied.get_cookie(SESSION_COOKIE).secure


def test_failed_sign_ins_grow_a_delay_per_address_and_account(app: Flask, client: FlaskClient) -> None:
    attacker = app.test_client()
    for _ in range(FREE_FAILURES):
        answer = attacker.post("/api/auth/login", json={"username": ADMIN_NAME, "password": "guess"})
        assert answer.status_code == 401
    answer = attacker.post("/api/auth/login", json={"username": ADMIN_NAME, "password": "guess"})
    assert answer.status_code == 401  # this failure sets the first delay
    blocked = attacker.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.get_json()["error"]["details"]["retry_after_s"] >= 1
    other_ip = app.test_client().post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD},
                                      environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other_ip.status_code == 200  # the guesser never locks the real person out
    reasons = [i["payload"]["reason"] for i in client.get("/api/events?type=auth/login_failed").get_json()["items"]]
    assert reasons.count("bad_credentials") == FREE_FAILURES + 1
    assert "rate_limited" in reasons


def test_one_address_guessing_many_accounts_is_held_back(app: Flask, client: FlaskClient) -> None:
    spray = app.test_client()
    codes = [spray.post("/api/auth/login", json={"username": f"user{n}", "password": "guess"},
                        environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code for n in range(FREE_FAILURES_PER_IP + 2)]
    assert codes[:FREE_FAILURES_PER_IP + 1] == [401] * (FREE_FAILURES_PER_IP + 1)
    assert codes[-1] == 429  # a fresh account name does not buy a fresh allowance


def test_a_rotated_key_keeps_people_signed_in_and_re_signs_their_cookie(
    settings, services: Services, client  # type: ignore[no-untyped-def]
) -> None:
    browser = login(create_app(settings, services))
    old = session_cookie(browser)
    rotate_signing_key(services.data_dir.secrets)
    rotated = create_app(settings, build_services(settings, engine=services.engine))
    again = rotated.test_client()
    again.set_cookie(SESSION_COOKIE, old)
    answer = again.get("/api/auth/me")
    assert answer.status_code == 200
    assert session_cookie(again) != old


def test_the_websocket_needs_a_session_or_token_and_our_origin(
    runtime: Runtime, services: Services, admin_token: str
) -> None:
    url = f"ws://127.0.0.1:{runtime.port}/ws"
    with pytest.raises(websocket.WebSocketBadStatusException) as anonymous:
        websocket.create_connection(url, timeout=5)
    assert anonymous.value.status_code == 401
    _, identity = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent=None)
    cookie, _ = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent=None)
    with pytest.raises(websocket.WebSocketBadStatusException) as foreign:
        websocket.create_connection(url, timeout=5, cookie=f"{SESSION_COOKIE}={cookie}", origin="https://evil.example")
    assert foreign.value.status_code == 403
    ok = websocket.create_connection(url, timeout=5, cookie=f"{SESSION_COOKIE}={cookie}",
                                     origin=f"http://127.0.0.1:{runtime.port}")
    assert "events/hello" in ok.recv()
    ok.close()

"""Sessions and tokens over time: the session cookie, a live connection keeping its identity until its
session ends, sessions idling out, a disabled person's tokens, older password hashes upgraded, the
token and user lists, expiries read in their own time zone, signing out in the audit trail.

Written against the survivors of ``./dev.sh mutate auth/service`` and ``auth/guard``."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.auth.guard import SESSION_COOKIE
from studio.auth.models import AuthSession, Role, TokenScope, User
from studio.auth.passwords import needs_rehash
from studio.auth.service import aware
from studio.db import write_with_retry
from studio.errors import BadRequest
from studio.services import Services
from tests.auth_helpers import Script, make_token, told
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary, signed_in_user

# -- the session cookie in the browser -------------------------------------------------------------------


def test_the_session_cookie_lasts_the_session_and_signing_out_removes_it(app: Flask, client: FlaskClient,
                                                                        services: Services) -> None:
    browser = app.test_client()
    answer = browser.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD})
    assert answer.status_code == 200
    set_cookie = answer.headers["Set-Cookie"]
    assert f"Max-Age={int(services.auth.max_age.total_seconds())}" in set_cookie  # not gone with the browser
    for attribute in ("Path=/", "HttpOnly", "SameSite=Lax"):
        assert attribute in set_cookie
    assert browser.get_cookie(SESSION_COOKIE) is not None
    signed_out = browser.post("/api/auth/logout", json={},
                              headers={"X-CSRF-Token": answer.get_json()["csrf_token"]})
    assert signed_out.status_code == 200
    assert browser.get_cookie(SESSION_COOKIE) is None  # gone from the browser, not only ended on the server


# -- sessions and tokens over time ---------------------------------------------------------------------


def shift_session(services: Services, id_hash: str, *, seen: timedelta | None = None,
                  expires: timedelta | None = None) -> None:
    """Moves a session's clock: ``seen``/``expires`` are added to its last-seen and expiry times."""
    def work(session: Session) -> None:
        row = session.get(AuthSession, id_hash)
        assert row is not None
        if seen is not None:
            row.last_seen_at = aware(row.last_seen_at) + seen
        if expires is not None:
            row.expires_at = aware(row.expires_at) + expires
        session.add(row)

    write_with_retry(services.engine, work)


def test_a_live_connection_keeps_its_identity_until_its_session_ends(client: FlaskClient,
                                                                     services: Services) -> None:
    _, identity = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    assert identity.session_id_hash is not None
    assert services.auth.recheck(identity) == identity  # nothing changed: the very same identity

    # Ten minutes short of the idle limit it still holds; past it, or past the absolute expiry, it ends.
    shift_session(services, identity.session_id_hash, seen=-(services.auth.idle_timeout - timedelta(minutes=10)))
    assert services.auth.recheck(identity) == identity
    shift_session(services, identity.session_id_hash, seen=-timedelta(minutes=11))
    assert services.auth.recheck(identity) is None

    _, fresh = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    assert fresh.session_id_hash is not None
    shift_session(services, fresh.session_id_hash, expires=-(services.auth.max_age + timedelta(seconds=1)))
    assert services.auth.recheck(fresh) is None  # expired, though seen a moment ago

    _, signed_out = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    services.auth.logout(signed_out)
    assert services.auth.recheck(signed_out) is None


def test_a_live_connection_sees_a_new_role_and_ends_with_its_account(app: Flask, client: FlaskClient,
                                                                     services: Services) -> None:
    signed_in_user(app, client, "dora")
    _, dora = services.auth.login("dora", "dora's long password", ip="127.0.0.1", user_agent="tests")
    plain, _ = services.auth.create_token(dora, name="socket", scope=TokenScope.RUN,
                                          expires_at=datetime.now(UTC) + timedelta(days=1))
    by_token = services.auth.resolve_token(canary(plain))
    assert by_token is not None
    assert services.auth.recheck(by_token) == by_token  # a token with an expiry ahead holds too
    assert client.patch(f"/api/users/{dora.user_id}", json={"role": "admin"}).status_code == 200
    promoted = services.auth.recheck(by_token)
    assert promoted is not None
    assert (promoted.role, promoted.scope, promoted.via, promoted.token_id) == (
        Role.ADMIN, TokenScope.RUN, "token", by_token.token_id)
    assert client.delete(f"/api/users/{dora.user_id}").status_code == 200
    assert services.auth.recheck(by_token) is None
    assert services.auth.recheck(dora) is None


def test_a_session_in_use_is_kept_alive_and_an_unused_one_idles_out(app: Flask, client: FlaskClient,
                                                                    services: Services) -> None:
    used, unused = app.test_client(), app.test_client()
    hashes = []
    for browser in (used, unused):
        answer = browser.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD})
        assert answer.status_code == 200
        me = services.auth.resolve_cookie(browser.get_cookie(SESSION_COOKIE).value)  # type: ignore[union-attr]
        assert me is not None
        hashes.append(me.session_id_hash)
    almost = services.auth.idle_timeout - timedelta(minutes=2)
    for id_hash in hashes:  # both last used almost the idle limit ago
        shift_session(services, str(id_hash), seen=-almost)
    assert used.get("/api/auth/me").status_code == 200  # this use counts
    for id_hash in hashes:  # five more minutes pass
        shift_session(services, str(id_hash), seen=-timedelta(minutes=5))
    assert used.get("/api/auth/me").status_code == 200
    assert unused.get("/api/auth/me").status_code == 401


def test_a_disabled_persons_tokens_stop_working_and_work_again_when_enabled(app: Flask, client: FlaskClient) -> None:
    amy = signed_in_user(app, client, "amy")
    script = Script(app, make_token(amy)["token"])
    amy_id = script.get("/api/auth/me").get_json()["user"]["id"]
    assert client.patch(f"/api/users/{amy_id}", json={"disabled": True}).status_code == 200
    told(script.get("/api/auth/me"), 401, "bad_token")
    assert client.patch(f"/api/users/{amy_id}", json={"disabled": False}).status_code == 200
    assert script.get("/api/auth/me").status_code == 200


def test_an_account_with_an_older_password_hash_signs_in_and_is_upgraded(app: Flask, client: FlaskClient,
                                                                         services: Services) -> None:
    salt = b"0123456789abcdef"
    weaker = hashlib.scrypt(b"an old long password", salt=salt, n=2**12, r=8, p=1, dklen=32)
    old_hash = f"scrypt${2**12}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(weaker).decode()}"
    services.users.create_user("olga", "a placeholder password", Role.USER, actor=ADMIN_NAME)

    def plant(session: Session) -> None:
        user = session.exec(select(User).where(User.username == "olga")).one()
        user.password_hash = old_hash
        session.add(user)

    write_with_retry(services.engine, plant)
    for _ in range(2):  # before and after the upgrade
        answer = app.test_client().post("/api/auth/login", json={"username": "olga",
                                                                 "password": "an old long password"})
        assert answer.status_code == 200, answer.get_json()
    with Session(services.engine) as session:
        stored = session.exec(select(User).where(User.username == "olga")).one().password_hash
    assert stored != old_hash
    assert not needs_rehash(stored)


def test_the_token_list_shows_what_a_person_needs_to_tell_tokens_apart(client: FlaskClient) -> None:
    made = [make_token(client, name, scope=scope) for name, scope in (("one", "full"), ("two", "run"),
                                                                       ("three", "run"))]
    assert client.delete(f"/api/auth/tokens/{made[1]['id']}").status_code == 200
    listed = client.get("/api/auth/tokens").get_json()["items"]
    assert [(t["name"], t["scope"], t["revoked"]) for t in listed] == [
        ("one", "full", False), ("two", "run", True), ("three", "run", False)]
    for token in listed:
        assert datetime.fromisoformat(token["created_at"]).tzinfo is not None
        assert token["expires_at"] is None


def test_signing_out_is_in_the_audit_trail(app: Flask, client: FlaskClient) -> None:
    signed_in_user(app, client, "amy").post("/api/auth/logout", json={})
    items = client.get("/api/events?type=auth/logout").get_json()["items"]
    assert [i["payload"]["username"] for i in items] == ["amy"]


def test_an_expiry_is_read_in_its_own_time_zone(client: FlaskClient, services: Services) -> None:
    _, identity = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    in_two_hours = datetime.now(UTC) + timedelta(hours=2)
    new_york = timezone(timedelta(hours=-5))
    plain, view = services.auth.create_token(identity, name="ny", scope=TokenScope.FULL,
                                             expires_at=in_two_hours.astimezone(new_york))
    assert datetime.fromisoformat(view["expires_at"]) == in_two_hours
    assert Script(client.application, canary(plain)).get("/api/auth/me").status_code == 200
    with pytest.raises(BadRequest) as past:  # an hour ago in New York is in the past, whatever the clock says
        services.auth.create_token(identity, name="late", scope=TokenScope.FULL,
                                   expires_at=(datetime.now(UTC) - timedelta(hours=1)).astimezone(new_york))
    assert past.value.fields == {"expires_at": "in the past"}


def test_refusals_when_making_tokens_say_why(app: Flask, client: FlaskClient) -> None:
    past = client.post("/api/auth/tokens", json={"name": "x", "expires_at": "2020-01-01T00:00:00Z"})
    told(past, 400, "bad_request", "future")
    assert past.get_json()["error"]["details"]["fields"] == {"expires_at": "in the past"}
    script = Script(app, make_token(client)["token"])
    told(script.post("/api/auth/tokens", json={"name": "child"}), 403, "forbidden", "API tokens", "Account page")


def test_the_users_list_says_when_each_account_was_made(client: FlaskClient) -> None:
    for user in client.get("/api/users").get_json()["items"]:
        assert datetime.fromisoformat(user["created_at"]).tzinfo is not None


def test_a_signed_in_browser_is_told_who_it_is_and_its_cookie_is_not_sent_again(app: Flask,
                                                                               client: FlaskClient) -> None:
    answer = client.get("/api/auth/me")
    assert (answer.get_json()["user"]["username"], answer.get_json()["via"]) == (ADMIN_NAME, "session")
    assert "Set-Cookie" not in answer.headers  # re-sent only once a rotated key re-signs it

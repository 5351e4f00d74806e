"""API tokens: shown once, stored hashed, scoped, expiring, revocable; both header forms."""

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.auth.models import ApiToken
from studio.services import Services
from tests.conftest import canary


def make_token(client: FlaskClient, **body: object) -> dict:
    answer = client.post("/api/auth/tokens", json={"name": "script", **body})
    assert answer.status_code == 201, answer.get_json()
    canary(answer.get_json()["token"])
    return answer.get_json()


def test_a_token_is_shown_once_and_stored_hashed(client: FlaskClient, services: Services) -> None:
    created = make_token(client)
    plain = created["token"]
    listed = client.get("/api/auth/tokens").get_json()["items"]
    assert [t["name"] for t in listed] == ["script"]
    assert plain not in str(listed)
    assert plain.startswith(listed[0]["prefix"])
    with Session(services.engine) as session:
        stored = session.exec(select(ApiToken)).one()
    assert plain not in stored.token_hash


def test_bearer_and_x_api_key_work_without_csrf_and_record_use(app: Flask, client: FlaskClient) -> None:
    plain = make_token(client)["token"]
    script = app.test_client()
    assert script.get("/api/status", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    assert script.get("/api/status", headers={"X-API-Key": plain}).status_code == 200
    # token-authenticated writes need no CSRF token
    answer = script.post("/api/users", headers={"X-API-Key": plain},
                         json={"username": "dave", "password": "dave's long password"})
    assert answer.status_code == 201
    assert client.get("/api/auth/tokens").get_json()["items"][0]["last_used_at"] is not None


def test_run_scope_tokens_only_reach_run_endpoints(app: Flask, client: FlaskClient) -> None:
    plain = make_token(client, scope="run")["token"]
    script = app.test_client()
    headers = {"Authorization": f"Bearer {plain}"}
    assert script.get("/api/auth/me", headers=headers).get_json()["scope"] == "run"
    for path in ("/api/status", "/api/users", "/api/events", "/api/auth/tokens"):
        answer = script.get(path, headers=headers)
        assert answer.status_code == 403, path
        assert answer.get_json()["error"]["code"] == "token_scope"


def test_expired_revoked_and_wrong_tokens_are_refused(app: Flask, client: FlaskClient, services: Services) -> None:
    script = app.test_client()
    soon = make_token(client, expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    with Session(services.engine) as session:
        row = session.get(ApiToken, soon["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(row)
        session.commit()
    expired = script.get("/api/status", headers={"Authorization": f"Bearer {soon['token']}"})
    assert expired.status_code == 401
    assert expired.get_json()["error"]["code"] == "bad_token"

    revoked = make_token(client)
    assert client.delete(f"/api/auth/tokens/{revoked['id']}").status_code == 200
    assert script.get("/api/status", headers={"X-API-Key": revoked["token"]}).status_code == 401
    assert script.get("/api/status", headers={"X-API-Key": "sst_not-a-real-token"}).status_code == 401
    past = client.post("/api/auth/tokens", json={"name": "x", "expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 400


def test_tokens_cannot_mint_tokens(app: Flask, client: FlaskClient) -> None:
    plain = make_token(client)["token"]
    answer = app.test_client().post("/api/auth/tokens", json={"name": "child"}, headers={"X-API-Key": plain})
    assert answer.status_code == 403

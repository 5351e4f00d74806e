"""Sign-in, tokens and the route guard as people and scripts meet them: what a ``run``-scope token
can see and do (an admin's included), who may revoke a token, and what each refusal says.

Written against the survivors of ``./dev.sh mutate auth/service`` and ``auth/guard``."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Blueprint, Flask, Response, jsonify
from flask.testing import FlaskClient
from sqlmodel import Session, select
from werkzeug.test import TestResponse

from studio.app import create_app
from studio.auth.guard import SESSION_COOKIE, allow_run_scope
from studio.auth.models import AuthSession, Role, TokenScope, User
from studio.auth.passwords import needs_rehash
from studio.auth.service import aware
from studio.auth.throttle import FREE_FAILURES, FREE_FAILURES_PER_ACCOUNT
from studio.config import Settings
from studio.db import write_with_retry
from studio.errors import BadRequest
from studio.services import Services, build_services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary, signed_in_user
from tests.jobs_helpers import png_bytes, upload_image


def make_token(browser: FlaskClient, name: str = "script", **body: object) -> dict:
    answer = browser.post("/api/auth/tokens", json={"name": name, **body})
    assert answer.status_code == 201, answer.get_json()
    canary(answer.get_json()["token"])
    return dict(answer.get_json())


class Script:
    """A program calling the API with a token and nothing else (no cookie, no CSRF token)."""

    def __init__(self, app: Flask, token: str) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> TestResponse:
        return self.client.get(path, headers=self.headers)

    def post(self, path: str, **kwargs: object) -> TestResponse:
        return self.client.post(path, headers=self.headers, **kwargs)  # type: ignore[arg-type]

    def delete(self, path: str) -> TestResponse:
        return self.client.delete(path, headers=self.headers)


def told(answer: TestResponse, status: int, code: str, *words: str) -> str:
    """The refusal has this status and code, and tells the person in a sentence, naming ``words``."""
    assert answer.status_code == status, (answer.status_code, answer.get_json())
    error = answer.get_json()["error"]
    assert error["code"] == code, error
    message = str(error["message"])
    assert message[:1].isupper(), message
    assert message.endswith("."), message
    for word in words:
        assert word in message, (word, message)
    return message


def run_resize(browser: FlaskClient | Script, image: str) -> dict:
    answer = browser.post("/api/workflows/image-resize/run",
                          json={"params": {"image": image, "width": 16, "height": 16}})
    assert answer.status_code == 201, answer.get_json()
    [job] = answer.get_json()["items"]
    return dict(job)


def job_ids(browser: FlaskClient | Script) -> set[str]:
    answer = browser.get("/api/jobs")
    assert answer.status_code == 200, answer.get_json()
    return {job["id"] for job in answer.get_json()["items"]}


def test_a_run_scope_token_runs_workflows_and_follows_its_own_jobs(app: Flask, client: FlaskClient) -> None:
    amy = signed_in_user(app, client, "amy")
    script = Script(app, make_token(amy, scope="run")["token"])
    admins_job = run_resize(client, upload_image(client))

    me = script.get("/api/auth/me").get_json()
    assert (me["user"]["username"], me["user"]["role"], me["via"], me["scope"]) == ("amy", "user", "token", "run")
    assert script.get("/api/workflows/image-resize").status_code == 200
    assert script.get("/api/queue").status_code == 200

    uploaded = script.post("/api/inputs", data={"image": (io.BytesIO(png_bytes()), "in.png")},
                           content_type="multipart/form-data")
    assert uploaded.status_code in (200, 201), uploaded.get_json()
    job = run_resize(script, uploaded.get_json()["name"])  # a token-authenticated write needs no CSRF token
    assert job_ids(script) == {job["id"]}
    assert script.get(f"/api/jobs/{job['id']}").get_json()["id"] == job["id"]
    assert job["id"] in job_ids(client)  # it is amy's job, as the admin sees

    told(script.get(f"/api/jobs/{admins_job['id']}"), 404, "job_not_found")
    for path in ("/api/workflows", "/api/users", "/api/status", "/api/events", "/api/auth/tokens", "/api/downloads"):
        told(script.get(path), 403, "token_scope", "run workflows")
    told(script.post("/api/auth/tokens", json={"name": "child"}), 403, "token_scope")


def test_an_admins_run_scope_token_is_no_admin(app: Flask, client: FlaskClient) -> None:
    amy = signed_in_user(app, client, "amy")
    amys_job = run_resize(amy, upload_image(amy))
    own_job = run_resize(client, upload_image(client))
    script = Script(app, make_token(client, scope="run")["token"])

    me = script.get("/api/auth/me").get_json()
    assert (me["user"]["role"], me["scope"]) == ("admin", "run")
    assert job_ids(script) == {own_job["id"]}  # not everyone's, as the admin's own session sees
    assert job_ids(client) == {own_job["id"], amys_job["id"]}
    told(script.get(f"/api/jobs/{amys_job['id']}"), 404, "job_not_found")
    told(script.post(f"/api/jobs/{amys_job['id']}/cancel", json={}), 404, "job_not_found")
    assert client.get(f"/api/jobs/{amys_job['id']}").get_json()["status"] == amys_job["status"]
    for path in ("/api/users", "/api/events", "/api/downloads"):
        told(script.get(path), 403, "token_scope")
    told(script.post("/api/users", json={"username": "eve", "password": "eve's long password"}), 403, "token_scope")


def test_a_token_is_revoked_only_by_its_owner_or_an_admin(app: Flask, client: FlaskClient) -> None:
    amy, ben = signed_in_user(app, client, "amy"), signed_in_user(app, client, "ben")
    amys = make_token(amy, "amy's")
    bens = make_token(ben, "ben's")
    admins = make_token(client, "admin's")

    assert [t["name"] for t in amy.get("/api/auth/tokens").get_json()["items"]] == ["amy's"]
    assert [t["name"] for t in ben.get("/api/auth/tokens").get_json()["items"]] == ["ben's"]

    for victim in (amys, admins):  # someone else's token: as if it did not exist, and it keeps working
        told(ben.delete(f"/api/auth/tokens/{victim['id']}"), 404, "not_found", "token")
        assert Script(app, victim["token"]).get("/api/auth/me").status_code == 200
    told(ben.delete("/api/auth/tokens/999999"), 404, "not_found")

    assert ben.delete(f"/api/auth/tokens/{bens['id']}").status_code == 200
    told(Script(app, bens["token"]).get("/api/auth/me"), 401, "bad_token", "revoked")
    assert ben.get("/api/auth/tokens").get_json()["items"][0]["revoked"] is True
    assert ben.delete(f"/api/auth/tokens/{bens['id']}").status_code == 200  # again: still revoked, no error

    assert client.delete(f"/api/auth/tokens/{amys['id']}").status_code == 200  # an admin may revoke anyone's
    told(Script(app, amys["token"]).get("/api/auth/me"), 401, "bad_token")
    assert Script(app, admins["token"]).get("/api/auth/me").status_code == 200


def test_an_admins_full_token_revokes_anyones_but_a_run_token_cannot(app: Flask, client: FlaskClient) -> None:
    amy = signed_in_user(app, client, "amy")
    amys = make_token(amy, "amy's")
    full = Script(app, make_token(client, "full")["token"])
    run = Script(app, make_token(client, "run", scope="run")["token"])
    told(run.delete(f"/api/auth/tokens/{amys['id']}"), 403, "token_scope")
    assert Script(app, amys["token"]).get("/api/auth/me").status_code == 200
    assert full.delete(f"/api/auth/tokens/{amys['id']}").status_code == 200
    told(Script(app, amys["token"]).get("/api/auth/me"), 401, "bad_token")


def test_audit_trail_names_who_made_and_revoked_tokens(client: FlaskClient, services: Services) -> None:
    made = make_token(client, "nightly", scope="run")
    assert client.delete(f"/api/auth/tokens/{made['id']}").status_code == 200
    items = client.get("/api/events?type=auth/token").get_json()["items"]
    seen = [(i["type"], i["payload"].get("name"), i["payload"].get("username")) for i in items]
    assert ("auth/token_created", "nightly", "admin") in seen
    assert ("auth/token_revoked", "nightly", "admin") in seen
    created = next(i for i in items if i["type"] == "auth/token_created")
    assert created["payload"]["scope"] == "run"


# -- what each refusal says --------------------------------------------------------------------------


def test_each_refusal_names_its_reason_in_a_sentence(app: Flask, client: FlaskClient) -> None:
    carol = signed_in_user(app, client, "carol")
    told(carol.get("/api/users"), 403, "admin_only", "admin")
    told(carol.post("/api/users", json={"username": "x", "password": "y" * 12}), 403, "admin_only", "admin")
    told(app.test_client().get("/api/status"), 401, "unauthorized", "Sign in")
    told(Script(app, "sst_" + "x" * 40).get("/api/status"), 401, "bad_token", "invalid", "revoked")
    csrf = carol.environ_base.pop("HTTP_X_CSRF_TOKEN")
    told(carol.post("/api/auth/tokens", json={"name": "t"}), 403, "csrf_failed", "CSRF")
    carol.environ_base["HTTP_X_CSRF_TOKEN"] = csrf
    told(client.get("/api/status", headers={"Host": "rebind.example"}), 421, "host_not_allowed",
         "'rebind.example'", "STUDIO_ALLOWED_HOSTS")
    told(app.test_client().post("/api/auth/setup", json={"username": "m", "password": "m" * 20}), 409,
         "already_set_up", "Sign in")


# -- Origin: the same scheme, host and port, however it is written -------------------------------------


def login_at(app: Flask, base_url: str) -> FlaskClient:
    browser = app.test_client()
    answer = browser.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD},
                          base_url=base_url)
    assert answer.status_code == 200, answer.get_json()
    browser.environ_base["HTTP_X_CSRF_TOKEN"] = answer.get_json()["csrf_token"]
    return browser


def write_from(browser: FlaskClient, base_url: str, origin: str) -> int:
    answer = browser.post("/api/auth/tokens", json={"name": "o"}, base_url=base_url, headers={"Origin": origin})
    if answer.status_code == 201:
        canary(answer.get_json()["token"])
    else:
        assert answer.get_json()["error"]["code"] == "csrf_failed", (origin, answer.get_json())
    return answer.status_code


def test_an_origin_matches_whatever_its_case_or_spelled_out_default_port(app: Flask, client: FlaskClient) -> None:
    for base_url, origins_ok, origins_refused in (
        ("http://localhost", ("http://localhost", "http://localhost:80", "HTTP://LocalHost", " http://localhost "),
         ("https://localhost", "http://localhost:443", "http://", "http://:80", "ftp://localhost")),
        ("https://localhost", ("https://localhost", "https://localhost:443", "HTTPS://LOCALHOST"),
         ("http://localhost", "https://localhost:80", "http://localhost:443", "https://")),
        ("http://localhost:8000", ("http://localhost:8000",), ("http://localhost", "http://localhost:80")),
        ("http://[::1]:8000", ("http://[::1]:8000",), ("http://[::1:8000]", "http://[::1]", "http://[::2]:8000")),
        ("http://strasse.localhost", ("http://strasse.localhost",), ("http://straße.localhost",)),
    ):
        browser = login_at(app, base_url)
        for origin in origins_ok:
            assert write_from(browser, base_url, origin) == 201, (base_url, origin)
        for origin in origins_refused:
            assert write_from(browser, base_url, origin) == 403, (base_url, origin)


# -- the address a sign-in is recorded from ------------------------------------------------------------


def last_login_ip(admin: FlaskClient) -> str:
    items = admin.get("/api/events?type=auth/login").get_json()["items"]
    return str(items[0]["payload"]["ip"])


def sign_in_from(app: Flask, *, remote: str = "127.0.0.1", forwarded: str | None = None) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    answer = app.test_client().post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD},
                                    headers=headers, environ_base={"REMOTE_ADDR": remote})
    assert answer.status_code == 200, answer.get_json()


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    settings: Settings, services: Services, client: FlaskClient
) -> None:
    sign_in_from(client.application, forwarded="198.51.100.7")  # nobody is trusted by default
    assert last_login_ip(client) == "127.0.0.1"
    sign_in_from(client.application, remote="", forwarded="198.51.100.7")  # no peer address: never a proxy
    assert last_login_ip(client) == "unknown"

    trusting = settings.model_copy(update={"trusted_proxies": "127.0.0.0/8, 10.0.0.0/8"})
    behind = create_app(trusting, build_services(trusting, engine=services.engine))
    sign_in_from(behind, forwarded="198.51.100.7, 203.0.113.9, 10.0.0.1")  # the last hop no proxy of ours added
    assert last_login_ip(client) == "203.0.113.9"
    sign_in_from(behind, forwarded="203.0.113.9 , not-an-address")
    assert last_login_ip(client) == "not-an-address"  # what our proxy said it saw, trusted no further
    sign_in_from(behind, forwarded="10.0.0.2, 10.0.0.1")  # proxies all the way: the peer itself
    assert last_login_ip(client) == "127.0.0.1"
    sign_in_from(behind)  # a trusted proxy that says nothing
    assert last_login_ip(client) == "127.0.0.1"
    sign_in_from(behind, remote="192.0.2.1", forwarded="203.0.113.9")  # not from a trusted proxy
    assert last_login_ip(client) == "192.0.2.1"


def test_trusted_proxies_changed_on_the_settings_page_apply_at_once(client: FlaskClient) -> None:
    sign_in_from(client.application, forwarded="203.0.113.9")
    assert last_login_ip(client) == "127.0.0.1"
    assert client.put("/api/settings", json={"trusted_proxies": "127.0.0.1"}).status_code == 200
    sign_in_from(client.application, forwarded="203.0.113.9")
    assert last_login_ip(client) == "203.0.113.9"


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


# -- views marked for run-scope tokens ---------------------------------------------------------------------


def test_a_view_marked_for_run_scope_tokens_answers_them_and_an_unmarked_one_does_not(
    settings: Settings, services: Services, client: FlaskClient
) -> None:
    def marked() -> Response:
        return jsonify({"ok": True})

    def unmarked() -> Response:
        return jsonify({"ok": True})

    # A name no earlier run (in this process) can have marked already.
    marked.__name__ = f"marked_{uuid.uuid4().hex}"
    extra = Blueprint("extra", __name__)
    extra.add_url_rule("/api/extra/marked", view_func=allow_run_scope(marked))
    extra.add_url_rule("/api/extra/unmarked", view_func=unmarked)

    app = create_app(settings, services)
    app.register_blueprint(extra)
    _, identity = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    plain, _ = services.auth.create_token(identity, name="run", scope=TokenScope.RUN, expires_at=None)
    script = Script(app, canary(plain))
    assert script.get("/api/extra/marked").get_json() == {"ok": True}
    told(script.get("/api/extra/unmarked"), 403, "token_scope")


# -- host names: DNS rebinding -------------------------------------------------------------------------


def host_status(app: Flask, host: str, **headers: str) -> int:
    return app.test_client().get("/api/auth/state", headers={"Host": host, **headers}).status_code


def test_allowed_host_patterns_match_whole_labels_only(settings: Settings, services: Services) -> None:
    configured = settings.model_copy(update={"studio_allowed_hosts": "Studio.Example.com., *.proxy.runpod.net"})
    app = create_app(configured, build_services(configured, engine=services.engine))
    for host, status in (
        ("studio.example.com", 200),  # the setting's case and trailing dot do not matter
        ("studio.example.com:8443", 200),
        ("a.proxy.runpod.net", 200),  # one letter before the dot is a sub-domain
        ("xproxy.runpod.net", 421),  # glued onto the suffix: another domain
        (".proxy.runpod.net", 421),  # nothing before the dot
        ("user@a.proxy.runpod.net", 421),  # no host name holds these characters
        ("a b.proxy.runpod.net", 421),
        ("a/b.proxy.runpod.net", 421),
    ):
        assert host_status(app, host) == status, host


def test_a_star_allows_every_host_name(settings: Settings, services: Services) -> None:
    configured = settings.model_copy(update={"studio_allowed_hosts": "*"})
    app = create_app(configured, build_services(configured, engine=services.engine))
    assert host_status(app, "anything.example") == 200
    assert host_status(app, "user@anything.example") == 421  # still never a name with an @


def test_a_guard_told_no_extra_names_allows_only_its_own() -> None:
    from studio.auth.guard import Guard

    guard = Guard("")
    assert not guard.host_allowed("xxxx")
    assert not guard.host_allowed("rebind.example")
    assert guard.host_allowed("localhost:8000")
    assert guard.host_allowed("203.0.113.9")


def test_a_trusted_proxys_forwarded_host_list_names_the_browsers_host_first(
    settings: Settings, services: Services, client: FlaskClient
) -> None:
    configured = settings.model_copy(update={"studio_allowed_hosts": "studio.example.com",
                                             "trusted_proxies": "127.0.0.1/8"})  # a host address with a mask
    app = create_app(configured, build_services(configured, engine=services.engine))
    assert host_status(app, "127.0.0.1:8000", **{"X-Forwarded-Host": "studio.example.com, 10.0.0.5:8000"}) == 200
    assert host_status(app, "127.0.0.1:8000", **{"X-Forwarded-Host": "rebind.example, studio.example.com"}) == 421

    # Behind the proxy, the browser's Origin is the forwarded scheme and host.
    browser = app.test_client()
    behind = {"X-Forwarded-Host": "studio.example.com", "X-Forwarded-Proto": "https"}
    answer = browser.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD},
                          headers={**behind, "Origin": "https://studio.example.com"})
    assert answer.status_code == 200, answer.get_json()
    csrf = answer.get_json()["csrf_token"]
    for origin, status in (("https://studio.example.com", 201), ("http://studio.example.com", 403),
                           ("https://127.0.0.1:8000", 403)):
        made = browser.post("/api/auth/tokens", json={"name": "p"},
                            headers={**behind, "Origin": origin, "X-CSRF-Token": csrf})
        assert made.status_code == status, origin
        if status == 201:
            canary(made.get_json()["token"])


def test_a_sign_in_posted_by_another_site_is_told_to_use_studios_page(app: Flask, client: FlaskClient) -> None:
    form = app.test_client().post("/api/auth/login", data="username=admin&password=x",
                                  content_type="application/x-www-form-urlencoded")
    told(form, 403, "csrf_failed", "Studio's own page")


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


# -- sign-in: what the person is told, what the audit trail and the log say -----------------------------


def sign_in(app: Flask, username: str, password: str, ip: str) -> TestResponse:
    return app.test_client().post("/api/auth/login", json={"username": username, "password": password},
                                  environ_base={"REMOTE_ADDR": ip})


def audit(admin: FlaskClient, type_: str) -> list[dict]:
    return [i["payload"] for i in admin.get(f"/api/events?type={type_}&limit=500").get_json()["items"]]


def test_sign_in_answers_and_audit_entries_name_the_person_the_address_and_the_reason(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="studio.auth.service")
    ok = sign_in(app, ADMIN_NAME, ADMIN_PASSWORD, "198.51.100.4")
    assert (ok.get_json()["user"]["username"], ok.get_json()["via"]) == (ADMIN_NAME, "session")
    assert ok.get_json()["csrf_token"]
    assert audit(client, "auth/login")[0] == {"username": ADMIN_NAME, "ip": "198.51.100.4"}

    told(sign_in(app, ADMIN_NAME, "a wrong guess", "203.0.113.7"), 401, "bad_credentials",
         "Wrong user name or password")
    told(sign_in(app, "nobody", "a wrong guess", "203.0.113.7"), 401, "bad_credentials")
    amy = signed_in_user(app, client, "amy")
    amy_id = amy.get("/api/auth/me").get_json()["user"]["id"]
    assert client.patch(f"/api/users/{amy_id}", json={"disabled": True}).status_code == 200
    told(sign_in(app, "amy", "amy's long password", "203.0.113.8"), 401, "bad_credentials")  # says no more
    failed = audit(client, "auth/login_failed")
    assert failed[:3] == [{"username": "amy", "ip": "203.0.113.8", "reason": "disabled"},
                          {"username": "nobody", "ip": "203.0.113.7", "reason": "bad_credentials"},
                          {"username": ADMIN_NAME, "ip": "203.0.113.7", "reason": "bad_credentials"}]

    lines = [r.getMessage() for r in caplog.records if r.name == "studio.auth.service"]
    assert f"{ADMIN_NAME} signed in from 198.51.100.4" in lines
    assert any(line.startswith(f"failed sign-in as '{ADMIN_NAME}' from 203.0.113.7 (next delay") for line in lines)


def test_a_held_back_address_is_told_when_to_try_again_and_the_audit_says_why(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="studio.auth.service")
    for _ in range(FREE_FAILURES + 1):
        sign_in(app, ADMIN_NAME, "a wrong guess", "203.0.113.9")
    held = sign_in(app, ADMIN_NAME, ADMIN_PASSWORD, "203.0.113.9")
    message = told(held, 429, "rate_limited", "Try again in")
    assert f"{held.get_json()['error']['details']['retry_after_s']} s" in message
    assert audit(client, "auth/login_failed")[0] == {"username": ADMIN_NAME, "ip": "203.0.113.9",
                                                     "reason": "rate_limited"}
    lines = [r.getMessage() for r in caplog.records if r.name == "studio.auth.service"]
    assert any(line.startswith(f"sign-in as '{ADMIN_NAME}' from 203.0.113.9 refused for") for line in lines)


def test_an_account_guessed_from_many_addresses_raises_one_alert_naming_it(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="studio.auth.service")
    for n in range(FREE_FAILURES_PER_ACCOUNT + 1):
        sign_in(app, ADMIN_NAME, "a wrong guess", f"203.0.113.{n + 1}")
    [alert] = audit(client, "auth/account_attacked")
    assert alert == {"username": ADMIN_NAME, "ip": f"203.0.113.{FREE_FAILURES_PER_ACCOUNT + 1}",
                     "failures": FREE_FAILURES_PER_ACCOUNT + 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "studio.auth.service"]
    assert f"account '{ADMIN_NAME}' is being guessed from many addresses" in lines


def test_an_untrusted_proxy_is_pointed_out_once_in_the_log(settings: Settings, services: Services,
                                                           client: FlaskClient,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings, build_services(settings, engine=services.engine))  # a guard that has not warned
    caplog.set_level(logging.WARNING, logger="studio.auth.guard")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "studio.auth.guard"]

    sign_in_from(app, remote="192.0.2.10")  # no proxy in front: nothing to say
    assert warnings() == []
    sign_in_from(app, remote="192.0.2.10", forwarded="203.0.113.9")
    [warning] = warnings()
    assert warning == ("requests come through a proxy at 192.0.2.10 that TRUSTED_PROXIES does not list: everyone "
                       "shares its address, so one person's failed sign-ins slow everyone's. "
                       "Add the proxy to TRUSTED_PROXIES.")  # the why and the fix, word for word
    sign_in_from(app, remote="192.0.2.10", forwarded="203.0.113.9")
    assert len(warnings()) == 1  # once, not on every request

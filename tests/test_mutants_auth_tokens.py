"""API tokens as scripts meet them: what a ``run``-scope token can see and do (an admin's included), who
may revoke a token, the audit trail of both, a view marked for run-scope tokens, and what each
refusal says.

Written against the survivors of ``./dev.sh mutate auth/service`` and ``auth/guard``."""

from __future__ import annotations

import io
import uuid

from flask import Blueprint, Flask, Response, jsonify
from flask.testing import FlaskClient

from studio.app import create_app
from studio.auth.guard import allow_run_scope
from studio.auth.models import TokenScope
from studio.config import Settings
from studio.services import Services
from tests.auth_helpers import Script, make_token, told
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary, signed_in_user
from tests.jobs_helpers import png_bytes, upload_image


def run_resize(browser: FlaskClient | Script, image: str) -> dict:
    answer = browser.post("/api/workflows/image-resize/run",
                          json={"params": {"image": image, "width": 16, "height": 16}})
    assert answer.status_code == 202, answer.get_json()
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
    assert "image-resize" in {w["id"] for w in script.get("/api/workflows").get_json()["items"]}
    assert script.get("/api/queue").status_code == 200

    uploaded = script.post("/api/inputs", data={"image": (io.BytesIO(png_bytes()), "in.png")},
                           content_type="multipart/form-data")
    assert uploaded.status_code in (200, 201), uploaded.get_json()
    job = run_resize(script, uploaded.get_json()["name"])  # a token-authenticated write needs no CSRF token
    assert job_ids(script) == {job["id"]}
    assert script.get(f"/api/jobs/{job['id']}").get_json()["id"] == job["id"]
    assert job["id"] in job_ids(client)  # it is amy's job, as the admin sees

    told(script.get(f"/api/jobs/{admins_job['id']}"), 404, "job_not_found")
    for path in ("/api/users", "/api/status", "/api/events", "/api/auth/tokens", "/api/downloads"):
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

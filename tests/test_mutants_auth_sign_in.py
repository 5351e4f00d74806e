"""Sign-in as the person, the audit trail and the log see it: the address a sign-in is recorded from
(X-Forwarded-For only from a trusted proxy), what a refused or held-back sign-in is told, one alert
for an account guessed from many addresses, and an untrusted proxy pointed out once.

Written against the survivors of ``./dev.sh mutate auth/service`` and ``auth/guard``."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from studio.app import create_app
from studio.auth.throttle import FREE_FAILURES, FREE_FAILURES_PER_ACCOUNT
from studio.config import Settings
from studio.services import Services, build_services
from tests.auth_helpers import told
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, signed_in_user

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

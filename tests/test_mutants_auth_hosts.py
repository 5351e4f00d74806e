"""The guard's Origin and Host checks: an origin matches whatever its case or spelled-out default port,
allowed host names match whole labels only (DNS rebinding), a trusted proxy's forwarded host names
the browser's host, and a sign-in posted by another site is sent to Studio's own page.

Written against the survivors of ``./dev.sh mutate auth/service`` and ``auth/guard``."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.services import Services, build_services
from tests.auth_helpers import told
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary

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

"""Sign-in's ``next`` in a real browser: every payload that once left the site stays on it."""

from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, signed_in_user
from tests.test_browser import browser, page, shoot  # noqa: F401 - the shared chromium fixtures

pytestmark = pytest.mark.browser

LEAVING = ["/%09/evil.example/", "/%0a/evil.example/", "/%0d/evil.example/", "/%09%5cevil.example/",
           "//evil.example/", "/%5cevil.example/", "%5c%5cevil.example", "https://evil.example/",
           "javascript:alert(document.domain)", "/%2F%2Fevil.example", "%09//evil.example", "http:evil.example"]


def test_next_after_sign_in_never_leaves_the_site(page: Page, runtime: Runtime, services: Services) -> None:  # noqa: F811
    services.users.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
    base = f"http://127.0.0.1:{runtime.port}"
    landed = []
    for payload in LEAVING:
        page.context.clear_cookies()
        page.goto(f"{base}/login?next={payload}")
        page.fill("#username", ADMIN_NAME)
        page.fill("#password", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#signin-form")).to_have_count(0, timeout=10_000)
        page.wait_for_load_state("networkidle")
        landed.append((payload, urlsplit(page.url).netloc))
    assert all(netloc == f"127.0.0.1:{runtime.port}" for _, netloc in landed), landed
    # A same-site next is still honoured, query and fragment included.
    page.context.clear_cookies()
    page.goto(f"{base}/login?next=%2Fsettings%3Fx%3D1")
    page.fill("#username", ADMIN_NAME)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/settings?x=1")
    expect(page.locator("main h1")).to_have_text("Settings")


def test_a_plain_user_sees_why_the_queue_waits_but_cannot_pause_it(
    page: Page, runtime: Runtime, services: Services, client: FlaskClient  # noqa: F811
) -> None:
    signed_in_user(runtime.app, client, "dora")
    assert client.post("/api/queue/pause", json={}).status_code == 200
    base = f"http://127.0.0.1:{runtime.port}"
    page.goto(f"{base}/login?next=/queue")
    page.fill("#username", "dora")
    page.fill("#password", "dora's long password")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/queue")
    expect(page.locator("#queue-paused")).to_be_visible()
    expect(page.locator("#pause")).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel my waiting jobs")).to_be_visible()
    shoot(page, "queue-plain-user-paused")

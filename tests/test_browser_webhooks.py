"""Webhooks in a real browser: add one, see its secret once, send a test, read the delivery log."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.test_webhooks import Receiver

SHOTS = Path("/tmp/shots/W")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_add_a_webhook_see_its_secret_once_and_its_test_delivery_in_the_log(
    page: Page, runtime: Runtime, services: Services, receiver: Receiver,  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    allowed = page.evaluate("""async () => {
      const me = await (await fetch('/api/auth/me')).json();
      const answer = await fetch('/api/settings', {method: 'PUT', headers: {'Content-Type': 'application/json',
        'X-CSRF-Token': me.csrf_token}, body: JSON.stringify({webhook_allowed_hosts: '127.0.0.1'})});
      return answer.status;
    }""")
    assert allowed == 200
    page.click("#sidenav a[href='/webhooks']")
    page.fill("#webhook-url", receiver.url)
    page.get_by_role("button", name="Add webhook").click()
    secret = page.locator("#webhook-secret")
    expect(secret).to_be_visible()
    assert len(secret.inner_text().strip()) >= 32
    card = page.locator("[data-webhook]")
    expect(card).to_have_count(1)
    card.get_by_role("button", name="Send test").click()
    expect(card.locator("[data-delivery] [data-status]")).to_have_text("delivered", timeout=15_000)
    assert any(item.headers.get("X-Studio-Event") == "webhook.test" for item in receiver.received)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shoot(page, "webhooks")
    shutil.copy(Path("artifacts/screenshots") / "webhooks.png", SHOTS / "webhooks.png")
    page.reload()
    expect(page.locator("[data-webhook]")).to_have_count(1)
    expect(page.locator("#webhook-secret")).to_have_count(0)  # shown once, never again

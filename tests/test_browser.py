"""The web UI in a real browser: Debian's chromium driven by Playwright."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.servers.comfyui import ComfyUITestServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: ./dev.sh test installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda err: errors.append(str(err)))
    yield opened
    context.close()
    assert errors == [], errors


def sign_in(page: Page, port: int, services: Services) -> None:
    """Creates the admin directly, then signs in through the sign-in page like a person."""
    if services.auth.setup_needed():
        services.auth.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
    page.goto(f"http://127.0.0.1:{port}/")
    expect(page).to_have_url(f"http://127.0.0.1:{port}/login?next=/")
    page.fill("#username", ADMIN_NAME)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"http://127.0.0.1:{port}/")


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_home_follows_comfyui_going_away_and_coming_back(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    sign_in(page, runtime.port, services)
    indicator = page.locator("#comfy-indicator")
    expect(indicator).to_have_attribute("data-state", "connected", timeout=10_000)
    expect(page.locator("#studio-indicator")).to_have_attribute("data-state", "connected")
    expect(page.locator("#comfy-version")).to_have_text("0.3.64")
    expect(page.locator("#machine-card")).to_contain_text("RAM")
    expect(page.locator("#activity-list")).to_contain_text("ComfyUI connected")
    shoot(page, "home-connected")

    comfy_server.stop()
    expect(indicator).to_have_attribute("data-state", "disconnected", timeout=5_000)
    expect(indicator).to_have_text("ComfyUI disconnected")
    expect(page.locator("#comfy-card")).to_contain_text("cannot be reached", timeout=5_000)
    shoot(page, "home-disconnected")

    comfy_server.start()
    expect(indicator).to_have_attribute("data-state", "connected", timeout=10_000)
    expect(page.locator("#comfy-card")).to_contain_text("Connected")


def test_navigation_and_a_phone_sized_screen(browser: Browser, runtime: Runtime, services: Services) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, runtime.port, services)
    expect(page.locator("#comfy-indicator")).to_have_attribute("data-state", "connected", timeout=10_000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the phone"
    shoot(page, "home-phone")

    page.click("#nav-toggle")
    page.get_by_role("link", name="Queue").click()
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/queue")
    expect(page.locator("main h1")).to_have_text("Queue")
    expect(page.locator("#sidenav")).to_be_hidden()
    page.go_back()
    expect(page.locator("main h1")).to_have_text("Home")
    context.close()

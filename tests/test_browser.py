"""The web UI in a real browser: Debian's chromium driven by Playwright."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from studio.auth.guard import SESSION_COOKIE
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary
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
    assert errors == [], f"JavaScript errors on the page: {errors}"


def sign_in(page: Page, port: int, services: Services) -> None:
    """Creates the admin directly, then signs in through the sign-in page like a person."""
    if services.users.setup_needed():
        services.users.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
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
    page.get_by_role("link", name="System").click()
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/system")
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
    sign_out = page.locator("#logout").bounding_box()
    assert sign_out is not None
    assert sign_out["x"] + sign_out["width"] <= 390, "the top bar runs off the screen"
    shoot(page, "home-phone")

    page.click("#nav-toggle")
    page.get_by_role("link", name="Queue").click()
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/queue")
    expect(page.locator("main h1")).to_have_text("Queue")
    expect(page.locator("#sidenav")).to_be_hidden()
    page.go_back()
    expect(page.locator("#sidenav a[aria-current=page]")).to_have_text("Run")
    context.close()


def test_setup_then_sign_in_then_sign_out_ends_the_session(browser: Browser, runtime: Runtime) -> None:
    base = f"http://127.0.0.1:{runtime.port}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/queue")
    expect(page).to_have_url(f"{base}/setup")
    page.fill("#username", ADMIN_NAME)
    page.fill("#password", "too short")
    page.fill("#password2", "too short")
    page.click("button[type=submit]")
    expect(page.locator("#form-error")).to_contain_text("at least 10 characters")
    shoot(page, "setup-error")
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#password2", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("#user-name")).to_have_text(ADMIN_NAME)
    expect(page.locator("#comfy-indicator")).to_have_attribute("data-state", "connected", timeout=10_000)

    page.click("#logout")
    # Sign-out goes to /login; a request that was in flight may get there first with ?next=.
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/login(\?next=.*)?$"))
    page.fill("#username", ADMIN_NAME)
    page.fill("#password", "wrong password here")
    page.click("button[type=submit]")
    expect(page.locator("#form-error")).to_have_text("Wrong user name or password.")
    shoot(page, "login-error")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/")
    old_cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    assert old_cookie["httpOnly"]
    assert old_cookie["sameSite"] == "Lax"

    page.click("#logout")
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/login(\?next=.*)?$"))
    replay = requests.get(f"{base}/api/auth/me", cookies={SESSION_COOKIE: old_cookie["value"]}, timeout=5)
    assert replay.status_code == 401
    context.close()


def test_account_and_users_pages(page: Page, runtime: Runtime, services: Services) -> None:
    base = f"http://127.0.0.1:{runtime.port}"
    sign_in(page, runtime.port, services)
    page.click("#user-name")
    expect(page.locator("main h1")).to_have_text("Account")
    page.fill("#token-form input[name=name]", "telegram bot")
    page.select_option("#token-form select[name=scope]", "run")
    page.click("#token-form button[type=submit]")
    token = page.locator("#token-value")
    expect(token).to_contain_text("sst_")
    canary(token.inner_text())
    expect(page.locator("tr[data-token='telegram bot']")).to_contain_text("run")
    shoot(page, "account")
    answer = requests.get(f"{base}/api/auth/me", headers={"Authorization": f"Bearer {token.inner_text()}"}, timeout=5)
    assert answer.json()["scope"] == "run"

    page.get_by_role("link", name="Users").click()
    page.fill("#new-user input[name=username]", "erin")
    page.fill("#new-user input[name=password]", "erin's long password")
    page.click("#new-user button[type=submit]")
    expect(page.locator("tr[data-user=erin]")).to_contain_text("active")
    page.locator("tr[data-user=erin]").get_by_role("button", name="Disable").click()
    expect(page.locator("tr[data-user=erin]")).to_contain_text("disabled")
    shoot(page, "users")


def test_settings_page_validates_and_masks_secrets(page: Page, runtime: Runtime, services: Services) -> None:
    sign_in(page, runtime.port, services)
    expect(page.locator("#user-name")).to_be_visible()
    page.get_by_role("link", name="Settings").click()
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/settings")
    url = page.locator("#setting-comfyui_url")
    expect(url).to_have_value(services.comfy.base_url, timeout=10_000)
    url.fill("ftp://wrong")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("[data-key=comfyui_url] .field-error")).to_contain_text("http://")
    url.fill(services.comfy.base_url)
    secret = canary("civitai-" + "9" * 24)
    page.fill("#setting-civitai_api_key", secret)
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#setting-civitai_api_key")).to_have_attribute("placeholder", "saved: civi…9999")
    expect(page.locator("#setting-civitai_api_key")).to_have_value("")
    assert secret not in page.content()
    shoot(page, "settings")

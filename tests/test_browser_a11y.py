"""Every page, scanned by axe-core (from the npm registry, tests/browser-tools/) in a real browser, with
realistic data on it: no critical or serious violation, and nothing wider than the screen at 1440 px
and on a 390 px phone. Screenshots of every page at both widths land in /tmp/shots/A/."""

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, signed_in_user, wait_until
from tests.jobs_helpers import run, upload_image, wait_status
from tests.servers.files import FileServer
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures
from tests.test_browser_shell import _screen, no_overflow
from tests.ui_workflows import SAMPLER_API

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]  # every page of the app, scanned

AXE = Path(__file__).resolve().parent / "browser-tools" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path("/tmp/shots/A")
SERIOUS = ("critical", "serious")
# One screen in each theme, so axe checks the contrast of both.
SCREENS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1440, "height": 900}, "color_scheme": "dark"},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "color_scheme": "light"},
}
# axe runs in the page: a violation comes back as its rule, what it asks for and the elements it found.
SCAN = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(' ')) }));
}"""


@pytest.fixture(params=list(SCREENS))
def screen(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[str, Page]]:  # noqa: F811
    """Each test runs once per screen; axe is injected as a script tag, which the app's CSP would refuse."""
    name = str(request.param)
    for page in _screen(browser, bypass_csp=True, **SCREENS[name]):
        yield name, page


class Scanner:
    """Scans each state it is shown and keeps every problem, so one run names all of them."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.scanned: list[str] = []

    def check(self, page: Page, name: str, *, overflow: bool = True) -> None:
        if not AXE.is_file():
            pytest.fail(f"axe-core is missing at {AXE}: ./dev.sh test installs it (npm ci in tests/browser-tools)")
        if not page.evaluate("typeof window.axe === 'object'"):
            page.add_script_tag(path=str(AXE))
        for found in page.evaluate(SCAN):
            if found["impact"] in SERIOUS:
                self.problems.append(f"{name}: {found['impact']} {found['id']} ({found['help']}) at {found['nodes']}")
        if overflow:
            try:
                no_overflow(page)
            except AssertionError as err:
                self.problems.append(f"{name}: {str(err).splitlines()[0]}")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("scrollTo(0, 0)")  # a full-page shot taken scrolled draws the sticky top bar mid-page
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        self.scanned.append(name)

    def assert_clean(self) -> None:
        if self.problems:
            pytest.fail("\n".join(self.problems), pytrace=False)


def settle(page: Page, ready: str) -> None:
    """The page's own content is there (its module loaded, its first answers drawn)."""
    expect(page.locator(ready).first).to_be_visible(timeout=10_000)
    page.wait_for_load_state("networkidle")


def visit(page: Page, base: str, path: str, ready: str) -> None:
    page.goto(f"{base}{path}")
    expect(page.locator("main h1").first).to_be_visible(timeout=10_000)
    settle(page, ready)


def sign_in_as(page: Page, port: int, username: str, password: str) -> None:
    page.goto(f"http://127.0.0.1:{port}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"http://127.0.0.1:{port}/")


def realistic_data(client: FlaskClient) -> str:
    """A finished job with an output, a finished download, an imported workflow and an API token."""
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    wait_status(client, job["id"])
    imported = client.post("/api/workflows", content_type="multipart/form-data", data={
        "file": (io.BytesIO(json.dumps(SAMPLER_API).encode()), "castle.json"), "id": "castle",
        "name": "Castle in the clouds"})
    assert imported.status_code == 201, imported.get_json()
    preset = client.post("/api/presets", json={"name": "Castle styles", "workflow_id": "image-resize",
                                               "description": "Resizes, and asks nothing"})
    assert preset.status_code == 201, preset.get_json()
    token = client.post("/api/auth/tokens", json={"name": "telegram bot", "scope": "run"})
    assert token.status_code == 201, token.get_json()
    files = FileServer().start()
    try:
        files.files["/tiny-lora.safetensors"] = os.urandom(64 * 1024)
        started = client.post("/api/downloads", json={"url": files.url("/tiny-lora.safetensors"), "dest": "loras",
                                                      "file": "tiny-lora.safetensors"})
        assert started.status_code == 201, started.get_json()

        def finished() -> bool:
            items = client.get("/api/downloads").get_json()["items"]
            return any(i["id"] == started.get_json()["id"] and i["status"] == "completed" for i in items)

        wait_until(finished, timeout=20)
    finally:
        files.stop()
    return str(job["id"])


def walk(page: Page, base: str, screen: str, scanner: Scanner, pages: list[tuple[str, str, str]]) -> None:
    for path, name, ready in pages:
        visit(page, base, path, ready)
        scanner.check(page, f"{name}-{screen}")


def admin_pages(job_id: str) -> list[tuple[str, str, str]]:
    return [
        ("/run", "run", "main .card, main form"),
        ("/run/sd15-txt2img", "run-workflow", "#run-button"),
        ("/queue", "queue", "main .card"),
        ("/history", "history", "#history-list .tile-open"),
        (f"/job/{job_id}", "job", ".job-card"),
        ("/workflows", "workflows", '[data-workflow="castle"]'),
        ("/models", "models", "#model-list > *"),
        ("/loras", "loras", "#model-list > *"),
        ("/downloads", "downloads", "#download-list"),
        ("/system", "system", "#comfy-card"),
        ("/settings", "settings", "#setting-comfyui_url"),
        ("/users", "users", "main table"),
        ("/account", "account", "#token-form"),
        ("/presets", "presets", "#preset-list > *"),
        ("/apidocs", "apidocs", "[data-operation]"),
        ("/webhooks", "webhooks", "#webhook-form button"),
        ("/telegram", "telegram", "#telegram-groups"),
        ("/llm", "llm", "#llm-state [data-state]"),
        ("/gallery", "gallery", "#gallery-grid .tile-open"),
        ("/comfyui", "comfyui", "#comfyui-state [data-state]"),
    ]


def open_states(page: Page, base: str, screen: str, scanner: Scanner, *, mapping: bool) -> None:
    """What a page opens over itself: on a phone the Activity drawer and the menu; the lightbox; the form editor."""
    visit(page, base, "/history", "#history-list .tile-open")
    if screen.endswith("phone"):
        page.click("#activity-button")
        expect(page.locator("#activity")).to_be_visible()
        scanner.check(page, f"activity-{screen}")
        page.click("#activity-close")
        expect(page.locator("#activity")).to_be_hidden()
        page.click("#nav-toggle")
        expect(page.locator("#sidenav")).to_be_visible()
        scanner.check(page, f"menu-{screen}")
        page.click("#nav-toggle")
        expect(page.locator("#sidenav")).to_be_hidden()
    page.locator("#history-list .tile-open").first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.wait_for_load_state("networkidle")
    scanner.check(page, f"lightbox-{screen}")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    if mapping:
        visit(page, base, "/workflows", '[data-workflow="castle"]')
        page.locator('[data-workflow="castle"] [data-action=edit-mapping]').click()
        settle(page, "#mapping-box table")
        scanner.check(page, f"mapping-{screen}")
        # Every row's Advanced and Hidden switches are on the screen, not past a sideways scroll.
        width = page.viewport_size["width"] if page.viewport_size else 0
        for box in page.locator("#mapping-box .map-advanced, #mapping-box .map-hidden").all():
            where = box.bounding_box()
            assert where is not None
            assert where["x"] >= 0
            assert where["x"] + where["width"] <= width, f"{screen}: a switch of the form editor is off the screen"


def test_every_admin_page_passes_axe_and_fits_the_screen(
    screen: tuple[str, Page], runtime: Runtime, services: Services, client: FlaskClient
) -> None:
    name, page = screen
    job_id = realistic_data(client)
    base = f"http://127.0.0.1:{runtime.port}"
    scanner = Scanner()
    sign_in(page, runtime.port, services)
    walk(page, base, name, scanner, admin_pages(job_id))
    open_states(page, base, name, scanner, mapping=True)
    scanner.assert_clean()
    states = len(admin_pages(job_id)) + (4 if name == "phone" else 2)
    assert len(scanner.scanned) == states  # a state left out would hide its problems


def test_a_plain_users_pages_pass_axe_and_fit_the_screen(
    screen: tuple[str, Page], runtime: Runtime, client: FlaskClient, app: Flask
) -> None:
    name, page = screen
    person = signed_in_user(app, client, "erin")
    [job] = run(person, "image-resize", {"image": upload_image(person)})
    wait_status(person, job["id"])
    base = f"http://127.0.0.1:{runtime.port}"
    scanner = Scanner()
    admin_only = ("settings", "users", "workflows", "telegram", "comfyui")
    pages = [entry for entry in admin_pages(job["id"]) if entry[1] not in admin_only]
    pages.append(("/workflows", "workflows", "[data-workflow]"))
    sign_in_as(page, runtime.port, "erin", "erin's long password")
    expect(page.locator("#sidenav").get_by_role("link", name="Users", exact=True)).to_have_count(0)
    walk(page, base, f"user-{name}", scanner, pages)
    open_states(page, base, f"user-{name}", scanner, mapping=False)
    scanner.assert_clean()


def scan_refusal(page: Page, scanner: Scanner, name: str, fields: dict[str, str], error: str) -> None:
    """A sign-in style page as it opens, then after a wrong answer, with the error line on it."""
    settle(page, "#username")
    scanner.check(page, name)
    for selector, value in fields.items():
        page.fill(selector, value)
    page.click("button[type=submit]")
    expect(page.locator("#form-error")).to_contain_text(error)
    scanner.check(page, f"{name}-error")


def test_setup_and_sign_in_pages_pass_axe_and_fit_the_screen(
    screen: tuple[str, Page], runtime: Runtime, services: Services
) -> None:
    name, page = screen
    base = f"http://127.0.0.1:{runtime.port}"
    scanner = Scanner()
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/setup")
    scan_refusal(page, scanner, f"setup-{name}", {"#username": ADMIN_NAME, "#password": "too short",
                                                  "#password2": "too short"}, "at least 10 characters")
    services.users.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
    page.goto(f"{base}/queue")
    expect(page).to_have_url(f"{base}/login?next=/queue")
    scan_refusal(page, scanner, f"login-{name}", {"#username": ADMIN_NAME, "#password": "wrong password here"},
                 "Wrong user name or password.")
    scanner.assert_clean()

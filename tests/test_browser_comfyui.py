"""The ComfyUI page in a real browser, with Studio running the stand-in ComfyUI for real: its state,
the command line, the log growing live, Restart and Stop, a crash loop shown with its last lines;
axe-core finds nothing serious and nothing is wider than a 1440 px desktop or a 390 px phone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures
from tests.test_browser_a11y import Scanner
from tests.test_comfyui_process import REPO, port, settings  # noqa: F401 - Studio with the stand-in ComfyUI

pytestmark = pytest.mark.browser

READY_MS = 30_000


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:  # noqa: F811
    """axe-core is injected as a script tag, which the page's CSP rightly refuses: bypassed here only."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True)
    errors: list[str] = []
    context.on("weberror", lambda found: errors.append(str(found.error)))
    yield context.new_page()
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_the_comfyui_page_shows_the_process_live_drives_it_and_shows_a_crash_loop(
    desktop: Page, browser: Browser, runtime: Runtime, services: Services, settings: Settings,  # noqa: F811
) -> None:
    page = desktop
    scanner = Scanner()
    base = f"http://127.0.0.1:{runtime.port}"
    sign_in(page, runtime.port, services)
    page.goto(f"{base}/comfyui")
    state = page.locator("#comfyui-state [data-state]")
    expect(state).to_have_attribute("data-state", "ready", timeout=READY_MS)
    expect(page.locator("#comfyui-flags")).to_contain_text("--lowvram --fast --disable-auto-launch")
    expect(page.locator("#comfyui-log")).to_contain_text("To see the GUI go to", timeout=10_000)  # polled live
    expect(page.locator("#comfyui-facts")).to_contain_text(f"http://127.0.0.1:{settings.comfyui_port}")
    expect(page.locator("#node-packs")).to_be_visible()  # the node packs' section, drawn by its own module
    scanner.check(page, "comfyui-desktop")

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True)
    try:
        small = phone.new_page()
        sign_in(small, runtime.port, services)
        small.goto(f"{base}/comfyui")
        expect(small.locator("#comfyui-state [data-state]")).to_have_attribute("data-state", "ready")
        expect(small.locator("#comfyui-log")).to_contain_text("To see the GUI go to", timeout=10_000)
        scanner.check(small, "comfyui-phone")
    finally:
        phone.close()

    first_pid = services.comfyui_process.pid
    page.get_by_role("button", name="Restart").click()
    restarted = services.comfyui_process
    wait_until(lambda: restarted.pid not in (None, first_pid) and restarted.state == "ready", timeout=READY_MS / 1000)
    expect(page.locator("#comfyui-facts")).to_contain_text(f"pid {restarted.pid}")
    expect(state).to_have_attribute("data-state", "ready")
    page.get_by_role("button", name="Stop").click()
    expect(state).to_have_attribute("data-state", "stopped", timeout=15_000)
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    expect(page.locator("#comfyui-log")).to_contain_text("got signal 15, stopping")

    # A ComfyUI that cannot start: shown as a crash loop with its last lines, as text.
    assert settings.comfyui_dir is not None
    (settings.comfyui_dir / "standin.json").write_text(json.dumps({"repo": str(REPO), "exit": 1}))
    page.get_by_role("button", name="Start", exact=True).click()
    expect(state).to_have_attribute("data-state", "crash_loop", timeout=15_000)
    expect(page.locator("#comfyui-error")).to_contain_text("before it ever answered")
    expect(page.locator("#comfyui-last-lines")).to_contain_text("ModuleNotFoundError: No module named 'torch'")
    expect(page.get_by_role("button", name="Start", exact=True)).to_be_enabled()
    scanner.check(page, "comfyui-crash-loop-desktop")


    # The Settings page holds the folder, the interpreter, the flags and the previews.
    page.goto(f"{base}/settings")
    expect(page.locator("#setting-comfyui_dir")).to_have_value(str(settings.comfyui_dir))
    expect(page.locator("#setting-comfyui_args")).to_have_value("--lowvram --fast")
    expect(page.locator("#setting-comfyui_preview_method")).to_have_value("auto")
    page.locator("[data-key=comfyui_preview_method]").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/shots/A/comfyui-settings-desktop.png")
    scanner.assert_clean()

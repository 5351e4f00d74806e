"""The shell in a real browser: where a person lands, the menu, live job truth (one reducer),
ComfyUI going quiet mid-job, failures in words, the Activity panel, the theme, a phone's screen."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from playwright.sync_api import Browser, BrowserContext, Page, expect

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from tests.jobs_helpers import SAMPLER_PARAMS, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/C")
WAITING = "ComfyUI stopped answering — this job will be checked when it is back"
OOM = "ComfyUI ran out of GPU memory: lower the size or batch, or free VRAM"
CLASS_NAME = re.compile(r"\b[A-Za-z]*(Error|Exception)\b")
UNBUILT: tuple[str, ...] = ()  # every page in the menu is built now
BUILT_LAST = ("Gallery", "CivitAI", "LLM")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def no_overflow(page: Page) -> None:
    """Against the screen's width: a phone's browser widens its layout to fit what overflows."""
    assert page.viewport_size is not None
    width = page.viewport_size["width"]
    overflow = page.evaluate("Math.max(document.documentElement.scrollWidth, window.innerWidth)") - width
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


def _screen(chromium: Browser, **options: Any) -> Iterator[Page]:
    """A page on a screen of its own; any JavaScript error on it fails the test."""
    context: BrowserContext = chromium.new_context(**options)
    errors: list[str] = []
    context.on("weberror", lambda found: errors.append(str(found.error)))
    yield context.new_page()
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:  # noqa: F811 - the desktop of the issue
    yield from _screen(browser, viewport={"width": 1440, "height": 900})


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:  # noqa: F811
    yield from _screen(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)


def deliver(page: Page, event: dict) -> None:
    """An event as /ws hands it over, at the moment the test chooses: the network may reorder a REST
    answer and an event, and this is the order under test."""
    page.evaluate("async (event) => { const { live } = await import('/assets/js/lib/live.js'); live.deliver(event); }",
                  event)


def test_a_person_lands_on_run_and_the_menu_shows_only_what_is_built(
    desktop: Page, runtime: Runtime, services: Services  # noqa: F811
) -> None:
    page = desktop
    base = f"http://127.0.0.1:{runtime.port}"
    sign_in(page, runtime.port, services)
    nav = page.locator("#sidenav")
    expect(nav.locator("a[aria-current=page]")).to_have_text("Run")
    expect(page).to_have_title(re.compile(r"^Run · "))
    for name in (*UNBUILT, "Home"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_have_count(0)
    for name in BUILT_LAST:
        expect(nav.get_by_role("link", name=name, exact=True)).to_have_count(1)

    nav.get_by_role("link", name="System").click()
    expect(page).to_have_url(f"{base}/system")
    expect(page.locator("main h1")).to_have_text("System")
    expect(nav.locator("a[aria-current=page]")).to_have_text("System")
    expect(page.locator("#comfy-version")).to_have_text("0.3.64")
    shot(page, "system-desktop")

    page.goto(f"{base}/run/sd15-txt2img")
    expect(nav.locator("a[aria-current=page]")).to_have_text("Run")
    page.goto(f"{base}/job/no-such-job")
    expect(page.locator("main h1")).to_have_text("Job")
    expect(page.locator("main .error-line")).to_be_visible()
    expect(nav.locator("a[aria-current=page]")).to_have_count(0)
    # The skip link is the first thing a keyboard reaches, and it lands in the page's content.
    page.keyboard.press("Tab")
    expect(page.locator("#skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#page")).to_be_focused()
    expect(page).to_have_url(f"{base}/job/no-such-job")


def test_pages_are_served_for_app_paths_and_nothing_else(runtime: Runtime, services: Services) -> None:
    services.users.setup_admin("admin", "a long enough password")
    base = f"http://127.0.0.1:{runtime.port}"
    session = requests.Session()
    assert session.post(f"{base}/api/auth/login", json={"username": "admin", "password": "a long enough password"},
                        timeout=5).status_code == 200
    for path in ("/", "/system", "/run", "/run/sd15-txt2img", "/job/abc", "/queue"):
        answer = session.get(f"{base}{path}", timeout=5)
        assert answer.status_code == 200, path
        assert "text/html" in answer.headers["Content-Type"]
    for path in ("/home", "/run/a/b", "/job/", "/systems", "/nothing"):
        assert session.get(f"{base}{path}", timeout=5).status_code == 404, path


def test_progress_before_the_running_update_shows_running_and_late_news_never_rolls_back(
    desktop: Page, runtime: Runtime, services: Services, client: FlaskClient,  # noqa: F811
    comfy_server: ComfyUITestServer,
) -> None:
    page = desktop
    comfy_server.step_delay_s = 0.1
    first, second = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 150}, count=2)
    wait_status(client, first["id"], "running")
    before = wait_status(client, second["id"], "submitted")  # waits in ComfyUI behind the first

    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/job/{second['id']}")
    card = page.locator(f".job-card[data-job='{second['id']}']")
    badge = card.locator(".badge")
    expect(badge).to_have_text("submitted")

    # ComfyUI's progress for it reaches the page before Studio's submitted → running update does.
    deliver(page, {"type": "jobs/progress", "ts": page.evaluate("Date.now() / 1000"), "payload": {
        "id": second["id"], "node_title": "KSampler", "step": 9, "total": 20, "percent": 45.0}})
    expect(badge).to_have_text("running")
    expect(card.locator(".job-progress")).to_have_text("KSampler · step 9/20")
    expect(card.locator("[data-action=cancel]")).to_have_text("Stop")
    # Then the older news: it must not take the card back to "submitted".
    deliver(page, {"type": "jobs/update", "payload": before})
    expect(badge).to_have_text("running")
    expect(card.locator(".job-progress")).to_contain_text("step 9/20")

    client.post(f"/api/jobs/{second['id']}/cancel")
    stopped = wait_status(client, second["id"])
    expect(badge).to_have_text("stopped", timeout=5_000)
    expect(card).to_contain_text("Stopped by you.")
    # A late update from while it was in flight never rolls a finished job back.
    deliver(page, {"type": "jobs/update", "payload": {**stopped, "status": "running", "timeline": before["timeline"]}})
    deliver(page, {"type": "jobs/progress", "payload": {"id": second["id"], "node_title": "KSampler", "step": 10,
                                                        "total": 20, "percent": 50.0}})
    expect(badge).to_have_text("stopped")
    expect(card.locator(".job-progress")).to_have_count(0)
    client.post(f"/api/jobs/{first['id']}/cancel")


def test_comfyui_stopping_mid_job_shows_on_the_card_within_seconds(
    desktop: Page, runtime: Runtime, services: Services, client: FlaskClient,  # noqa: F811
    comfy_server: ComfyUITestServer, settings: Settings,
) -> None:
    page = desktop
    settings.comfyui_outage_grace_s = 60.0
    comfy_server.node_delays["ImageScale"] = 4.0
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/job/{job['id']}")
    card = page.locator(f".job-card[data-job='{job['id']}']")
    expect(card.locator(".badge")).to_have_text("running", timeout=10_000)

    comfy_server.stop_answering()
    expect(card.locator(".job-progress")).to_have_text(WAITING, timeout=5_000)
    expect(card.locator(".badge")).to_have_text("waiting for ComfyUI")
    expect(page.locator("#comfy-indicator")).to_have_attribute("data-state", "disconnected", timeout=5_000)
    shot(page, "job-waiting-desktop")

    comfy_server.answer_again()
    expect(card.locator(".badge")).to_have_text("completed", timeout=20_000)
    expect(card).not_to_contain_text(WAITING)


def test_out_of_memory_reads_as_advice_with_free_vram_and_no_class_names(
    desktop: Page, runtime: Runtime, services: Services, client: FlaskClient,  # noqa: F811
    comfy_server: ComfyUITestServer,
) -> None:
    page = desktop
    comfy_server.fail_nodes["VAEDecode"] = (
        "torch.OutOfMemoryError", "Allocation on device 0 would exceed allowed memory. (out of memory)")
    sign_in(page, runtime.port, services)
    [job] = run(client, "sd15-txt2img", SAMPLER_PARAMS)
    wait_status(client, job["id"])
    page.goto(f"http://127.0.0.1:{runtime.port}/job/{job['id']}")
    card = page.locator(f".job-card[data-job='{job['id']}']")
    expect(card.locator(".error-line")).to_have_text(OOM + ".")
    expect(card.get_by_role("button", name="Free VRAM")).to_be_visible()
    activity = page.locator("#activity-list")
    expect(activity.get_by_role("link", name=re.compile("failed$"))).to_have_attribute("href", f"/job/{job['id']}")
    text = page.evaluate("document.body.innerText")
    assert not CLASS_NAME.search(text), CLASS_NAME.search(text)
    # ComfyUI's own words are one click away, for whoever wants them.
    page.get_by_text("What ComfyUI said").click()
    expect(page.locator(".error-detail pre")).to_contain_text("Allocation on device 0")
    shot(page, "job-oom-desktop")

    card.get_by_role("button", name="Free VRAM").click()
    expect(page.locator(".toast", has_text="free VRAM")).to_be_visible()


def test_activity_is_grouped_linked_height_limited_and_a_drawer_on_a_phone(
    desktop: Page, phone: Page, runtime: Runtime, services: Services, client: FlaskClient,  # noqa: F811
) -> None:
    page = desktop
    base = f"http://127.0.0.1:{runtime.port}"
    image = upload_image(client)
    for job in run(client, "image-resize", {"image": image}, count=3):
        wait_status(client, job["id"])
    sign_in(page, runtime.port, services)
    activity = page.locator("#activity-list")
    completed = activity.get_by_role("link", name="3 jobs completed")
    expect(completed).to_have_attribute("href", "/history")
    expect(activity.locator("li[data-count='3']")).to_have_count(1)
    expect(activity.get_by_role("link", name="ComfyUI connected")).to_have_attribute("href", "/system")

    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#setting-comfyui_url")).to_be_visible(timeout=10_000)
    panel = page.locator("#activity").bounding_box()
    assert panel is not None
    assert panel["height"] <= 900
    main_height = page.evaluate("document.getElementById('page').getBoundingClientRect().bottom + scrollY")
    page_height = page.evaluate("document.documentElement.scrollHeight")
    assert page_height <= max(main_height, 900) + 2, "the Activity panel makes the page taller than its content"
    shot(page, "settings-desktop")

    # Put away on a wide screen, and it stays away after a reload.
    page.click("#activity-button")
    expect(page.locator("#activity")).to_be_hidden()
    page.reload()
    expect(page.locator("#activity")).to_be_hidden()
    page.click("#activity-button")
    expect(page.locator("#activity")).to_be_visible()

    sign_in(phone, runtime.port, services)
    expect(phone.locator("#studio-indicator")).to_have_attribute("data-state", "connected", timeout=10_000)
    expect(phone.locator("#activity")).to_be_hidden()
    unread = phone.locator("#activity-unread")
    expect(unread).to_be_hidden()
    [job] = run(client, "image-resize", {"image": image})
    wait_status(client, job["id"])
    expect(unread).to_have_text(re.compile(r"^[1-9]"), timeout=5_000)
    expect(phone.locator("#activity-button")).to_have_attribute("aria-label", re.compile(r"Activity, \d+ new item"))
    no_overflow(phone)
    shot(phone, "run-phone-unread")
    phone.click("#activity-button")
    expect(phone.locator("#activity")).to_be_visible()
    expect(unread).to_be_hidden()
    no_overflow(phone)
    shot(phone, "activity-phone-open")
    phone.locator("#activity-list").get_by_role("link", name="image-resize completed").or_(
        phone.locator("#activity-list a[href='/history']")).first.click()
    expect(phone.locator("#activity")).to_be_hidden()
    assert phone.url.startswith(f"{base}/")
    # The page it leads to has loaded its module and drawn itself before the test ends (networkidle
    # alone can come before the module's import starts, which then fails as the page closes).
    expect(phone.locator("#history-list, .job-card").first).to_be_attached(timeout=10_000)
    phone.wait_for_load_state("networkidle")


def test_the_theme_follows_the_system_and_a_switch_that_is_remembered(
    browser: Browser, runtime: Runtime, services: Services  # noqa: F811
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="light")
    page = context.new_page()
    sign_in(page, runtime.port, services)
    background = "getComputedStyle(document.body).backgroundColor"
    expect(page.locator("#theme-toggle")).to_be_visible()
    assert page.evaluate(background) == "rgb(246, 247, 251)"  # the system says light
    assert page.evaluate("document.documentElement.dataset.theme") is None
    page.click("#theme-toggle")  # auto → light
    page.click("#theme-toggle")  # light → dark
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate(background) == "rgb(15, 17, 23)"
    expect(page.locator("#theme-toggle")).to_have_attribute("aria-label", re.compile("dark"))
    page.reload()
    expect(page.locator("#theme-toggle")).to_be_visible()
    assert page.evaluate(background) == "rgb(15, 17, 23)"

    for theme in ("dark", "light"):
        page.evaluate("(t) => { document.documentElement.dataset.theme = t; }", theme)
        brand = page.evaluate("getComputedStyle(document.querySelector('.brand strong')).color")
        bar = page.evaluate("getComputedStyle(document.querySelector('.topbar')).backgroundColor")
        assert contrast(brand, bar) >= 4.5, (theme, brand, bar)
        current = page.locator("#sidenav a[aria-current=page]")
        assert contrast(current.evaluate("e => getComputedStyle(e).color"),
                        current.evaluate("e => getComputedStyle(e).backgroundColor")) >= 4.5, theme
        shot(page, f"run-desktop-{theme}")
    context.close()


def test_a_phone_keeps_labels_and_nothing_is_wider_than_the_screen(
    phone: Page, runtime: Runtime, services: Services, client: FlaskClient,  # noqa: F811
) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    wait_status(client, job["id"])
    sign_in(phone, runtime.port, services)
    indicator = phone.locator("#comfy-indicator")
    expect(indicator).to_have_attribute("data-state", "connected", timeout=10_000)
    for selector in ("#comfy-indicator", "#studio-indicator"):
        label = phone.evaluate(f"getComputedStyle(document.querySelector('{selector}'), '::after').content")
        assert label.strip('"') in ("ComfyUI", "Live"), label
    base = f"http://127.0.0.1:{runtime.port}"
    for path, name in (("/system", "system"), ("/queue", "queue"), (f"/job/{job['id']}", "job")):
        phone.goto(f"{base}{path}")
        expect(phone.locator("main h1")).to_be_visible()
        expect(phone.locator("main .card, main .job-card").first).to_be_visible(timeout=10_000)
        no_overflow(phone)
        shot(phone, f"{name}-phone")
    expect(phone.locator("#queue-running, #queue-waiting")).to_have_count(0)
    phone.goto(f"{base}/queue")
    expect(phone.locator("#queue-running")).to_contain_text("Nothing is running. Make an image on Run.")


def _luminance(css: str) -> float:
    red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


def contrast(first: str, second: str) -> float:
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)

"""History as a gallery and the lightbox, in a real browser: a page of 50 results costs well under 1 MB
(server thumbnails, never the full files), the lightbox moves with the keyboard, keeps focus and gives
it back, and "new seed" makes a second, different image; nothing runs off a phone's screen."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import Browser, Page, Request, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, run, wait_status
from tests.test_browser import browser, page, sign_in  # noqa: F401 - shared fixtures

SHOTS = Path("/tmp/shots/B")
MB = 1024 * 1024


def _shot(tab: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))


def photo_png(seed: int, size: int = 512) -> bytes:
    """A picture with a photograph's statistics (smooth light, shapes, fine grain), not flat colour:
    what a thumbnail of a real result costs."""
    rng = random.Random(seed)
    base = Image.radial_gradient("L").resize((size, size))
    factors = [rng.randint(1, 3) for _ in range(3)]
    image = Image.merge("RGB", [base.point(lambda v, k=k: (v * k) % 256) for k in factors])
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randint(10, size // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = Image.frombytes("L", (size, size), rng.randbytes(size * size)).filter(ImageFilter.GaussianBlur(0.6))
    image = Image.blend(image.filter(ImageFilter.GaussianBlur(1.5)), Image.merge("RGB", [grain] * 3), 0.12)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _upload(client: FlaskClient, data: bytes) -> str:
    answer = client.post("/api/inputs", data={"image": (io.BytesIO(data), "photo.png")},
                         content_type="multipart/form-data")
    assert answer.status_code in (200, 201)
    return str(answer.get_json()["name"])


def _thumbs_made(services: Services, jobs: list[dict[str, Any]]) -> bool:
    root = services.data_dir.outputs / "studio"
    return all(len(list((root / job["id"] / ".thumbs").glob("*.webp"))) == 2 for job in jobs)


def _history(tab: Page, port: int) -> None:
    tab.goto(f"http://127.0.0.1:{port}/history")
    expect(tab.locator("main h1")).to_have_text("History")


def test_a_history_page_of_50_results_transfers_well_under_a_megabyte(
        page: Page, client: FlaskClient, runtime: Runtime, services: Services) -> None:  # noqa: F811
    jobs: list[dict[str, Any]] = []
    for seed in range(5):
        name = _upload(client, photo_png(seed))
        jobs += run(client, "image-resize", {"image": name, "width": 512, "height": 512}, count=10)
    for job in jobs:
        assert wait_status(client, job["id"], timeout=60)["status"] == "completed"
    wait_until(lambda: _thumbs_made(services, jobs), timeout=60)
    full_size = sum(o["size"] for job in client.get("/api/jobs?limit=50").get_json()["items"] for o in job["outputs"])
    sign_in(page, runtime.port, services)

    sizes: dict[str, int] = {}

    def finished(request: Request) -> None:
        measured = request.sizes()
        sizes[request.url] = measured["responseBodySize"] + measured["responseHeadersSize"]

    page.on("requestfinished", finished)
    _history(page, runtime.port)
    tiles = page.locator("#history-list .result-tile img")
    expect(tiles).to_have_count(50)
    for index in range(0, 50, 4):  # lazy images load as they scroll into view: look at every one
        tiles.nth(index).scroll_into_view_if_needed()
    tiles.nth(49).scroll_into_view_if_needed()
    page.wait_for_function("[...document.querySelectorAll('#history-list .result-tile img')]"
                           ".every((i) => i.complete && i.naturalWidth > 0)")
    page.wait_for_load_state("networkidle")

    total = sum(sizes.values())
    thumbs = [url for url in sizes if "/thumb/" in url]
    assert len(thumbs) >= 50
    assert not [url for url in sizes if "/outputs/" in url and "/thumb/" not in url]  # never a full-size file
    assert total < MB, f"{total} bytes for a page of 50 results"
    assert full_size > 5 * MB  # what the same page cost when tiles were the full files
    print(f"History page of 50 results: {total / 1024:.0f} KB transferred ({full_size / MB:.1f} MB of outputs)")  # noqa: T201


def test_the_lightbox_keys_focus_and_a_new_seed_that_makes_a_different_image(
        page: Page, client: FlaskClient, runtime: Runtime, services: Services) -> None:  # noqa: F811
    first = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2, "seed": 5, "resolution": {"w": 256, "h": 256}})
    second = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2, "seed": 6, "resolution": {"w": 256, "h": 256}})
    for job in first + second:
        wait_status(client, job["id"])
    sign_in(page, runtime.port, services)
    _history(page, runtime.port)
    opener = page.locator("#history-list .tile-open").first
    expect(page.locator("#history-list .tile-open")).to_have_count(2)
    opener.click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("aria-modal", "true")
    expect(dialog.locator("[data-fact=seed]")).to_have_text("6")  # newest first
    expect(dialog.locator("[data-fact=prompt]")).to_have_text(SAMPLER_PARAMS["positive_prompt"])
    expect(dialog.locator("[data-fact=size]")).to_have_text("256 × 256")
    expect(dialog.locator("[data-fact=model]")).to_have_text("random_sd15.safetensors")
    expect(page.locator(".lightbox-counter")).to_have_text("1 of 2")
    _shot(page, "lightbox-desktop")
    page.keyboard.press("ArrowRight")
    expect(page.locator(".lightbox-counter")).to_have_text("2 of 2")
    expect(dialog.locator("[data-fact=seed]")).to_have_text("5")
    page.keyboard.press("ArrowRight")
    expect(page.locator(".lightbox-counter")).to_have_text("1 of 2")  # wraps around
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".lightbox-counter")).to_have_text("2 of 2")
    for _ in range(25):
        page.keyboard.press("Tab")
        assert page.evaluate("document.querySelector('.lightbox').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert page.evaluate("document.activeElement === document.querySelector('#history-list .tile-open')")

    opener.click()
    before = dialog.locator(".lightbox-image").get_attribute("src")
    dialog.locator("[data-action=new-seed]").click()
    expect(page.locator(".lightbox-counter")).to_have_text("2 of 3", timeout=15_000)  # shown as soon as it is made
    after = dialog.locator(".lightbox-image").get_attribute("src")
    seed = dialog.locator("[data-fact=seed]").inner_text()
    assert after
    assert before
    assert after != before
    assert seed not in ("5", "6")
    with client.get(before) as old, client.get(after) as new:
        assert old.get_data() != new.get_data()  # a different picture, not ComfyUI's cached copy
    stage = dialog.locator(".lightbox-stage")
    dialog.locator(".lightbox-image").click()
    expect(stage).to_have_class(re.compile(r"\bzoomed\b"))  # 100 %: the picture's own pixels
    page.keyboard.press("Escape")  # the first Esc only leaves the zoom
    expect(stage).not_to_have_class(re.compile(r"\bzoomed\b"))
    expect(dialog).to_be_visible()

    dialog.locator("#lightbox-count").fill("2")
    dialog.locator("[data-action=variations]").click()
    expect(page.locator(".lightbox-note")).to_contain_text("2 of 2 variations ready", timeout=20_000)
    expect(page.locator(".lightbox-counter")).to_have_text("2 of 5")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.locator("#history-list .tile-open")).to_have_count(5)  # the grid has them too
    seeds = {job["params"]["seed"] for job in client.get("/api/jobs").get_json()["items"]}
    assert len(seeds) == 5  # every try its own seed
    _shot(page, "history-desktop")


def test_history_and_the_lightbox_fit_a_phone(browser: Browser, client: FlaskClient, runtime: Runtime,  # noqa: F811
                                              services: Services) -> None:
    jobs = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 1, "resolution": {"w": 320, "h": 192}}, count=3)
    for job in jobs:
        wait_status(client, job["id"])
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    errors: list[str] = []
    phone.on("pageerror", lambda err: errors.append(str(err)))
    sign_in(phone, runtime.port, services)
    _history(phone, runtime.port)
    expect(phone.locator("#history-list .tile-open")).to_have_count(3)
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    phone.locator("#history-list .tile-select").first.check()
    expect(phone.locator("#history-selection")).to_contain_text("1 selected")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shot(phone, "history-phone")
    phone.locator("#history-list .tile-open").first.click()
    expect(phone.get_by_role("dialog")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert phone.evaluate("document.querySelector('.lightbox').scrollWidth <= window.innerWidth")
    _shot(phone, "lightbox-phone")
    context.close()
    assert errors == []


def test_starred_only_asks_the_server_for_starred_results(
        page: Page, client: FlaskClient, runtime: Runtime, services: Services) -> None:  # noqa: F811
    name = _upload(client, photo_png(1, size=64))
    jobs = [wait_status(client, job["id"]) for job in run(client, "image-resize", {"image": name}, count=3)]
    oldest = jobs[0]
    client.post(f"/api/jobs/{oldest['id']}/outputs/{oldest['outputs'][0]['id']}/star", json={"starred": True})
    sign_in(page, runtime.port, services)
    _history(page, runtime.port)
    expect(page.locator("#history-list .result-tile")).to_have_count(3)
    with page.expect_request(lambda request: "/api/jobs?" in request.url and "starred=true" in request.url):
        page.locator("#history-starred").check()
    expect(page.locator("#history-list .result-tile")).to_have_count(1)
    expect(page.locator(f"#history-list .result-tile[data-job='{oldest['id']}']")).to_be_visible()
    page.locator("#history-starred").uncheck()
    expect(page.locator("#history-list .result-tile")).to_have_count(3)

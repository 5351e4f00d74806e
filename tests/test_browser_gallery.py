"""The Gallery in a real browser: the grid fills from the index, a search and a filter narrow it, the
lightbox shows what an item was made with and moves with the arrow keys, Escape closes it, a rating
sticks, and "Reuse parameters" opens the Run page with the job's values filled in."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.gallery_helpers import gallery_items, png_with_text, put_file, wait_indexed
from tests.jobs_helpers import SAMPLER_PARAMS, run, wait_status
from tests.test_browser import browser, page, sign_in  # noqa: F401 - shared fixtures

SHOTS = Path("artifacts/screenshots/gallery")


def _shot(tab: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))


def _make(client: FlaskClient, prompt: str, size: tuple[int, int]) -> dict:
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2, "positive_prompt": prompt,
                                         "resolution": {"w": size[0], "h": size[1]}})
    assert wait_status(client, job["id"], timeout=30)["status"] == "completed"
    return wait_indexed(client, job["id"])


def test_filter_open_the_lightbox_move_with_arrows_and_reuse_parameters(
        page: Page, client: FlaskClient, runtime: Runtime, services: Services) -> None:  # noqa: F811
    made = [_make(client, "a red lighthouse on a cliff", (192, 128)),
            _make(client, "a green forest in the fog", (128, 192)),
            _make(client, "a blue ocean at noon", (160, 160))]
    put_file(services.data_dir.outputs, "imported/old.png", png_with_text((300, 100), parameters="an old banner"))
    services.gallery.index.reconcile()
    assert len(gallery_items(client)) == 4
    sign_in(page, runtime.port, services)

    page.goto(f"http://127.0.0.1:{runtime.port}/gallery")
    expect(page.locator("main h1")).to_have_text("Gallery")
    tiles = page.locator("#gallery-grid .gallery-tile")
    expect(tiles).to_have_count(4)
    expect(page.locator("#gallery-grid img").first).to_have_js_property("complete", True)
    _shot(page, "grid")
    # Justified: a wide picture's tile is wider than a tall one's, all in rows of one height.
    wide = page.locator(f'[data-id="{made[0]["id"]}"]').bounding_box()
    tall = page.locator(f'[data-id="{made[1]["id"]}"]').bounding_box()
    assert wide is not None
    assert tall is not None
    assert wide["width"] > tall["width"] * 1.5

    page.fill("#gallery-q", "forest")
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_have_attribute("data-id", str(made[1]["id"]))
    page.fill("#gallery-q", 'fog "in the')  # quotes are words here, never an error
    expect(tiles).to_have_count(1)
    page.fill("#gallery-q", "")
    expect(tiles).to_have_count(4)
    page.select_option("#gallery-workflow", "sd15-txt2img")
    expect(tiles).to_have_count(3)
    _shot(page, "filtered")

    page.locator(f'[data-id="{made[2]["id"]}"] .tile-open').click()  # the newest: first in the grid
    box = page.locator(".gallery-box")
    expect(box).to_be_visible()
    expect(box.locator(".lightbox-counter")).to_have_text("1 of 3")
    expect(box.locator('dd[data-fact="prompt"]')).to_have_text("a blue ocean at noon")
    expect(box.locator('dd[data-fact="model"]')).to_have_text(SAMPLER_PARAMS["checkpoint"])
    expect(box.locator('dd[data-fact="size"]')).to_have_text("160 × 160")
    _shot(page, "lightbox")
    page.keyboard.press("ArrowRight")
    expect(box.locator(".lightbox-counter")).to_have_text("2 of 3")
    expect(box.locator('dd[data-fact="prompt"]')).to_have_text("a green forest in the fog")
    page.keyboard.press("ArrowRight")
    expect(box.locator('dd[data-fact="prompt"]')).to_have_text("a red lighthouse on a cliff")
    page.keyboard.press("ArrowRight")  # round to the first again
    expect(box.locator(".lightbox-counter")).to_have_text("1 of 3")
    page.keyboard.press("ArrowLeft")
    expect(box.locator('dd[data-fact="prompt"]')).to_have_text("a red lighthouse on a cliff")

    box.locator('[data-rating="4"]').click()
    expect(box.locator('[data-rating="4"]')).to_have_attribute("aria-pressed", "true")
    assert client.get(f"/api/gallery/items/{made[0]['id']}").get_json()["rating"] == 4
    page.keyboard.press("Escape")
    expect(box).to_have_count(0)
    expect(page.locator(f'[data-id="{made[2]["id"]}"] .tile-open')).to_be_focused()  # focus came back

    page.locator(f'[data-id="{made[1]["id"]}"] .tile-open').click()
    page.locator('.gallery-box [data-action="reuse"]').click()
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/run/sd15-txt2img")
    expect(page.locator("#param-positive_prompt")).to_have_value("a green forest in the fog")
    _shot(page, "reused")


def test_a_file_found_on_disk_has_no_reuse_but_can_be_used_as_input(
        page: Page, client: FlaskClient, runtime: Runtime, services: Services) -> None:  # noqa: F811
    put_file(services.data_dir.outputs, "imported/banner.png", png_with_text((200, 120), parameters="a banner"))
    services.gallery.index.reconcile()
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/gallery")
    page.locator("#gallery-grid .tile-open").first.click()
    box = page.locator(".gallery-box")
    expect(box.locator('dd[data-fact="prompt"]')).to_have_text("a banner")
    expect(box.locator('[data-action="reuse"]')).to_have_count(0)
    box.locator('[data-action="use-as-input"]').click()
    expect(box.locator(".lightbox-note a").first).to_be_visible(timeout=10_000)  # several workflows take an image
    box.locator(".lightbox-note a", has_text="image to image").first.click()
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/run/sd15-img2img")
    expect(page.locator(".image-input img.thumb")).to_be_visible(timeout=10_000)
    assert page.locator(".image-input input[type=hidden]").input_value().startswith("studio/")
    _shot(page, "used-as-input")

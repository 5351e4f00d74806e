"""The Gallery's newer parts in a real browser: two items compared (side by side, then with the slider,
their differing parameters listed); CivitAI images hidden above the person's NSFW level until they raise
it; a CivitAI model's images saved into the gallery from the CivitAI page; the Settings page's CivitAI
site. Screenshots (1440 px and a 390 px phone): /tmp/shots/G/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from tests.gallery_helpers import png_with_text, put_file
from tests.servers.civitai import CivitaiServer, png
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures
from tests.test_browser_a11y import Scanner
from tests.test_browser_shell import _screen, no_overflow, phone  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/G")
A1111 = ("{prompt}\nNegative prompt: lowres\n"
         "Steps: {steps}, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: 96x64, Model: dream")


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    server = CivitaiServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, comfy_server: ComfyUITestServer, civitai: CivitaiServer) -> Settings:
    return Settings(studio_dir=tmp_path / "studio", comfyui_url=comfy_server.url, comfyui_reconnect_max_s=0.5,
                    civitai_endpoint=civitai.url("red"), civitai_com_url=civitai.url("com"),
                    civitai_red_url=civitai.url("red"), hf_endpoint="http://127.0.0.1:9")


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:  # noqa: F811
    """1440 px, with axe-core allowed in (a script tag the app's CSP would refuse)."""
    yield from _screen(browser, viewport={"width": 1440, "height": 900}, bypass_csp=True)


def _shot(tab: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))


def test_compare_two_images_and_civitai_images_behind_the_nsfw_level(
        desktop: Page, phone: Page, runtime: Runtime, services: Services, civitai: CivitaiServer) -> None:  # noqa: F811
    root = services.data_dir.outputs
    put_file(root, "mine/first.png", png_with_text((96, 64), (200, 60, 40),
                                                   parameters=A1111.format(prompt="a red fox", steps=20, seed=11)))
    put_file(root, "mine/second.png", png_with_text((96, 64), (40, 90, 200),
                                                    parameters=A1111.format(prompt="a blue fox", steps=30, seed=11)))
    assert services.gallery.index.reconcile()["added"] == 2
    version = civitai.add_version("fox.safetensors", b"fox lora " * 300, model_name="Foxes")
    civitai.add_image(png((90, 160, 60), (120, 80)), version_ids=[version.id], nsfw_level=1,
                             meta={"prompt": "a calm fox in a meadow", "seed": 5, "Model": "dream"})
    spicy = civitai.add_image(png((160, 30, 90)), version_ids=[version.id], nsfw_level=8,
                              meta={"prompt": "a spicy fox", "seed": 6})
    base = f"http://127.0.0.1:{runtime.port}"
    sign_in(desktop, runtime.port, services)

    # The CivitAI page: the model's images, the level-8 one hidden and counted; save both.
    desktop.goto(f"{base}/civitai")
    desktop.fill("#cv-ref", f"model:{version.model_id}")
    desktop.get_by_role("button", name="Look up").click()
    images = desktop.locator("#cv-images .cv-image")
    expect(images).to_have_count(1)
    expect(images.first).to_contain_text("a calm fox in a meadow")
    expect(desktop.locator("#cv-images-said")).to_contain_text("1 hidden by your NSFW setting")
    images.first.get_by_role("button", name="Save to gallery").click()
    expect(images.first.get_by_role("button", name="In your gallery")).to_be_disabled()
    _shot(desktop, "civitai-images-1440")
    scanner = Scanner()  # axe-core: no critical or serious problem in what this test opens
    scanner.check(desktop, "civitai-model-images")
    saved = desktop.evaluate("async (id) => (await import('/assets/js/lib/api.js')).api.post("
                             "'/api/gallery/civitai', { image_id: id })", spicy)  # hidden above, saved by id
    assert saved["nsfw_level"] == 8

    # The Gallery: the calm one is there with the two files, the spicy one only once the level allows it.
    desktop.goto(f"{base}/gallery")
    tiles = desktop.locator("#gallery-grid .gallery-tile")
    expect(tiles).to_have_count(3)
    expect(desktop.locator("#gallery-nsfw")).to_have_value("1")
    desktop.select_option("#gallery-nsfw", "8")
    expect(tiles).to_have_count(4)
    _shot(desktop, "gallery-nsfw-1440")
    scanner.check(desktop, "gallery-nsfw")
    desktop.select_option("#gallery-nsfw", "1")
    expect(tiles).to_have_count(3)

    # Compare the two foxes: select two, Compare, the differences listed, the slider uncovers the second.
    for name in ("a red fox", "a blue fox"):
        tile = desktop.locator(".gallery-tile", has=desktop.locator(f"img[alt='{name}']"))
        tile.hover()
        tile.locator(".tile-select").check()
    compare = desktop.locator("[data-action=compare-selected]")
    expect(compare).to_be_visible()
    compare.click()
    box = desktop.locator(".compare-box")
    expect(box).to_be_visible()
    expect(box.locator(".compare-side img")).to_have_count(2)
    rows = box.locator("#compare-differences tbody tr")
    expect(box.locator("#compare-differences tr[data-param=Prompt] td")).to_have_text(["a red fox", "a blue fox"])
    expect(box.locator("#compare-differences tr[data-param=Steps] td")).to_have_text(["20", "30"])
    expect(box.locator("tr[data-param=Seed]")).to_have_count(0)  # the same seed is not a difference
    assert rows.count() == 2
    _shot(desktop, "compare-side-1440")
    scanner.check(desktop, "compare-side")
    box.get_by_role("button", name="Slider").click()
    slider = box.locator("#compare-slider")
    expect(slider).to_be_focused()
    slider.fill("20")
    expect(box.locator(".compare-top")).to_have_attribute("style", "clip-path: inset(0px 0px 0px 20%);")
    _shot(desktop, "compare-slider-1440")
    scanner.check(desktop, "compare-slider")
    desktop.keyboard.press("Escape")
    expect(box).to_have_count(0)
    expect(compare).to_be_focused()  # back where the person was

    desktop.goto(f"{base}/settings")
    desktop.locator("[data-key=civitai_site]").scroll_into_view_if_needed()
    expect(desktop.locator("#setting-civitai_site")).to_have_value("red")
    _shot(desktop, "settings-civitai-1440")

    sign_in(phone, runtime.port, services)
    phone.goto(f"{base}/gallery")
    expect(phone.locator("#gallery-grid .gallery-tile")).to_have_count(3)
    for check in phone.locator(".tile-select").all()[:2]:
        check.check(force=True)  # no hover on a phone: the box is there to tap
    phone.locator("[data-action=compare-selected]").click()
    expect(phone.locator(".compare-box #compare-differences")).to_be_visible()
    _shot(phone, "compare-390")
    phone.keyboard.press("Escape")
    phone.goto(f"{base}/settings")
    expect(phone.locator("#setting-civitai_site")).to_have_value("red")
    phone.locator("[data-key=civitai_site]").scroll_into_view_if_needed()
    _shot(phone, "settings-civitai-390")
    no_overflow(phone)
    scanner.assert_clean()

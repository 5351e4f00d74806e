"""The CivitAI page in a real browser: an image pasted by address shows its models here and missing
with sizes, "Download missing" queues the missing LoRA, another workflow can be chosen, "Save as
preset" saves it; a dropped PNG with A1111 metadata is read the same way; a model looked up lists its
versions. Screenshots: /tmp/shots/C/civitai-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.servers.civitai import CivitaiServer, png
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures
from tests.test_browser_a11y import Scanner
from tests.test_browser_shell import _screen, no_overflow
from tests.test_civitai_import import A1111, CHECKPOINT, LORA, civitai, png_with, put_file, settings, sha  # noqa: F401

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/C")


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:  # noqa: F811
    yield from _screen(browser, bypass_csp=True, viewport={"width": 1440, "height": 900})  # axe-core is injected


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:  # noqa: F811
    yield from _screen(browser, bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)


def test_the_civitai_page_imports_an_image_and_queues_what_is_missing(
    desktop: Page, phone: Page, runtime: Runtime, services: Services, civitai: CivitaiServer, tmp_path: Path  # noqa: F811
) -> None:
    ink = civitai.add_version("ink.safetensors", LORA, model_name="Ink", base_model="SD 1.5")
    dream = civitai.add_version("dreamshaper_8.safetensors", CHECKPOINT, model_name="DreamShaper",
                                model_type="Checkpoint")
    put_file(services, "checkpoints/dreamshaper_8.safetensors", CHECKPOINT)
    meta = {"prompt": "a lighthouse at dusk, <lora:ink:0.8>", "negativePrompt": "blurry", "seed": 77, "steps": 24,
            "cfgScale": 6, "sampler": "DPM++ 2M Karras", "Size": "512x768", "Model": "dreamshaper_8"}
    image_id = civitai.add_image(png(), version_ids=[dream.id, ink.id], meta=meta)
    base = f"http://127.0.0.1:{runtime.port}"
    sign_in(desktop, runtime.port, services)

    desktop.goto(f"{base}/civitai")
    desktop.fill("#cv-image", f"https://civitai.com/images/{image_id}")
    desktop.get_by_role("button", name="Import").click()
    expect(desktop.locator("#cv-reason")).to_contain_text("txt2img")
    expect(desktop.locator("#cv-workflow")).to_have_value("sd15-txt2img")
    expect(desktop.locator("tr[data-role='checkpoint'] .resource-state")).to_have_text("present")
    lora_row = desktop.locator("tr[data-role='lora']")
    expect(lora_row.locator(".resource-state")).to_have_text("missing")
    expect(lora_row).to_contain_text("loras/ink.safetensors")
    expect(lora_row.locator(".cv-size")).to_have_text("50 KB")
    expect(desktop.locator("#cv-run")).to_be_disabled()
    expect(desktop.locator(".cv-facts")).to_contain_text("a lighthouse at dusk")
    download = desktop.locator("#cv-download")
    expect(download).to_have_text("Download missing (1, 50 KB)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    desktop.screenshot(path=str(SHOTS / "civitai-import-1440.png"), full_page=True)
    no_overflow(desktop)
    scanner = Scanner()  # axe-core: no critical or serious problem on the page with a plan shown
    scanner.check(desktop, "civitai-desktop")
    download.click()
    expect(desktop.locator(".toast").last).to_contain_text("Queued 1 download")
    assert any(d["path"] == "loras/ink.safetensors" for d in services.downloads.list())

    desktop.select_option("#cv-workflow", "sd15-img2img")
    expect(desktop.locator("#cv-reason")).to_have_text("Why: you chose it.")
    desktop.locator("#cv-preset").click()
    expect(desktop.locator(".toast").last).to_contain_text("Saved the preset")
    saved, _ = services.presets.store.load()
    assert [doc["workflow"]["workflow_id"] for doc in saved.values()
            if (doc.get("source") or {}).get("civitai_image_id") == image_id] == ["sd15-img2img"]

    dropped = tmp_path / "made.png"
    dropped.write_bytes(png_with(parameters=A1111.format(ckpt=sha(CHECKPOINT)[:10], lora=sha(LORA)[:10])))
    desktop.set_input_files("#cv-file", str(dropped))
    expect(desktop.locator("#cv-result h2")).to_have_text("made.png")
    expect(desktop.locator(".cv-facts")).to_contain_text("123456789")

    desktop.fill("#cv-ref", f"https://civitai.com/models/{dream.model_id}")
    desktop.get_by_role("button", name="Look up").click()
    expect(desktop.locator(f"#cv-versions tr[data-version='{dream.id}']")).to_contain_text(
        "here: checkpoints/dreamshaper_8.safetensors")
    desktop.screenshot(path=str(SHOTS / "civitai-lookup-1440.png"), full_page=True)

    sign_in(phone, runtime.port, services)
    phone.goto(f"{base}/civitai")
    phone.fill("#cv-image", str(image_id))
    phone.get_by_role("button", name="Import").click()
    expect(phone.locator("tr[data-role='lora']")).to_be_visible()
    phone.screenshot(path=str(SHOTS / "civitai-import-390.png"), full_page=True)
    no_overflow(phone)
    scanner.check(phone, "civitai-phone")
    scanner.assert_clean()
    assert all(r["authorization"] is None for r in civitai.storage.requests)

"""The LoRAs page in a real browser, showing what CivitAI says about the files on disk: Studio's copy
of the preview, the model's name and version linked to CivitAI, the base model, "newer" when CivitAI
has a newer version, trained words that copy with a click; "Not on CivitAI" for a file it never saw.
Screenshots: /tmp/shots/C/."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.servers.civitai import CivitaiServer, png
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures
from tests.test_browser_shell import desktop, no_overflow, phone  # noqa: F401 - shared fixtures
from tests.test_civitai_metadata import civitai, put_file, settings  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/C")
LORA = b"ink lora " * 5000
HOME = b"made at home " * 5000


def test_the_loras_page_shows_civitai_metadata(
    desktop: Page, phone: Page, runtime: Runtime, services: Services, civitai: CivitaiServer  # noqa: F811
) -> None:
    ink = civitai.add_version("ink.safetensors", LORA, model_name="Ink Style", version_name="v1",
                              trained_words=["ink drawing", "loose sketch lines"], base_model="SDXL 1.0",
                              preview=png((30, 90, 160)))
    civitai.add_version("ink_v2.safetensors", LORA + b"2", model_id=ink.model_id, version_name="v2")
    put_file(services, "loras/styles/ink_style_v1.safetensors", LORA)
    put_file(services, "loras/home_made.safetensors", HOME)
    assert services.civitai_meta.refresh()["found"] == 1

    base = f"http://127.0.0.1:{runtime.port}"
    sign_in(desktop, runtime.port, services)
    desktop.goto(f"{base}/loras")
    row = desktop.locator("#unlisted tr[data-path='loras/styles/ink_style_v1.safetensors']")
    expect(row.locator(".civitai-link")).to_have_text("Ink Style · v1")
    expect(row.locator(".civitai-link")).to_have_attribute(
        "href", f"{civitai.url('red')}/models/{ink.model_id}?modelVersionId={ink.id}")
    expect(row.locator(".civitai-update")).to_have_text("newer: v2")
    expect(row.locator(".trained-word")).to_have_text(["ink drawing", "loose sketch lines"])
    expect(row).to_contain_text("SDXL 1.0")
    preview = row.locator("img.civitai-preview")
    expect(preview).to_have_attribute(  # Studio's copy: the browser never goes to CivitAI's image host
        "src", re.compile(rf"^/api/civitai/previews/{hashlib.sha256(LORA).hexdigest()}\.webp\?v=\d+$"))
    desktop.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    expect(desktop.locator("#unlisted tr[data-path='loras/home_made.safetensors']")).to_contain_text("Not on CivitAI")
    expect(desktop.get_by_role("button", name="Look up on CivitAI")).to_be_visible()
    row.locator(".trained-word").first.click()
    expect(desktop.locator(".toast").last).to_contain_text("ink drawing")
    SHOTS.mkdir(parents=True, exist_ok=True)
    desktop.screenshot(path=str(SHOTS / "loras-civitai-1440.png"), full_page=True)
    no_overflow(desktop)
    assert all(r["authorization"] is None for r in civitai.storage.requests)

    sign_in(phone, runtime.port, services)
    phone.goto(f"{base}/loras")
    expect(phone.locator(".civitai-link").first).to_have_text("Ink Style · v1")
    phone.screenshot(path=str(SHOTS / "loras-civitai-390.png"), full_page=True)
    no_overflow(phone)

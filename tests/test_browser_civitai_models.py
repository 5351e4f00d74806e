"""The LoRAs page in a real browser, showing what CivitAI says about the files on disk: Studio's copy
of the preview, the model's name and version linked to CivitAI, the base model, "newer" when CivitAI
has a newer version, trained words that copy with a click; "Not on CivitAI" for a file it never saw; and
the Run form offering a chosen LoRA's trained words. Screenshots: /tmp/shots/C/."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.servers.civitai import CivitaiServer, png
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures
from tests.test_browser_shell import desktop, no_overflow, phone  # noqa: F401 - shared fixtures
from tests.test_civitai_metadata import civitai, put_file, settings  # noqa: F401 - shared fixtures
from tests.test_lora_pairs import LORAS as PAIRED_LORAS
from tests.test_lora_pairs import MANIFEST as PAIRED_MANIFEST
from tests.test_lora_pairs import POWER_LORA_INFO
from tests.test_lora_pairs import WORKFLOW as PAIRED_WORKFLOW
from tests.test_workflow_blocks import BLOCKS, MANIFEST, install

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


def test_the_run_form_offers_a_chosen_loras_trained_words_and_inserts_one_only_on_a_click(
    desktop: Page, phone: Page, runtime: Runtime, services: Services, civitai: CivitaiServer,  # noqa: F811
    comfy_server: ComfyUITestServer,
) -> None:
    civitai.add_version("ink.safetensors", LORA, model_name="Ink Style", trained_words=["ink drawing", "loose lines"])
    put_file(services, "loras/styles/ink.safetensors", LORA)
    put_file(services, "loras/home_made.safetensors", HOME)
    assert services.civitai_meta.refresh()["found"] == 1
    comfy_server.models["loras"] = ["home_made.safetensors", "styles/ink.safetensors"]
    install(services.data_dir.workflows / "t2i-dynamic", MANIFEST, BLOCKS)

    sign_in(desktop, runtime.port, services)
    desktop.goto(f"http://127.0.0.1:{runtime.port}/run/t2i-dynamic")
    prompt = desktop.locator("#param-positive_prompt")
    prompt.fill("a cat on a roof")
    desktop.get_by_role("button", name="Add a LoRA").click()
    row = desktop.locator(".lora-row").first
    expect(row.locator(".lora-file")).to_have_value("home_made.safetensors")
    expect(row.locator(".run-trained-words")).to_be_hidden()  # CivitAI knows no words for a home-made file
    row.locator(".lora-file").select_option("styles/ink.safetensors")
    chips = row.locator(".run-trained-words .trained-word")
    expect(chips).to_have_text(["ink drawing", "loose lines"])
    expect(prompt).to_have_value("a cat on a roof")  # offered, never added by itself

    prompt.evaluate("(el) => { el.focus(); el.setSelectionRange(5, 5); }")  # the caret after "a cat"
    chips.first.click()
    expect(prompt).to_have_value("a cat, ink drawing on a roof")
    chips.last.click()  # the caret stayed after the inserted word
    expect(prompt).to_have_value("a cat, ink drawing, loose lines on a roof")
    prompt.press("Control+End")
    chips.first.click()
    expect(prompt).to_have_value("a cat, ink drawing, loose lines on a roof, ink drawing")
    SHOTS.mkdir(parents=True, exist_ok=True)
    desktop.screenshot(path=str(SHOTS / "run-trained-words-1440.png"), full_page=True)
    no_overflow(desktop)
    row.locator(".lora-file").select_option("home_made.safetensors")
    expect(row.locator(".run-trained-words")).to_be_hidden()

    sign_in(phone, runtime.port, services)
    phone.goto(f"http://127.0.0.1:{runtime.port}/run/t2i-dynamic")
    phone.get_by_role("button", name="Add a LoRA").click()
    phone.locator(".lora-row .lora-file").first.select_option("styles/ink.safetensors")
    expect(phone.locator(".lora-row .trained-word")).to_have_count(2)
    phone.locator(".lora-row").first.scroll_into_view_if_needed()
    phone.screenshot(path=str(SHOTS / "run-trained-words-390.png"), full_page=True)
    no_overflow(phone)


def test_a_wan_pairs_trained_words_are_both_halves(
    desktop: Page, runtime: Runtime, services: Services, civitai: CivitaiServer,  # noqa: F811
    comfy_server: ComfyUITestServer,
) -> None:
    high, low = b"orbit high " * 3000, b"orbit low " * 3000
    civitai.add_version("orbit_high.safetensors", high, trained_words=["orbit shot"])
    civitai.add_version("orbit_low.safetensors", low, trained_words=["slow orbit", "orbit shot"])
    put_file(services, "loras/orbit_high.safetensors", high)
    put_file(services, "loras/orbit_low.safetensors", low)
    assert services.civitai_meta.refresh()["found"] == 2
    comfy_server.install_node("Power Lora Loader (rgthree)", POWER_LORA_INFO)
    comfy_server.models["loras"] = ["orbit_high.safetensors", "orbit_low.safetensors", "grain_wan.safetensors"]
    services.comfy.invalidate_object_info()
    (services.data_dir.catalogs / "loras.json").write_text(json.dumps(PAIRED_LORAS))
    folder = services.data_dir.workflows / "wan-pairs"
    folder.mkdir(parents=True)
    (folder / "workflow.json").write_text(json.dumps(PAIRED_WORKFLOW))
    (folder / "manifest.yaml").write_text(PAIRED_MANIFEST)
    services.library.refresh(force=True)

    sign_in(desktop, runtime.port, services)
    desktop.goto(f"http://127.0.0.1:{runtime.port}/run/wan-pairs")
    desktop.get_by_role("button", name="Add a LoRA pair").click()
    row = desktop.locator(".lora-row").first
    row.locator(".lora-pair").select_option("orbit")
    expect(row.locator(".run-trained-words .trained-word")).to_have_text(["orbit shot", "slow orbit"])  # once each
    prompt = desktop.locator("#param-prompt")
    expect(prompt).to_have_value("a cat")
    prompt.evaluate("(el) => { el.focus(); el.setSelectionRange(el.value.length, el.value.length); }")
    row.get_by_role("button", name="slow orbit").click()
    expect(prompt).to_have_value("a cat, slow orbit")
    row.locator(".lora-pair").select_option("grain")  # not on CivitAI: no chips
    expect(row.locator(".run-trained-words")).to_be_hidden()

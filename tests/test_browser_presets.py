"""Presets in a real browser: Save as preset from Run, then run it from its card by answering a choice."""

from __future__ import annotations

import shutil
from pathlib import Path

from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures

SHOTS = Path("/tmp/shots/P")


def snap(tab: Page, name: str) -> None:
    shoot(tab, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path("artifacts/screenshots") / f"{name}.png", SHOTS / f"{name}.png")


def test_save_as_preset_then_run_it_with_a_choice_from_its_card(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
) -> None:
    comfy_server.step_delay_s = 0.02
    sign_in(page, runtime.port, services)
    expect(page.locator("#workflow-picker")).to_have_value("sd15-txt2img")
    page.fill("#param-positive_prompt", "a lighthouse, [[Style:anime|watercolor]]")
    page.click("#save-preset")
    page.fill("#preset-name", "Lighthouse styles")
    expect(page.locator("[data-overridable=positive_prompt]")).to_be_checked()
    page.locator("[data-overridable=positive_prompt]").uncheck()
    snap(page, "run-save-as-preset")
    page.click("#save-preset-confirm")
    expect(page.locator("#save-preset-panel")).to_contain_text("Saved “Lighthouse styles”")
    saved = list(services.presets.store.load()[0].values())
    assert [preset["name"] for preset in saved] == ["Lighthouse styles"]
    assert saved[0]["overridable"] == []
    assert saved[0]["workflow"]["params"]["positive_prompt"] == "a lighthouse, [[Style:anime|watercolor]]"

    page.click("#save-preset-panel a[href='/presets']")
    card = page.locator(".preset-card", has_text="Lighthouse styles")
    expect(card).to_contain_text("Asks 1 question")
    card.locator("[data-action=run-preset]").click()
    question = card.locator("[data-question='0']")
    expect(question).to_contain_text("1. Style")
    question.get_by_label("watercolor").check()  # the pill is the radio itself, as wide as its text
    snap(page, "presets-run-question")
    card.locator("[data-action=start-preset]").click()
    job = page.locator("#preset-jobs .job-card")
    expect(job).to_have_attribute("data-status", "completed", timeout=20_000)
    ran = page.evaluate("""async () => (await (await fetch('/api/jobs?limit=5')).json()).items""")
    assert len(ran) == 1
    assert ran[0]["params"]["positive_prompt"] == "a lighthouse, watercolor"
    # The owner's finished run becomes the card's picture.
    expect(card.locator("img.preset-thumb")).to_be_visible(timeout=10_000)
    snap(page, "presets-after-run")

    page.set_viewport_size({"width": 390, "height": 844})
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1]
    snap(page, "presets-phone")

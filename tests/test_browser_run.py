"""The Run page in a real browser: where a person lands, what it remembers (here and on their
phone), an installed model chosen for them, a large result on the stage, drafts, Ctrl+Enter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures

SHOTS = Path("/tmp/shots/A")
PHONE = {"width": 390, "height": 844}


def snap(tab: Page, name: str) -> None:
    shoot(tab, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path("artifacts/screenshots") / f"{name}.png", SHOTS / f"{name}.png")


def no_overflow(tab: Page) -> None:
    widths = tab.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def session_seeds(tab: Page) -> list[int]:
    """The seed each job started from this page really ran with (its summary, from the jobs API)."""
    return tab.evaluate("""async () => {
      const ids = [...document.querySelectorAll('#session-jobs .job-card')].map((c) => c.dataset.job);
      return Promise.all(ids.map(async (id) => (await (await fetch(`/api/jobs/${id}`)).json()).summary.seed));
    }""")


def test_first_run_lands_on_text_to_image_with_an_installed_model_and_follows_the_person_to_their_phone(
    page: Page, browser: Browser, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
) -> None:
    comfy_server.step_delay_s = 0.05
    sign_in(page, runtime.port, services)
    # A first-time person lands on Run: the bundled text-to-image workflow and a hint.
    expect(page.locator("#workflow-picker")).to_have_value("sd15-txt2img")
    expect(page.locator("#run-hint")).to_contain_text("it appears on the right as it renders")
    # The workflow's own model is not installed: an installed one is chosen, and the absence said.
    expect(page.locator("#param-checkpoint")).to_have_value(json.dumps("random_sd15.safetensors"))
    expect(page.locator(".missing-model")).to_contain_text("v1-5-pruned-emaonly")
    expect(page.locator(".readiness")).to_have_text("Ready")
    expect(page.locator("#param-seed-random")).to_be_checked()
    expect(page.locator("[data-field=seed]")).to_contain_text("Random: a new seed each run")
    snap(page, "run-first-desktop")

    page.fill("#param-positive_prompt", "a lighthouse at dusk")
    page.locator("#param-positive_prompt").press("Control+Enter")  # two clicks: sign in, then this
    stage = page.locator("#stage img.stage-image")
    expect(page.locator(".stage")).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(stage).to_be_visible()
    expect(stage).to_have_js_property("naturalWidth", 512)
    box, form = stage.bounding_box(), page.locator(".run-panel").bounding_box()
    assert box is not None
    assert form is not None
    assert box["width"] >= 450, box  # large, not a 260 px card
    assert box["width"] > form["width"], (box, form)  # the larger part of the page
    expect(page.locator("#session-results .strip-item")).to_have_count(1)
    expect(page.locator("#stage-new-seed")).to_be_visible()
    snap(page, "run-result-desktop")
    first_src = stage.get_attribute("src")

    # "New seed": the same values again with another seed, a second, different image.
    page.click("#stage-new-seed")
    expect(page.locator("#session-results .strip-item")).to_have_count(2, timeout=20_000)
    expect(page.locator(".stage")).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(stage).not_to_have_attribute("src", first_src or "")
    seeds = session_seeds(page)
    assert len(seeds) == 2
    assert seeds[0] != seeds[1]

    # Reloading keeps the workflow and the values (from this browser and from the server).
    page.reload()
    expect(page.locator("#param-positive_prompt")).to_have_value("a lighthouse at dusk")
    expect(page.locator("#run-hint")).to_be_hidden()

    # "Their phone": another browser, nothing stored locally, the same person.
    phone = browser.new_context(viewport=PHONE).new_page()
    errors: list[str] = []
    phone.on("pageerror", lambda err: errors.append(str(err)))
    try:
        sign_in(phone, runtime.port, services)
        expect(phone.locator("#workflow-picker")).to_have_value("sd15-txt2img")
        expect(phone.locator("#param-positive_prompt")).to_have_value("a lighthouse at dusk")
        expect(phone.locator("#run-hint")).to_be_hidden()
        no_overflow(phone)
        snap(phone, "run-phone")
    finally:
        phone.context.close()
    assert errors == []


def test_a_draft_survives_navigation_and_switching_workflows_and_resets_to_defaults(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/run/sd15-txt2img")
    page.fill("#param-positive_prompt", "a red bicycle")
    page.select_option("[data-field=resolution] .size-preset", label="Portrait 512×768")
    page.get_by_role("link", name="History").click()
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/history")
    page.go_back()
    expect(page.locator("#param-positive_prompt")).to_have_value("a red bicycle")
    expect(page.locator("[data-field=resolution] input").nth(1)).to_have_value("768")

    # Picking a workflow names it in the address; coming back finds the draft where it was.
    page.select_option("#workflow-picker", "image-resize")
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/run/image-resize")
    expect(page.locator("#param-positive_prompt")).to_have_count(0)
    page.select_option("#workflow-picker", "sd15-txt2img")
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/run/sd15-txt2img")
    expect(page.locator("#param-positive_prompt")).to_have_value("a red bicycle")

    page.click("#reset-defaults")
    expect(page.locator("#param-positive_prompt")).to_have_value("")
    expect(page.locator("[data-field=resolution] input").nth(1)).to_have_value("512")

    # While ComfyUI is away the Run button says that jobs will wait.
    comfy_server.stop()
    expect(page.locator("#comfy-wait")).to_be_visible(timeout=15_000)
    expect(page.locator("#run-button")).to_have_text("Run (will wait)")
    comfy_server.start()
    expect(page.locator("#comfy-wait")).to_be_hidden(timeout=20_000)
    expect(page.locator("#run-button")).to_have_text("Run")


def test_run_at_phone_width_has_no_sideways_scroll_and_every_field_is_labelled(
    page: Page, runtime: Runtime, services: Services,  # noqa: F811
) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page, runtime.port, services)
    expect(page.locator("#param-positive_prompt")).to_be_visible()
    expect(page.locator("#run-hint")).to_contain_text("it appears below the form as it renders")  # stacked here
    no_overflow(page)
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        '#run-form input, #run-form select, #run-form textarea')]
      .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
      .map((el) => el.name || el.id || el.outerHTML.slice(0, 60))""")
    assert unlabelled == []
    snap(page, "run-first-phone")


def test_reuse_a_jobs_values_and_use_its_image_as_input(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    page.fill("#param-positive_prompt", "a blue boat")
    page.locator("#param-positive_prompt").press("Control+Enter")
    expect(page.locator(".stage")).to_have_attribute("data-status", "completed", timeout=20_000)
    job = page.locator("#session-jobs .job-card").first.get_attribute("data-job")

    # Variations: N jobs with the same values and N different seeds, each joining the strip.
    page.fill("#variations-count", "3")
    page.click("#stage-variations")
    expect(page.locator("#session-results .strip-item")).to_have_count(4, timeout=30_000)
    seeds = session_seeds(page)
    assert len(seeds) == 4
    assert len(set(seeds)) == 4
    page.fill("#param-positive_prompt", "something else entirely")

    page.goto(f"http://127.0.0.1:{runtime.port}/run/sd15-txt2img?from_job={job}")
    expect(page.locator("#param-positive_prompt")).to_have_value("a blue boat")

    page.goto(f"http://127.0.0.1:{runtime.port}/run/sd15-img2img?input={job}:0")
    expect(page).to_have_url(f"http://127.0.0.1:{runtime.port}/run/sd15-img2img")
    expect(page.locator(".image-input img.thumb")).to_be_visible(timeout=10_000)
    name = page.locator(".image-input input[type=hidden]").input_value()
    assert name.startswith("studio/")
    # The prompt travels from text-to-image to image-to-image.
    expect(page.locator("#param-positive_prompt")).to_have_value("a blue boat")
    snap(page, "run-input-desktop")


def test_a_workflow_that_cannot_run_says_what_is_missing_and_offers_the_download(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
) -> None:
    comfy_server.models["checkpoints"] = []  # no checkpoint at all: nothing to choose instead
    sign_in(page, runtime.port, services)
    expect(page.locator(".readiness")).to_have_attribute("data-ready", "false")
    expect(page.locator(".readiness")).to_contain_text("v1-5-pruned-emaonly.safetensors is missing")
    page.click("#what-is-missing")
    expect(page.locator(".missing-box li")).to_contain_text(["v1-5-pruned-emaonly.safetensors (3.97 GB)"])
    expect(page.get_by_role("button", name="Download all (3.97 GB)")).to_be_visible()
    snap(page, "run-not-ready-desktop")


def test_a_model_refresh_redraws_only_the_pickers_and_keeps_what_is_typed(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    prompt = page.locator("#param-positive_prompt")
    expect(prompt).to_be_visible()
    page.wait_for_load_state("networkidle")  # the refresh made on opening the workflow is over
    prompt.fill("a lighthouse in fog")
    prompt.evaluate("(el) => { el.dataset.mark = 'same'; }")  # still this very element afterwards?
    services.system.models_refresh_interval_s = 0  # ComfyUI is asked again at once, not a cached answer
    comfy_server.models["checkpoints"] = ["random_sd15.safetensors", "new_model.safetensors"]
    page.locator("[data-field='checkpoint'] .refresh-models").click()
    expect(page.locator("#param-checkpoint option", has_text="new_model.safetensors")).to_have_count(1)
    expect(page.locator("#param-checkpoint")).to_have_value(json.dumps("random_sd15.safetensors"))
    assert prompt.evaluate("(el) => el.dataset.mark") == "same"  # the form was not drawn again
    expect(prompt).to_have_value("a lighthouse in fog")
    assert page.evaluate("document.activeElement.classList.contains('refresh-models')")

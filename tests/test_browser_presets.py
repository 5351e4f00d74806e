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


def test_the_api_page_reads_the_generated_document(
    page: Page, runtime: Runtime, services: Services,  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/apidocs")
    run = page.locator("[data-operation]", has_text="/api/presets/{preset_id}/run")
    expect(run).to_have_count(1)
    run.locator("summary").click()
    expect(run).to_contain_text("answers")
    page.fill("#api-filter", "idempotency-nothing-matches-this")
    expect(page.locator("#api-operations")).to_contain_text("No operation matches.")
    page.fill("#api-filter", "presets")
    expect(page.locator("[data-operation]").first).to_be_visible()
    snap(page, "api-docs")


def test_a_preset_is_scheduled_from_its_card_shows_its_next_runs_and_is_disabled(
    page: Page, runtime: Runtime, services: Services,  # noqa: F811
) -> None:
    from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
    from tests.jobs_helpers import SAMPLER_PARAMS

    sign_in(page, runtime.port, services)
    _, admin = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    services.presets.create({"name": "Morning cat", "workflow_id": "sd15-txt2img",
                             "params": {**SAMPLER_PARAMS, "positive_prompt": "a cat, [[Style:anime|photo]]"}}, admin)
    page.goto(f"http://127.0.0.1:{runtime.port}/presets")
    card = page.locator(".preset-card", has_text="Morning cat")
    card.locator("[data-action=schedule-preset]").click()
    dialog = card.locator(".schedule-dialog")
    expect(dialog).to_contain_text("No schedules yet.")
    dialog.locator("select[name=common]").select_option(label="Weekdays at 8:30")
    expect(dialog.locator("input[name=cron]")).to_have_value("30 8 * * 1-5")
    dialog.locator("input[name=timezone]").fill("Mars/Olympus")
    dialog.locator("[data-action=create-schedule]").click()
    # The refused field, said under it.
    expect(dialog.locator("[data-field-error=timezone]")).to_contain_text("not an IANA time zone name")
    assert services.schedules.list_for(admin) == []
    dialog.locator("input[name=timezone]").fill("Europe/Rome")
    dialog.locator("select[name=answer-0]").select_option("photo")
    dialog.locator("select[name=missed_policy]").select_option("run_once")
    dialog.locator("[data-action=create-schedule]").click()

    item = dialog.locator(".schedule-item")
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-enabled", "true")
    expect(item.locator(".schedule-cron")).to_have_text("30 8 * * 1-5")
    expect(item.locator(".schedule-next li")).to_have_count(3)
    [made] = services.schedules.list_for(admin)
    assert (made["timezone"], made["missed_policy"], made["answers"]) == ("Europe/Rome", "run_once", {"0": "photo"})
    shown = item.locator(".schedule-next li").evaluate_all("items => items.map(li => li.dataset.iso)")
    assert shown == made["next_runs"]
    assert all(iso.endswith(("T08:30:00+01:00", "T08:30:00+02:00")) for iso in shown)
    expect(dialog.locator(".schedule-preview li")).to_have_count(3)  # what the form's expression would do
    snap(page, "presets-schedule")

    item.locator("[data-action=disable-schedule]").click()
    expect(item).to_have_attribute("data-enabled", "false")
    expect(item.locator(".schedule-next li")).to_have_count(0)
    assert services.schedules.list_for(admin)[0]["enabled"] is False
    snap(page, "presets-schedule-disabled")

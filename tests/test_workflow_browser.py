"""Workflow pages in a real browser: a workflow waiting for a node pack says what is missing, with
the pack's page, on the Run page and the Workflows page; the sampler list shows the workflow's
kind of samplers and the rest only with Advanced open."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.test_workflow_pending import fancy_ui

SHOTS = Path("/tmp/shots/C")


def snap(tab: Page, name: str) -> None:
    shoot(tab, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path("artifacts/screenshots") / f"{name}.png", SHOTS / f"{name}.png")


def test_a_workflow_waiting_for_a_node_pack_says_what_is_missing_and_its_samplers_are_the_familys(
    page: Page, runtime: Runtime, services: Services,  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/workflows")
    page.set_input_files("#import-file", {"name": "fancy.json", "mimeType": "application/json",
                                          "buffer": json.dumps(fancy_ui()).encode()})
    page.locator("#import-form button[type=submit]").click()
    card = page.locator("[data-workflow=fancy-castle]")
    card.locator("[data-action=install-missing]").click()  # imported, and not ready: it says why
    expect(card.locator(".plan")).to_contain_text("FancyUpscaler")
    expect(card.locator(".plan a")).to_have_attribute("href", "https://github.com/someone/fancy-nodes")
    snap(page, "workflows-waiting-for-a-pack")

    page.goto(f"http://127.0.0.1:{runtime.port}/run/fancy-castle")
    expect(page.locator(".readiness")).to_have_text("Not ready: node FancyUpscaler is not installed.")
    page.click("#what-is-missing")
    missing = page.locator("[data-missing-node=FancyUpscaler]")
    expect(missing).to_contain_text("install its node pack (someone/fancy-nodes) in ComfyUI, then restart it")
    expect(missing.locator("a")).to_have_attribute("href", "https://github.com/someone/fancy-nodes")

    sampler = page.locator("#param-sampler_name")
    more = sampler.locator("optgroup.more-options")
    expect(more).to_have_js_property("hidden", True)
    expect(more).to_have_js_property("disabled", True)
    expect(sampler.locator("option:not(optgroup option)")).to_have_count(13)
    page.locator("details summary", has_text="Advanced").click()
    expect(more).to_have_js_property("hidden", False)
    expect(more).to_have_js_property("disabled", False)
    sampler.select_option(json.dumps("res_multistep"))  # a sampler beyond the family's, chosen by hand
    snap(page, "run-waiting-for-a-pack")
    page.locator("details summary", has_text="Advanced").click()
    expect(sampler).to_have_value(json.dumps("res_multistep"))  # still offered: it is the chosen one
    expect(more).to_have_js_property("disabled", False)

"""The main journey in a real browser: fill a form, watch it render live, keep and retry it."""

import json
from pathlib import Path

from flask.testing import FlaskClient
from playwright.sync_api import Page, expect
from sqlmodel import Session

from studio.jobs.models import Job
from studio.runtime import Runtime
from studio.services import Services
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.test_lora_pairs import wan  # noqa: F401 - shared fixture
from tests.test_models_inventory import LORAS
from tests.test_workflow_import import png_with
from tests.ui_workflows import SAMPLER_API, sampler_ui


def test_run_a_workflow_watch_it_live_and_retry_it_from_history(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer  # noqa: F811
) -> None:
    comfy_server.step_delay_s = 0.25
    sign_in(page, runtime.port, services)
    page.get_by_role("link", name="Run").click()
    page.select_option("#workflow-picker", "sd15-txt2img")
    expect(page.locator("#param-positive_prompt")).to_be_visible()
    # Opening a workflow refreshes its model lists and may draw the form again once: let that settle
    # (a redraw while someone types is a known rough edge, issue 12).
    page.wait_for_load_state("networkidle")
    page.click("#run-button")
    expect(page.locator("[data-field=positive_prompt] .field-error")).to_contain_text("is required")
    expect(page.locator("#param-checkpoint option:checked")).to_have_text("random_sd15.safetensors")  # installed

    page.fill("#param-positive_prompt", "a lighthouse on a cliff at dusk")
    page.select_option("#param-checkpoint", label="random_sd15.safetensors")
    page.locator("summary", has_text="Advanced").click()
    page.fill("#param-steps", "8")
    page.click("#run-button")

    card = page.locator("#session-jobs .job-card").first
    expect(card.locator(".badge")).to_have_text("running", timeout=10_000)
    expect(card.locator("img.preview")).to_be_visible(timeout=10_000)
    expect(card.locator(".job-progress")).to_contain_text("Sampler · step")
    shoot(page, "run-live")
    expect(card.locator(".badge")).to_have_text("completed", timeout=15_000)
    expect(card.locator("img.output")).to_be_visible()
    shoot(page, "run-done")

    page.get_by_role("link", name="History").click()
    expect(page.locator("#history-list .result-tile img")).to_have_count(1)
    page.locator("#history-list .tile-open").first.click()
    page.locator(".lightbox [data-action=new-seed]").click()
    expect(page.locator(".lightbox-counter")).to_have_text("2 of 2", timeout=15_000)
    page.keyboard.press("Escape")
    expect(page.locator("#history-list .result-tile img")).to_have_count(2)
    shoot(page, "history")
    page.locator("#history-list .tile-open").first.click()
    page.locator(".lightbox [data-action=open-job]").click()
    expect(page.locator("#job-params")).to_contain_text("a lighthouse on a cliff at dusk")
    expect(page.locator(".timeline li")).to_have_count(4)  # submitted, running, completed… and queued
    shoot(page, "job")


def test_upload_an_image_and_resize_it(page: Page, runtime: Runtime, services: Services, tmp_path: Path) -> None:  # noqa: F811
    from PIL import Image

    picture = tmp_path / "photo.png"
    Image.new("RGB", (120, 80), (20, 120, 220)).save(picture)
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/run?workflow=image-resize")
    page.set_input_files("#param-image", str(picture))
    expect(page.locator(".image-input img.thumb")).to_be_visible()
    page.fill("#param-width", "60")
    page.fill("#param-height", "40")
    page.click("#run-button")
    card = page.locator("#session-jobs .job-card").first
    expect(card.locator(".badge")).to_have_text("completed", timeout=10_000)
    output = card.locator("img.output")
    expect(output).to_have_js_property("naturalWidth", 60)  # waits for the picture to load
    expect(output).to_have_js_property("naturalHeight", 40)


def test_import_a_png_then_run_the_detected_form_and_retry_it(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer, tmp_path: Path  # noqa: F811
) -> None:
    comfy_server.step_delay_s = 0.25
    picture = tmp_path / "castle.png"
    picture.write_bytes(png_with(ui=sampler_ui(), prompt=SAMPLER_API))
    sign_in(page, runtime.port, services)
    page.get_by_role("link", name="Workflows").click()
    page.set_input_files("#import-file", str(picture))
    page.fill("#import-name", "Castle in the clouds")
    page.click("#import-form button[type=submit]")

    editor = page.locator("#mapping-editor")
    expect(editor).to_contain_text("Form of “Castle in the clouds”")
    expect(editor.locator("tr[data-param=positive_prompt] .map-default")).to_have_value("a castle in the clouds")
    editor.locator("tr[data-param=positive_prompt] .map-name").fill("Describe the castle")
    editor.locator("tr[data-param=denoise] .map-hidden").check()
    shoot(page, "mapping-editor")
    page.click("#save-mapping")
    expect(page.locator(".toast", has_text="Form saved.")).to_be_visible()

    editor.get_by_role("link", name="Try it in Run").click()
    expect(page.locator("label[for=param-positive_prompt]")).to_have_text("Describe the castle")
    expect(page.locator("[data-field=denoise]")).to_have_count(0)
    page.fill("#param-positive_prompt", "a castle at night, stars")
    page.fill("#param-steps", "6")
    page.click("#run-button")
    card = page.locator("#session-jobs .job-card").first
    expect(card.locator("img.preview")).to_be_visible(timeout=10_000)
    expect(card.locator(".badge")).to_have_text("completed", timeout=15_000)
    expect(card.locator("img.output")).to_be_visible()

    page.get_by_role("link", name="History").click()
    page.fill("input[name=q]", "stars")
    expect(page.locator("#history-list .result-tile img")).to_have_count(1)
    page.locator("#history-list .tile-open").first.click()
    page.locator(".lightbox [data-action=new-seed]").click()
    expect(page.locator(".lightbox-counter")).to_have_text("2 of 2", timeout=15_000)
    page.keyboard.press("Escape")
    shoot(page, "history-after-import")


def test_a_block_workflow_with_a_lora_from_the_form(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer  # noqa: F811
) -> None:
    from tests.test_workflow_blocks import BLOCKS, MANIFEST, install

    install(services.data_dir.workflows / "t2i-dynamic", MANIFEST, BLOCKS)
    comfy_server.models["loras"] = ["detail.safetensors", "ink.safetensors"]
    services.comfy.invalidate_object_info()
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/run?workflow=t2i-dynamic")
    page.fill("#param-positive_prompt", "a harbour at dawn")
    page.get_by_role("button", name="Add a LoRA").click()
    page.select_option(".lora-row .lora-file", "ink.safetensors")
    page.fill(".lora-row .lora-strength", "0.6")
    shoot(page, "run-loras")
    page.click("#run-button")
    card = page.locator("#session-jobs .job-card").first
    expect(card.locator(".badge")).to_have_text("completed", timeout=15_000)
    job_id = str(card.get_attribute("data-job"))
    with Session(services.engine) as session:
        job = session.get(Job, job_id)
    assert job is not None
    assert job.params["loras"] == [{"file": "ink.safetensors", "strength": 0.6}]
    assert any(node["class_type"] == "LoraLoader" for node in job.prompt.values())


def test_lora_pairs_from_the_form(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer, wan: None  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/run?workflow=wan-pairs")
    page.get_by_role("button", name="Add a LoRA pair").click()
    pair = page.locator(".lora-pair").first
    expect(pair.locator("option[value=squish]")).to_have_text("Squish (high + low) – not installed")
    expect(pair.locator("option[value=squish]")).to_be_disabled()
    expect(pair.locator("option[value=detail_xl\\.safetensors]")).to_have_count(0)  # SDXL: not for WAN
    pair.select_option("orbit")
    page.locator(".lora-strength").first.fill("0.7")
    shoot(page, "run-lora-pairs")
    page.click("#run-button")
    card = page.locator("#session-jobs .job-card").first
    expect(card.locator(".badge")).to_have_text("completed", timeout=15_000)
    sent = comfy_server.prompts_received[-1]["prompt"]
    assert sent["2"]["inputs"]["lora_2"]["lora"] == "orbit_high.safetensors"
    assert sent["3"]["inputs"]["lora_1"] == {"on": True, "lora": "orbit_low.safetensors", "strength": 0.7,
                                             "strengthTwo": None}


def test_reorder_the_waiting_queue(
    page: Page, runtime: Runtime, services: Services, client: FlaskClient  # noqa: F811
) -> None:
    from tests.jobs_helpers import run, upload_image

    client.post("/api/queue/pause")
    first, second, third = (j["id"] for j in run(client, "image-resize", {"image": upload_image(client)}, count=3))
    sign_in(page, runtime.port, services)
    page.get_by_role("link", name="Queue").click()
    rows = page.locator("#queue-waiting li")
    expect(rows).to_have_count(3)
    rows.nth(0).get_by_role("button", name="Move down").click()
    expect(rows.nth(0)).to_have_attribute("data-job", second)
    expect(rows.nth(1)).to_have_attribute("data-job", first)
    rows.nth(2).drag_to(rows.nth(0))
    expect(rows.nth(0)).to_have_attribute("data-job", third)
    shoot(page, "queue-reordered")


def test_a_scene_list_from_the_form(page: Page, runtime: Runtime, services: Services) -> None:  # noqa: F811
    from tests.test_workflow_blocks import SCENES_BLOCKS, SCENES_MANIFEST, install

    install(services.data_dir.workflows / "scenes", SCENES_MANIFEST, SCENES_BLOCKS)
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/run?workflow=scenes")
    page.locator(".scene-prompt").first.fill("a door opens")
    page.get_by_role("button", name="Add a scene").click()
    page.locator(".scene-prompt").nth(1).fill("light floods in")
    page.locator(".scene-duration").nth(1).fill("2")
    shoot(page, "run-scenes")
    page.click("#run-button")
    card = page.locator("#session-jobs .job-card").first
    expect(card.locator(".badge")).to_have_text("completed", timeout=15_000)
    with Session(services.engine) as session:
        job = session.get(Job, str(card.get_attribute("data-job")))
    assert job is not None
    assert [(s["prompt"], s["frames"]) for s in job.params["scenes"]] == [("a door opens", 81), ("light floods in", 33)]


def test_download_a_catalog_model_and_watch_the_queue(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer  # noqa: F811
) -> None:
    from tests.servers.files import FileServer
    from tests.test_downloads import MODEL, json_catalog

    files = FileServer().start()
    try:
        files.files["/model.safetensors"] = MODEL
        (services.data_dir.catalogs / "models.json").write_text(json_catalog(files))
        sign_in(page, runtime.port, services)
        page.get_by_role("link", name="Models").click()
        row = page.locator("tr[data-file='model.safetensors']")
        expect(row).to_contain_text("missing")
        expect(page.locator("#model-list")).to_contain_text("checkpoints/Broken: file: Field required")
        row.get_by_role("button", name="Download").click()
        expect(row).to_contain_text("present", timeout=15_000)
        shoot(page, "models")
        page.get_by_role("link", name="Downloads").click()
        expect(page.locator("#download-list")).to_contain_text("completed")
        shoot(page, "downloads")

        # A workflow whose checkpoint no catalog lists yet: the catalog learns it, one click installs it.
        catalog = json.loads((services.data_dir.catalogs / "models.json").read_text())
        catalog["categories"][0]["models"].append({
            "name": "SD 1.5", "file": "v1-5-pruned-emaonly.safetensors", "dest": "checkpoints", "source": "url",
            "size_gb": 0.003, "url": files.url("/model.safetensors")})
        (services.data_dir.catalogs / "models.json").write_text(json.dumps(catalog))
        comfy_server.models["checkpoints"] = []
        services.comfy.invalidate_object_info()
        page.get_by_role("link", name="Workflows").click()
        card = page.locator("[data-workflow=sd15-txt2img]")
        expect(card).to_contain_text("model v1-5-pruned-emaonly.safetensors is missing")
        card.get_by_role("button", name="What is missing?").click()
        plan = card.locator(".plan")
        expect(plan).to_contain_text("v1-5-pruned-emaonly.safetensors → checkpoints · 0.003 GB · from catalog")
        shoot(page, "workflows-missing")
        plan.get_by_role("button", name="Download 1 (0.003 GB)").click()
        expect(plan).to_contain_text("1 queued:")
        expect(plan.locator(".download-progress")).to_contain_text(": installed", timeout=15_000)  # live, right here
        model = services.models_root.root / "checkpoints" / "v1-5-pruned-emaonly.safetensors"
        assert model.read_bytes() == MODEL

        # System shows the models disk: bytes per folder and the largest files.
        page.get_by_role("link", name="System").click()
        disk = page.locator("#models-disk-card")
        expect(disk).to_contain_text("checkpoints (2)")
        shoot(page, "home-models-disk")

        # LoRAs: a catalog imported from a file on the page, shown with its high/low pair.
        page.get_by_role("link", name="LoRAs").click()
        page.get_by_text("Import a catalog JSON").click()
        page.set_input_files("#catalog-import input[type=file]", files=[{
            "name": "loras.json", "mimeType": "application/json", "buffer": json.dumps(LORA_CATALOG).encode()}])
        page.get_by_role("button", name="Import").click()
        expect(page.locator(".toast", has_text="Imported: 3 added, 0 updated.")).to_be_visible()
        expect(page.locator("#catalog-import [role=alert]")).to_contain_text(
            "loras/nameless.safetensors: name: String should have at least 1 character")
        pair = page.locator("#lora-pairs tr[data-pair=motion]")
        expect(pair).to_contain_text("Motion")
        expect(pair.locator(".role-high")).to_have_count(1)
        expect(pair.locator(".role-low")).to_have_count(1)
        page.locator("select[aria-label='Base model']").select_option("SDXL")
        expect(page.locator("[data-category=loras] tr")).to_have_count(1)
        expect(page.locator("#lora-pairs")).to_have_count(0)  # the filters apply to pairs too
        shoot(page, "loras")
    finally:
        files.stop()


LORA_CATALOG = {"version": 1, "categories": [{**LORAS["categories"][0], "models": [
    *LORAS["categories"][0]["models"],
    {"file": "nameless.safetensors", "dest": "loras", "source": "url", "size_gb": 0.1, "name": ""}]}]}

"""Importing workflows: UI-format conversion, parameter detection, PNG metadata, stable ids
across re-imports, and the mapping editor."""

import copy
import io
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, PngImagePlugin

from studio.runtime import Runtime
from studio.workflows.detect import detect
from studio.workflows.uiformat import convert
from tests.conftest import signed_in_user
from tests.jobs_helpers import run, wait_status
from tests.servers.comfyui import load_object_info
from tests.ui_workflows import SAMPLER_API, node, sampler_ui, subgraph_ui

OBJECT_INFO = load_object_info()


def png_with(ui: dict | None = None, prompt: dict | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if ui is not None:
        info.add_text("workflow", json.dumps(ui))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def upload(client: FlaskClient, data: bytes, filename: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), filename), **form},
                       content_type="multipart/form-data")


def test_ui_format_converts_like_the_editor_would() -> None:
    assert convert(sampler_ui(), OBJECT_INFO) == SAMPLER_API


def test_subgraphs_are_flattened_with_comfyui_style_ids() -> None:
    prompt = convert(subgraph_ui(), OBJECT_INFO)
    assert sorted(prompt) == ["20:3", "20:30:8", "4", "5", "6", "7", "9"]
    sampler = prompt["20:3"]["inputs"]
    assert (sampler["model"], sampler["positive"], sampler["latent_image"]) == (["4", 0], ["6", 0], ["5", 0])
    assert (sampler["seed"], sampler["steps"]) == (7, 5)
    assert prompt["20:30:8"]["inputs"] == {"samples": ["20:3", 0], "vae": ["4", 2]}
    assert prompt["9"]["inputs"]["images"] == ["20:30:8", 0]
    detected = {p["id"]: p for p in detect(prompt, OBJECT_INFO)}
    assert detected["seed"]["node_id"] == "20:3"


def test_load_image_skips_its_upload_widget_value() -> None:
    ui = {"nodes": [
        node(1, "LoadImage", ["photo.png", "image"], outputs=[("IMAGE", [1]), ("MASK", [])]),
        node(2, "ImageScale", ["bilinear", 80, 60, "disabled"], [("image", "IMAGE", 1)], [("IMAGE", [2])]),
        node(3, "SaveImage", ["resized"], [("images", "IMAGE", 2)]),
    ], "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]}
    prompt = convert(ui, OBJECT_INFO)
    assert prompt["1"]["inputs"] == {"image": "photo.png"}
    assert prompt["2"]["inputs"] == {"upscale_method": "bilinear", "width": 80, "height": 60, "crop": "disabled",
                                     "image": ["1", 0]}
    found = {p["id"]: p for p in detect(prompt, OBJECT_INFO)}
    assert found["image"]["type"] == "image"
    assert found["upscale_image_width"]["advanced"] is True  # every other literal stays reachable


def test_detection_finds_what_a_person_sets() -> None:
    found = {p["id"]: p for p in detect(SAMPLER_API, OBJECT_INFO)}
    assert (found["positive_prompt"]["node_id"], found["negative_prompt"]["node_id"]) == ("6", "7")
    assert found["seed"] == {"id": "seed", "name": "Seed", "type": "seed", "node_id": "3", "field": "seed",
                             "default": -1, "advanced": False}
    assert found["sampler_name"]["type"] == "select"
    assert "dpmpp_2m" in [o["value"] for o in found["sampler_name"]["options"]]
    assert found["checkpoint"]["type"] == "checkpoint_picker"
    assert found["scheduler"]["advanced"]
    assert found["denoise"]["advanced"]


def test_titles_name_prompts_and_app_mode_wins() -> None:
    titled = copy.deepcopy(SAMPLER_API)
    titled["6"]["_meta"]["title"] = "Subject"
    found = {p["id"]: p for p in detect(titled, OBJECT_INFO)}
    assert found["positive_prompt"]["name"] == "Subject"
    # ComfyUI's App Mode, as its frontend saves it: [node id, widget, config?] in the order shown.
    app_mode = {"extra": {"linearMode": True, "linearData": {
        "inputs": [["6", "text", {"height": 160, "description": "What to draw"}], ["3", "seed"], ["3", "steps"],
                   ["99", "text"]],  # a node that is gone is skipped, not an error
        "outputs": ["9"]}}}
    chosen = [p for p in detect(SAMPLER_API, OBJECT_INFO, app_mode) if not p.get("advanced")]
    assert [(p["node_id"], p["field"]) for p in chosen] == [("6", "text"), ("3", "seed"), ("3", "steps")]
    assert (chosen[0]["type"], chosen[0]["description"]) == ("text", "What to draw")
    assert (chosen[1]["id"], chosen[1]["type"], chosen[1]["default"]) == ("seed", "seed", -1)


def test_import_a_png_detect_the_form_and_run_it(client: FlaskClient, runtime: Runtime) -> None:
    answer = upload(client, png_with(ui=sampler_ui(), prompt=SAMPLER_API), "castle.png", name="Castle")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["id"] == "castle"
    form = client.get("/api/workflows/castle").get_json()
    ids = [p["id"] for p in form["manifest"]["inputs"] if not p.get("advanced")]
    assert ids[:3] == ["positive_prompt", "negative_prompt", "checkpoint"]
    assert form["choices"]["checkpoint"] == ["random_sd15.safetensors"]

    [job] = run(client, "castle", {"positive_prompt": "a castle at night", "steps": 2})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    assert done["prompt"]["6"]["inputs"]["text"] == "a castle at night"
    assert done["prompt"]["9"]["inputs"]["filename_prefix"] == f"studio/{job['id']}/image"


def test_api_json_import_and_re_import_keep_a_persons_edits(client: FlaskClient, runtime: Runtime) -> None:
    first = upload(client, json.dumps(SAMPLER_API).encode(), "castle.json", name="Castle", id="castle")
    assert first.status_code == 201
    inputs = client.get("/api/workflows/castle").get_json()["manifest"]["inputs"]
    edited = [{"id": "positive_prompt", "name": "Describe the picture"}, {"id": "denoise", "hidden": True},
              {"id": "steps", "default": 12, "max": 40}, {"id": "seed"}]
    saved = client.put("/api/workflows/castle/mapping", json={"inputs": edited})
    assert saved.status_code == 200, saved.get_json()
    order = [p["id"] for p in saved.get_json()["manifest"]["inputs"]]
    assert order[:4] == ["positive_prompt", "denoise", "steps", "seed"]
    assert len(order) == len(inputs)

    changed = copy.deepcopy(SAMPLER_API)
    changed["3"]["inputs"]["cfg"] = 4.0
    changed["10"] = {"class_type": "ImageInvert", "inputs": {"image": ["8", 0]}, "_meta": {"title": "Invert"}}
    changed["11"] = {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": 2, "sigma": 1.0},
                     "_meta": {"title": "Soften"}}
    changed["9"]["inputs"]["images"] = ["11", 0]
    conflict = upload(client, json.dumps(changed).encode(), "castle.json", id="castle")
    assert conflict.status_code == 409
    again = upload(client, json.dumps(changed).encode(), "castle.json", id="castle", replace="1")
    assert again.status_code == 201
    manifest = client.get("/api/workflows/castle").get_json()["manifest"]
    by_id = {p["id"]: p for p in manifest["inputs"]}
    assert by_id["positive_prompt"]["name"] == "Describe the picture"
    assert by_id["denoise"]["hidden"] is True
    assert (by_id["steps"]["default"], by_id["steps"]["max"]) == (12, 40)
    assert by_id["cfg"]["default"] == 6.5  # the person's default (from the first import) stays
    assert [p["id"] for p in manifest["inputs"]][:4] == ["positive_prompt", "denoise", "steps", "seed"]
    assert "soften_blur_radius" in by_id  # the new node's literals arrive, last
    assert manifest["version"] == 2


@pytest.mark.parametrize(
    ("data", "filename", "status", "text"),
    [
        (b"\x00\x01garbage", "x.bin", 400, "PNG/WebP"),
        (png_with(), "plain.png", 400, "no ComfyUI workflow"),
        (b'{"hello": "world"}', "x.json", 400, "neither"),
        (json.dumps({"1": {"class_type": "NoSuchNode", "inputs": {}}, "2": {"class_type": "SaveImage",
                     "inputs": {"images": ["1", 0]}}}).encode(), "x.json", 201, ""),
    ],
)
def test_bad_imports_say_what_is_wrong(client: FlaskClient, data: bytes, filename: str, status: int,
                                       text: str) -> None:
    answer = upload(client, data, filename)
    assert answer.status_code == status, answer.get_json()
    if text:
        assert text in answer.get_json()["error"]["message"]


def test_unknown_nodes_in_a_ui_workflow_are_named(client: FlaskClient) -> None:
    ui = sampler_ui()
    ui["nodes"].append(node(20, "FancyUpscaler", [2], [("image", "IMAGE", None)]))
    answer = upload(client, json.dumps(ui).encode(), "x.json")
    assert answer.status_code == 422
    assert "FancyUpscaler" in answer.get_json()["error"]["message"]


def test_only_admins_import(app: Flask, client: FlaskClient) -> None:
    ivy = signed_in_user(app, client, "ivy")
    assert upload(ivy, json.dumps(SAMPLER_API).encode(), "x.json").status_code == 403

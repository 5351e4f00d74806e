"""Importing workflows: UI-format conversion, parameter detection, PNG metadata, stable ids
across re-imports, and the mapping editor."""

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, PngImagePlugin

from studio.runtime import Runtime
from studio.services import Services
from studio.workflows.detect import detect
from studio.workflows.uiformat import convert
from tests.conftest import signed_in_user
from tests.jobs_helpers import bomb_png, run, wait_status
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
    assert answer.status_code == 201  # imported, not ready: see tests/test_workflow_pending.py
    assert answer.get_json()["readiness"]["problems"] == ["node FancyUpscaler is not installed"]


def test_only_admins_import(app: Flask, client: FlaskClient) -> None:
    ivy = signed_in_user(app, client, "ivy")
    assert upload(ivy, json.dumps(SAMPLER_API).encode(), "x.json").status_code == 403


def _ui(**changes: Any) -> bytes:
    workflow = sampler_ui()
    workflow.update(changes)
    return json.dumps(workflow).encode()


def _ui_node(index: int, value: Any) -> bytes:
    workflow = sampler_ui()
    workflow["nodes"][index] = value
    return json.dumps(workflow).encode()


def _ui_field(index: int, **fields: Any) -> bytes:
    workflow = sampler_ui()
    workflow["nodes"][index].update(fields)
    return json.dumps(workflow).encode()


def _api(**nodes: Any) -> bytes:
    return json.dumps({**SAMPLER_API, **nodes}).encode()


def _self_nesting_subgraph() -> bytes:
    inner = [node(1, "sub", []), node(2, "sub", []), node(3, "sub", []), node(4, "SaveImage", ["x"])]
    workflow = sampler_ui()
    workflow["nodes"].append(node(30, "sub", []))
    workflow["definitions"] = {"subgraphs": [{"id": "sub", "nodes": inner, "links": []}]}
    return json.dumps(workflow).encode()


def _reroute_cycle() -> bytes:
    workflow = sampler_ui()
    workflow["nodes"] += [node(40, "Reroute", [], [("", "*", 41)], [("*", [40])]),
                          node(41, "Reroute", [], [("", "*", 40)], [("*", [41])])]
    workflow["links"] += [[40, 40, 0, 41, 0, "*"], [41, 41, 0, 40, 0, "*"], [42, 40, 0, 3, 4, "INT"]]
    workflow["nodes"][4]["inputs"][4]["link"] = 42
    return json.dumps(workflow).encode()


HOSTILE_IMPORTS = [
    ("nested 50,000 deep", ("{" + '"a":{' * 50_000 + "}" * 50_001).encode()),
    ("NaN in a prompt", b'{"1": {"class_type": "SaveImage", "inputs": {"x": NaN}}}'),
    ("a huge number", b'{"1": {"class_type": "SaveImage", "inputs": {"x": 1e999}}}'),
    ("a 400-digit integer", b'{"1": {"class_type": "SaveImage", "inputs": {"x": ' + b"9" * 400 + b"}}}"),
    ("a lone surrogate", b'{"1": {"class_type": "SaveImage", "inputs": {"x": "\\ud800"}}}'),
    ("class_type a list", _api(**{"9": {"class_type": ["SaveImage"], "inputs": {}}})),
    ("class_type a number", _api(**{"9": {"class_type": 7, "inputs": {}}})),
    ("class_type empty", _api(**{"9": {"class_type": "", "inputs": {}}})),
    ("inputs a list", _api(**{"9": {"class_type": "SaveImage", "inputs": [1]}})),
    ("a title that is a list", _api(**{"9": {"class_type": "SaveImage", "inputs": {}, "_meta": {"title": [1]}}})),
    ("too many nodes", json.dumps({str(i): {"class_type": "SaveImage", "inputs": {}} for i in range(6000)}).encode()),
    ("prompt key with junk", json.dumps({"prompt": {"1": {"class_type": {"a": 1}}}}).encode()),
    ("nodes an object", _ui(nodes={"1": {}})),
    ("a node that is a number", _ui_node(0, 5)),
    ("a node that is text", _ui_node(0, "node")),
    ("a node that is null", _ui_node(0, None)),
    ("a node without an id", _ui_node(0, {"type": "SaveImage"})),
    ("a node id that is a list", _ui_field(0, id=[1])),
    ("a node type that is a number", _ui_field(0, type=5)),
    ("a node without a type", _ui_node(0, {"id": 99})),
    ("widgets_values a number", _ui_field(4, widgets_values=5)),
    ("widgets_values text", _ui_field(4, widgets_values="seed")),
    ("node inputs an object", _ui_field(4, inputs={"model": 1})),
    ("node inputs of numbers", _ui_field(4, inputs=[5])),
    ("an input name that is a list", _ui_field(4, inputs=[{"name": ["model"], "link": 1}])),
    ("an input link that is a list", _ui_field(4, inputs=[{"name": "model", "link": [1]}])),
    ("outputs a number", _ui_field(0, outputs=5)),
    ("mode text", _ui_field(0, mode="muted")),
    ("links a number", _ui(links=5)),
    ("a link too short", _ui(links=[[1, 4]])),
    ("a link slot that is text", _ui(links=[[1, 4, "zero", 3, 0, "MODEL"]])),
    ("a link that is a number", _ui(links=[7])),
    ("a link object without ids", _ui(links=[{"id": 1}])),
    ("extra a number", _ui(extra=5)),
    ("definitions a list", _ui(definitions=[1])),
    ("subgraphs a number", _ui(definitions={"subgraphs": 5})),
    ("a subgraph without an id", _ui(definitions={"subgraphs": [{"nodes": []}]})),
    ("a subgraph's nodes junk", _ui(definitions={"subgraphs": [{"id": "s", "nodes": [1, 2]}]})),
    ("a subgraph holding itself", _self_nesting_subgraph()),
    ("a cycle of reroutes", _reroute_cycle()),
    ("a decompression bomb", bomb_png(30_000, 30_000, {"workflow": json.dumps(sampler_ui())})),
    ("a smaller bomb", bomb_png(10_000, 10_000, {"workflow": json.dumps(sampler_ui())})),
    ("a PNG whose workflow is junk", png_with(ui={"nodes": [1, 2, 3]})),
    ("a PNG whose prompt is a list", bomb_png(8, 8, {"prompt": "[1, 2]"})),
    ("a PNG whose workflow is NaN", bomb_png(8, 8, {"workflow": "NaN"})),
]


@pytest.mark.parametrize(("what", "data"), HOSTILE_IMPORTS, ids=[what for what, _ in HOSTILE_IMPORTS])
def test_hostile_imports_are_a_4xx_naming_the_problem(client: FlaskClient, services: Services, what: str,
                                                      data: bytes) -> None:
    answer = upload(client, data, "x.png" if data[:4] == b"\x89PNG" else "x.json")
    assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.get_data()[:300])
    error = answer.get_json()["error"]
    assert error["code"]
    assert error["message"]
    assert not any(services.data_dir.workflows.iterdir()) if services.data_dir.workflows.is_dir() else True


@pytest.mark.parametrize(("form", "field"), [({"name": "n" * 300}, "name"), ({"name": "a\x00b"}, "name"),
                                             ({"id": "../x"}, "id"), ({"id": "a" * 200}, "id")])
def test_bad_names_and_ids_are_refused(client: FlaskClient, form: dict[str, str], field: str) -> None:
    answer = upload(client, json.dumps(SAMPLER_API).encode(), "x.json", **form)
    assert answer.status_code == 400
    assert field in answer.get_json()["error"]["details"]["fields"]


def test_replacing_never_writes_through_a_link_and_a_folder_without_a_manifest_is_replaced(
    client: FlaskClient, runtime: Runtime, services: Services, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "workflow.json").write_text("outside")
    (outside / "manifest.yaml").write_text("outside")
    workflows = services.data_dir.workflows
    workflows.mkdir(parents=True, exist_ok=True)
    data = json.dumps(SAMPLER_API).encode()

    (workflows / "linked").symlink_to(outside)  # the whole folder a link
    assert upload(client, data, "x.json", id="linked", replace="1").status_code == 409
    assert upload(client, data, "x.json", id="linked").status_code == 409

    (workflows / "files").mkdir()  # the folder real, its files links
    (workflows / "files" / "workflow.json").symlink_to(outside / "workflow.json")
    (workflows / "files" / "manifest.yaml").symlink_to(outside / "manifest.yaml")
    replaced = upload(client, data, "x.json", id="files", replace="1")
    assert replaced.status_code == 201, replaced.get_json()
    assert not (workflows / "files" / "workflow.json").is_symlink()

    (workflows / "tmp").mkdir()  # the temporary name planted as a link
    (workflows / "tmp" / ".workflow.json.tmp").symlink_to(outside / "workflow.json")
    assert upload(client, data, "x.json", id="tmp", replace="1").status_code == 201
    assert not (workflows / "tmp" / ".workflow.json.tmp").exists()

    (workflows / "empty").mkdir()  # no manifest at all: replaced as a new workflow
    (workflows / "empty" / "notes.txt").write_text("left by hand")
    fresh = upload(client, data, "x.json", id="empty", replace="1")
    assert fresh.status_code == 201, fresh.get_json()
    assert client.get("/api/workflows/empty").get_json()["manifest"]["version"] == 1

    assert sorted(p.name for p in outside.iterdir()) == ["manifest.yaml", "workflow.json"]
    assert all(p.read_text() == "outside" for p in outside.iterdir())
    [job] = run(client, "files", {"positive_prompt": "still runs", "steps": 2})
    assert wait_status(client, job["id"])["status"] == "completed"

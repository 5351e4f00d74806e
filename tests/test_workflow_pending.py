"""Workflows whose node packs ComfyUI does not have yet: imported all the same, shown as not ready
with what is missing, refused to run without reaching ComfyUI, and converted for real (widget
values and all) once ComfyUI lists the nodes."""

import copy
import io
import json
from typing import Any

from flask.testing import FlaskClient
from PIL import Image, PngImagePlugin

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.jobs_helpers import wait_status
from tests.servers.comfy_nodes import NodeContext
from tests.servers.comfy_nodes import node as comfy_node
from tests.servers.comfyui import ComfyUITestServer
from tests.ui_workflows import SAMPLER_API, node, sampler_ui

FANCY_INFO = {
    "input": {"required": {"image": ["IMAGE"], "scale": ["INT", {"default": 1, "min": 1, "max": 8}],
                           "method": [["nearest", "lanczos"]]}},
    "input_order": {"required": ["image", "scale", "method"]},
    "output": ["IMAGE"], "output_is_list": [False], "output_name": ["IMAGE"], "name": "FancyUpscaler",
    "display_name": "Fancy Upscaler", "description": "", "python_module": "custom_nodes.fancy-nodes",
    "category": "image/upscaling", "output_node": False,
}
FANCY_SAVE_INFO = {
    "input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "fancy"}]}},
    "input_order": {"required": ["images", "filename_prefix"]},
    "output": [], "output_is_list": [], "output_name": [], "name": "FancySave", "display_name": "Fancy Save",
    "description": "", "python_module": "custom_nodes.fancy-nodes", "category": "image", "output_node": True,
}


@comfy_node("FancyUpscaler")
def fancy_upscaler(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    """What the pack does once installed in the test ComfyUI: scales each image by ``scale``."""
    return ([img.resize((img.width * int(i["scale"]), img.height * int(i["scale"]))) for img in i["image"]],), None


def fancy_ui() -> dict[str, Any]:
    """The sampler graph with a FancyUpscaler (from someone/fancy-nodes) between decode and save."""
    ui = sampler_ui()
    fancy = node(20, "FancyUpscaler", [2, "lanczos"], [("image", "IMAGE", 14)], [("IMAGE", [11])], title="Upscale")
    fancy["properties"].update({"aux_id": "someone/fancy-nodes", "ver": "1.2.0"})
    ui["nodes"].append(fancy)
    decode = next(n for n in ui["nodes"] if n["id"] == 8)
    decode["outputs"][0]["links"].append(14)
    ui["links"] = [link for link in ui["links"] if link[0] != 11] + [[11, 20, 0, 9, 0, "IMAGE"],
                                                                     [14, 8, 0, 20, 0, "IMAGE"]]
    ui["extra"]["title"] = "Fancy castle"
    return ui


def upload(client: FlaskClient, data: bytes, filename: str = "fancy.json", **form: str):  # type: ignore[no-untyped-def]
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), filename), **form},
                       content_type="multipart/form-data")


def listed(client: FlaskClient, workflow_id: str) -> dict[str, Any]:
    return next(item for item in client.get("/api/workflows").get_json()["items"] if item["id"] == workflow_id)


def test_a_ui_workflow_with_a_missing_node_pack_imports_as_not_ready_and_says_what_is_missing(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    answer = upload(client, json.dumps(fancy_ui()).encode())
    assert answer.status_code == 201, answer.get_json()
    created = answer.get_json()
    assert (created["id"], created["name"]) == ("fancy-castle", "Fancy castle")
    assert created["readiness"]["ready"] is False
    assert created["readiness"]["missing_nodes"] == ["FancyUpscaler"]
    assert created["readiness"]["problems"] == ["node FancyUpscaler is not installed"]

    item = listed(client, "fancy-castle")
    assert item["readiness"]["ready"] is False
    missing = client.get("/api/workflows/fancy-castle/missing?civitai=false").get_json()
    assert missing["nodes"] == [{"class_type": "FancyUpscaler", "aux_id": "someone/fancy-nodes", "ver": "1.2.0",
                                 "repository": "https://github.com/someone/fancy-nodes"}]
    # The rest of the form is there: the prompts, the seed and the steps are detected as ever.
    form = client.get("/api/workflows/fancy-castle").get_json()["manifest"]["inputs"]
    assert {"positive_prompt", "seed"} <= {spec["id"] for spec in form}

    refused = client.post("/api/workflows/fancy-castle/run", json={"params": {}})
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "workflow_not_ready"
    assert "FancyUpscaler" in error["message"]
    assert comfy_server.prompts_received == []  # nothing reached ComfyUI
    assert client.get("/api/jobs").get_json()["items"] == []


def test_once_comfyui_has_the_pack_the_workflow_is_converted_with_its_values_and_runs(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    created = upload(client, json.dumps(fancy_ui()).encode()).get_json()
    edited = client.put(f"/api/workflows/{created['id']}/mapping",
                        json={"inputs": [{"id": "seed", "name": "Luck"}]})
    assert edited.status_code == 200, edited.get_json()
    folder = services.data_dir.workflows / created["id"]
    assert (folder / "workflow.ui.json").is_file()  # the UI graph waits beside the manifest

    comfy_server.install_node("FancyUpscaler", FANCY_INFO)
    comfy_server.restart()  # a pack is installed by restarting ComfyUI: Studio reconnects and asks again

    def ready() -> bool:
        return listed(client, created["id"])["readiness"]["ready"] is True

    assert wait_until(ready, timeout=15)
    workflow = client.get(f"/api/workflows/{created['id']}").get_json()
    assert workflow["name"] == "Fancy castle"
    assert workflow["manifest"]["version"] == 2
    assert workflow["manifest"].get("unconverted_nodes") is None
    seed = next(spec for spec in workflow["manifest"]["inputs"] if spec["id"] == "seed")
    assert seed["name"] == "Luck"  # the person's edit survived the conversion
    assert not (folder / "workflow.ui.json").exists()

    answer = client.post(f"/api/workflows/{created['id']}/run", json={"params": {}})
    assert answer.status_code == 202, answer.get_json()
    done = wait_status(client, answer.get_json()["items"][0]["id"])
    assert done["status"] == "completed", done
    sent = comfy_server.prompts_received[-1]["prompt"]
    assert sent["20"] == {"class_type": "FancyUpscaler", "inputs": {"scale": 2, "method": "lanczos",
                                                                     "image": ["8", 0]},
                          "_meta": {"title": "Upscale"}}
    assert sent["9"]["inputs"]["images"] == ["20", 0]


def test_a_missing_saving_node_is_the_guessed_output_until_its_pack_is_there(
    client: FlaskClient, comfy_server: ComfyUITestServer, services: Services
) -> None:
    ui = sampler_ui()
    save = next(n for n in ui["nodes"] if n["id"] == 9)
    save["type"] = "FancySave"
    save["widgets_values"] = ["castles"]
    answer = upload(client, json.dumps(ui).encode(), "castle.json")
    assert answer.status_code == 201, answer.get_json()
    manifest = client.get("/api/workflows/castle").get_json()["manifest"]
    assert manifest["outputs"] == [{"id": "file_9", "name": "Result", "type": "file", "node_id": "9"}]
    assert manifest["unconverted_nodes"] == ["FancySave"]

    comfy_server.install_node("FancySave", FANCY_SAVE_INFO)
    services.comfy.invalidate_object_info()  # as a reconnect does
    manifest = client.get("/api/workflows/castle").get_json()["manifest"]
    assert manifest["outputs"] == [{"id": "image_9", "name": "Result", "type": "image", "node_id": "9"}]
    assert manifest.get("unconverted_nodes") is None


def fancy_api() -> dict[str, Any]:
    """The sampler prompt in API format with a FancyUpscaler between decode and save."""
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["20"] = {"class_type": "FancyUpscaler", "inputs": {"scale": 3, "method": "nearest", "image": ["8", 0]},
                    "_meta": {"title": "Upscale"}}
    prompt["9"]["inputs"]["images"] = ["20", 0]
    return prompt


def test_an_api_prompt_with_a_missing_pack_imports_not_ready_and_runs_as_it_is_once_installed(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    answer = upload(client, json.dumps(fancy_api()).encode(), "castle.json")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["readiness"]["missing_nodes"] == ["FancyUpscaler"]
    folder = services.data_dir.workflows / "castle"
    assert not (folder / "workflow.ui.json").exists()  # nothing to convert later: the values are all there
    assert client.get("/api/workflows/castle").get_json()["manifest"].get("unconverted_nodes") is None
    assert client.post("/api/workflows/castle/run", json={"params": {}}).status_code == 422

    comfy_server.install_node("FancyUpscaler", FANCY_INFO)
    services.comfy.invalidate_object_info()  # as a reconnect does
    answer = client.post("/api/workflows/castle/run", json={"params": {}})
    assert answer.status_code == 202, answer.get_json()
    assert wait_status(client, answer.get_json()["items"][0]["id"])["status"] == "completed"
    assert comfy_server.prompts_received[-1]["prompt"]["20"]["inputs"] == {
        "scale": 3, "method": "nearest", "image": ["8", 0]}


def test_an_image_with_the_prompt_comfyui_ran_needs_no_conversion_later(
    client: FlaskClient, services: Services
) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(fancy_api()))
    info.add_text("workflow", json.dumps(fancy_ui()))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    answer = upload(client, buffer.getvalue(), "ComfyUI_00012_.png")
    assert answer.status_code == 201, answer.get_json()
    created = answer.get_json()
    assert created["name"] == "Fancy castle"
    assert created["readiness"]["missing_nodes"] == ["FancyUpscaler"]
    manifest = client.get(f"/api/workflows/{created['id']}").get_json()["manifest"]
    assert manifest.get("unconverted_nodes") is None
    saved = json.loads((services.data_dir.workflows / created["id"] / "workflow.json").read_text())
    assert saved["20"]["inputs"]["scale"] == 3  # the values ComfyUI ran with
    assert not (services.data_dir.workflows / created["id"] / "workflow.ui.json").exists()

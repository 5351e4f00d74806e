"""The paired LoRA picker: WAN 2.2 LoRAs chosen as high/low pairs from loras.json, filtered by the
workflow's base model, validated against ComfyUI's LoRA list and put into the two Power Lora
Loader nodes; the job records the files it ran, and a retry runs the same ones."""

import json

import pytest
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.jobs_helpers import run, wait_status
from tests.servers.comfyui import ComfyUITestServer

POWER_LORA_INFO = {
    "input": {"required": {}, "optional": {"model": ["MODEL"], "clip": ["CLIP"]}, "hidden": {}},
    "input_order": {"required": [], "optional": ["model", "clip"]},
    "output": ["MODEL", "CLIP"], "output_is_list": [False, False], "output_name": ["MODEL", "CLIP"],
    "name": "Power Lora Loader (rgthree)", "display_name": "Power Lora Loader (rgthree)", "description": "",
    "python_module": "custom_nodes.rgthree-comfy", "category": "rgthree", "output_node": False,
}

LORAS = {"version": 1, "categories": [{"id": "loras", "name": "LoRAs", "models": [
    {"name": "Orbit (High)", "file": "orbit_high.safetensors", "dest": "loras", "source": "url", "size_gb": 0.3,
     "base_model": "WAN 2.2", "pair_id": "orbit", "pair_role": "high", "url": "http://127.0.0.1:9/a"},
    {"name": "Orbit (Low)", "file": "orbit_low.safetensors", "dest": "loras", "source": "url", "size_gb": 0.3,
     "base_model": "WAN 2.2", "pair_id": "orbit", "pair_role": "low", "url": "http://127.0.0.1:9/b"},
    {"name": "Film grain", "file": "grain_wan.safetensors", "dest": "loras", "source": "url", "size_gb": 0.1,
     "base_model": "WAN 2.2", "pair_id": "grain", "pair_role": "both", "url": "http://127.0.0.1:9/c"},
    {"name": "Squish (High)", "file": "squish_high.safetensors", "dest": "loras", "source": "url", "size_gb": 0.3,
     "base_model": "WAN 2.2", "pair_id": "squish", "pair_role": "high", "url": "http://127.0.0.1:9/d"},
    {"name": "Squish (Low)", "file": "squish_low.safetensors", "dest": "loras", "source": "url", "size_gb": 0.3,
     "base_model": "WAN 2.2", "pair_id": "squish", "pair_role": "low", "url": "http://127.0.0.1:9/e"},
    {"name": "Detail", "file": "detail_xl.safetensors", "dest": "loras", "source": "url", "size_gb": 0.1,
     "base_model": "SDXL", "url": "http://127.0.0.1:9/f"},
]}]}

# Two samplers on two Power Lora Loaders, like WAN 2.2's high-noise and low-noise passes.
WORKFLOW = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
    "2": {"class_type": "Power Lora Loader (rgthree)", "_meta": {"title": "LoRA High"},
          "inputs": {"model": ["1", 0], "clip": ["1", 1],
                     "PowerLoraLoaderHeaderWidget": {"type": "PowerLoraLoaderHeaderWidget"},
                     "lora_1": {"on": True, "lora": "lightx2v_high.safetensors", "strength": 1.0},
                     "➕ Add Lora": ""}},
    "3": {"class_type": "Power Lora Loader (rgthree)", "_meta": {"title": "LoRA Low"},
          "inputs": {"model": ["1", 0], "clip": ["1", 1]}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["4", 0], "negative": ["4", 0],
                                               "latent_image": ["5", 0], "seed": 1, "steps": 2, "cfg": 1.0,
                                               "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
    "7": {"class_type": "KSampler", "inputs": {"model": ["3", 0], "positive": ["4", 0], "negative": ["4", 0],
                                               "latent_image": ["6", 0], "seed": 1, "steps": 2, "cfg": 1.0,
                                               "sampler_name": "euler", "scheduler": "simple", "denoise": 0.5}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "wan"}},
}
MANIFEST = """id: wan-pairs
name: WAN pairs
base_model: WAN
inputs:
  - {id: prompt, name: Prompt, type: text, node_id: "4", field: text, default: a cat}
  - {id: loras, name: LoRAs, type: lora_picker, default: [], max_pairs: 3}
outputs: [{id: image, node_id: "9"}]
"""


@pytest.fixture
def wan(services: Services, comfy_server: ComfyUITestServer) -> None:
    comfy_server.install_node("Power Lora Loader (rgthree)", POWER_LORA_INFO)
    comfy_server.models["loras"] = ["lightx2v_high.safetensors", "orbit_high.safetensors", "orbit_low.safetensors",
                                    "grain_wan.safetensors", "squish_high.safetensors", "detail_xl.safetensors"]
    services.comfy.invalidate_object_info()
    (services.data_dir.catalogs / "loras.json").write_text(json.dumps(LORAS))
    folder = services.data_dir.workflows / "wan-pairs"
    folder.mkdir(parents=True)
    (folder / "workflow.json").write_text(json.dumps(WORKFLOW))
    (folder / "manifest.yaml").write_text(MANIFEST)
    services.library.refresh(force=True)


def test_pairs_go_into_the_high_and_low_loaders_after_the_ones_already_there(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, wan: None
) -> None:
    [job] = run(client, "wan-pairs", {"loras": [{"pair_id": "orbit", "strength": 0.8},
                                                {"pair_id": "grain", "strength": 0.5}]})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done.get("error")
    sent = comfy_server.prompts_received[-1]["prompt"]
    high, low = sent["2"]["inputs"], sent["3"]["inputs"]
    assert high["lora_1"]["lora"] == "lightx2v_high.safetensors"  # the workflow's own stays first
    assert high["lora_2"] == {"on": True, "lora": "orbit_high.safetensors", "strength": 0.8, "strengthTwo": None}
    assert high["lora_3"]["lora"] == "grain_wan.safetensors"
    assert low["lora_1"] == {"on": True, "lora": "orbit_low.safetensors", "strength": 0.8, "strengthTwo": None}
    assert low["lora_2"] == {"on": True, "lora": "grain_wan.safetensors", "strength": 0.5, "strengthTwo": None}
    assert done["params"]["loras"] == [
        {"pair_id": "orbit", "name": "Orbit", "high": "orbit_high.safetensors", "low": "orbit_low.safetensors",
         "strength": 0.8},
        {"pair_id": "grain", "name": "Film grain", "high": "grain_wan.safetensors", "low": "grain_wan.safetensors",
         "strength": 0.5}]

    # The catalog changes afterwards; a retry still runs exactly the files the job recorded.
    (client.application.extensions["studio"].data_dir.catalogs / "loras.json").write_text(
        json.dumps({"version": 1, "categories": []}))
    retried = client.post(f"/api/jobs/{job['id']}/retry").get_json()
    assert wait_status(client, retried["id"])["status"] == "completed"
    assert comfy_server.prompts_received[-1]["prompt"]["3"]["inputs"]["lora_1"]["lora"] == "orbit_low.safetensors"


def test_the_picker_refuses_what_cannot_run_and_says_why(client: FlaskClient, wan: None) -> None:
    def problem(value: object) -> str:
        answer = client.post("/api/workflows/wan-pairs/run", json={"params": {"loras": value}})
        assert answer.status_code == 400
        return str(answer.get_json()["error"]["details"]["fields"]["loras"])

    assert problem([{"pair_id": "detail_xl.safetensors"}]) == \
        "LoRAs 'detail_xl.safetensors' is not a LoRA pair for WAN"  # an SDXL LoRA on a WAN workflow
    assert problem([{"pair_id": "squish"}]) == \
        "LoRAs 'squish_low.safetensors' (Squish) is not installed in ComfyUI"
    assert problem([{"pair_id": "orbit", "strength": 99}]) == "LoRAs strengths must be numbers from -10 to 10"
    assert problem([{"pair_id": "orbit"}] * 4) == "LoRAs takes at most 3 LoRA pairs"
    assert problem("orbit") == "LoRAs must be a list of {pair_id, strength}"


def test_pairs_offered_to_the_form_follow_the_base_model(client: FlaskClient, wan: None) -> None:
    form = client.get("/api/workflows/wan-pairs").get_json()
    assert form["manifest"]["base_model"] == "WAN"
    offered = client.get("/api/loras/pairs?base_model=WAN").get_json()["items"]
    assert [(p["pair_id"], bool(p["both"])) for p in offered] == [("grain", True), ("orbit", False),
                                                                  ("squish", False)]

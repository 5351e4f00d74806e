"""The original Studio's dynamic (block) workflows: assembled per run, then run like any other."""

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from studio.workflows.blocks import condition_holds
from tests.jobs_helpers import run, wait_status
from tests.servers.comfyui import ComfyUITestServer

MANIFEST = """
id: t2i-dynamic
name: Text to image (blocks)
type: dynamic
blocks_dir: blocks
pipeline:
  - {block: setup, file: setup.json, lora_injection: true, vae_override: true}
  - {block: generate, file: generate.json, repeat: batch_count}
  - {block: hires, file: hires.json, condition: hires_enabled}
  - {block: style, switch: style, cases: {invert: invert.json}}
  - {block: output, file: output.json}
inputs:
  - {id: positive_prompt, name: Prompt, type: text, required: true}
  - {id: checkpoint, name: Checkpoint, type: checkpoint_picker, default: random_sd15.safetensors}
  - {id: loras, name: LoRAs, type: lora_picker_dynamic, default: []}
  - {id: vae, name: VAE, type: vae_picker}
  - {id: seed, name: Seed, type: seed, default: -1}
  - {id: steps, name: Steps, type: int, default: 2, min: 1, max: 50}
  - {id: batch_count, name: Batches, type: int, default: 1, min: 1, max: 4}
  - {id: hires_enabled, name: Hires, type: boolean, default: false}
  - {id: style, name: Style, type: select, default: plain, options: [{label: Plain, value: plain},
                                                                     {label: Inverted, value: invert}]}
outputs: [{id: image, type: image}]
"""

BLOCKS = {
    "setup.json": {"nodes": {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{checkpoint}}"}},
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{positive_prompt}}", "clip": ["ckpt", 1]}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}}},
        "exports": {"model": {"node": "ckpt", "output": 0}, "clip": {"node": "ckpt", "output": 1},
                    "vae": {"node": "ckpt", "output": 2}, "positive": {"node": "positive"},
                    "negative": {"node": "negative"}}},
    "generate.json": {"nodes": {
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "sampler": {"class_type": "KSampler", "inputs": {
            "seed": "{{seed}}", "steps": "{{steps}}", "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["model", 0], "positive": ["positive", 0], "negative": ["negative", 0],
            "latent_image": ["latent", 0]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["vae", 0]}}},
        "imports": ["model", "positive", "negative", "vae"], "exports": {"image": {"node": "decode"}}},
    "hires.json": {"nodes": {"scale": {"class_type": "ImageScale", "inputs": {
        "image": ["image", 0], "upscale_method": "bilinear", "width": 128, "height": 128, "crop": "disabled"}}},
        "imports": ["image"], "exports": {"image": {"node": "scale"}}},
    "invert.json": {"nodes": {"invert": {"class_type": "ImageInvert", "inputs": {"image": ["image", 0]}}},
                    "imports": ["image"], "exports": {"image": {"node": "invert"}}},
    "output.json": {"nodes": {"save": {"class_type": "SaveImage", "inputs": {
        "images": ["image", 0], "filename_prefix": "{{output_prefix}}"}}}, "imports": ["image"]},
}


def install(folder: Path, manifest: str, blocks: dict[str, dict]) -> Path:
    """Writes a dynamic workflow into ``folder`` (a workflow folder in STUDIO_DIR/workflows)."""
    (folder / "blocks").mkdir(parents=True)
    (folder / "manifest.yaml").write_text(manifest)
    for name, block in blocks.items():
        (folder / "blocks" / name).write_text(json.dumps(block))
    return folder


@pytest.fixture
def dynamic(services: Services) -> Path:
    return install(services.data_dir.workflows / "t2i-dynamic", MANIFEST, BLOCKS)


def test_conditions_read_like_the_original() -> None:
    assert condition_holds("hires_enabled", {"hires_enabled": True})
    assert not condition_holds("hires_enabled", {"hires_enabled": "false"})
    assert condition_holds("style == invert", {"style": "invert"})
    assert condition_holds("style != invert", {"style": "plain"})


def test_a_block_workflow_assembles_and_runs(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, dynamic: Path
) -> None:
    comfy_server.models["loras"] = ["detail.safetensors"]
    comfy_server.models["vae"] = ["sharp-vae.safetensors"]
    client.application.extensions["studio"].comfy.invalidate_object_info()
    [job] = run(client, "t2i-dynamic", {
        "positive_prompt": "a harbour", "seed": 100, "batch_count": 2, "hires_enabled": True, "style": "invert",
        "loras": [{"file": "detail.safetensors", "strength": 0.7}], "vae": "sharp-vae.safetensors"})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done["error"]
    prompt = done["prompt"]
    by_class: dict[str, list[str]] = {}
    for node_id, node in prompt.items():
        by_class.setdefault(node["class_type"], []).append(node_id)
    assert min(int(i) for i in prompt) == 101
    [lora] = by_class["LoraLoader"]
    assert prompt[lora]["inputs"]["strength_model"] == 0.7
    for encoder in by_class["CLIPTextEncode"]:
        assert prompt[encoder]["inputs"]["clip"] == [lora, 1]  # the prompts see the LoRA
    assert sorted(prompt[s]["inputs"]["seed"] for s in by_class["KSampler"]) == [100, 101]
    assert all(prompt[s]["inputs"]["model"] == [lora, 0] for s in by_class["KSampler"])
    [vae] = by_class["VAELoader"]
    assert all(prompt[d]["inputs"]["vae"] == [vae, 0] for d in by_class["VAEDecode"])
    assert len(by_class["ImageScale"]) == 1
    assert len(by_class["ImageInvert"]) == 1
    assert prompt[by_class["SaveImage"][0]]["inputs"]["filename_prefix"] == f"studio/{job['id']}/image"
    assert (done["outputs"][0]["width"], done["outputs"][0]["height"]) == (128, 128)


def test_skipped_stages_stay_out(client: FlaskClient, runtime: Runtime, dynamic: Path) -> None:
    [job] = run(client, "t2i-dynamic", {"positive_prompt": "a harbour"})
    done = wait_status(client, job["id"])
    classes = {node["class_type"] for node in done["prompt"].values()}
    assert "ImageScale" not in classes
    assert "ImageInvert" not in classes
    assert "LoraLoader" not in classes
    assert done["status"] == "completed"


def test_a_broken_pipeline_is_reported_not_loaded(client: FlaskClient, dynamic: Path) -> None:
    (dynamic / "blocks" / "generate.json").write_text(json.dumps({"nodes": {"x": {
        "class_type": "VAEDecode", "inputs": {"samples": ["nowhere", 0], "vae": ["vae", 0]}}}}))
    listing = client.get("/api/workflows").get_json()
    assert "t2i-dynamic" not in [w["id"] for w in listing["items"]]
    problem = next(p for p in listing["problems"] if p["folder"].endswith("t2i-dynamic"))
    assert "'nowhere'" in problem["message"]


def test_lora_lists_are_checked_against_what_is_installed(
    client: FlaskClient, comfy_server: ComfyUITestServer, dynamic: Path
) -> None:
    comfy_server.models["loras"] = ["detail.safetensors"]
    client.application.extensions["studio"].comfy.invalidate_object_info()
    assert client.get("/api/workflows/t2i-dynamic").get_json()["choices"]["loras"] == ["detail.safetensors"]
    for loras, problem in (([{"file": "missing.safetensors", "strength": 1}], "not installed"),
                           ([{"file": "detail.safetensors", "strength": 99}], "from -10 to 10"),
                           ("detail.safetensors", "list")):
        answer = client.post("/api/workflows/t2i-dynamic/run",
                             json={"params": {"positive_prompt": "x", "loras": loras}})
        assert answer.status_code == 400
        assert problem in answer.get_json()["error"]["details"]["fields"]["loras"]


SCENES_MANIFEST = """
id: scenes
name: Scenes
type: dynamic
blocks_dir: blocks
pipeline:
  - {block: setup, file: setup.json}
  - {block: scene, file: scene.json, repeat: scenes}
  - {block: output, file: output.json}
inputs:
  - {id: positive_prompt, name: Style, type: text, default: "film still"}
  - {id: checkpoint, name: Checkpoint, type: checkpoint_picker, default: random_sd15.safetensors}
  - {id: scenes, name: Scenes, type: scene_list, required: true, default: []}
outputs: [{id: image, type: image}]
"""

SCENE_BLOCK = {"nodes": {
    "text": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{positive_prompt}}, {{scene_prompt}}",
                                                         "clip": ["clip", 0]}},
    "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "sampler": {"class_type": "KSampler", "inputs": {
        "seed": "{{seed}}", "steps": 1, "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
        "model": ["model", 0], "positive": ["text", 0], "negative": ["negative", 0], "latent_image": ["latent", 0]}},
    "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["vae", 0]}}},
    "imports": ["model", "clip", "negative", "vae"], "exports": {"image": {"node": "decode"}}}
SCENES_BLOCKS = {"setup.json": BLOCKS["setup.json"], "scene.json": SCENE_BLOCK, "output.json": BLOCKS["output.json"]}


def test_a_scene_list_runs_one_pass_per_scene_and_records_each_seed(
    client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    install(services.data_dir.workflows / "scenes", SCENES_MANIFEST, SCENES_BLOCKS)

    refused = client.post("/api/workflows/scenes/run", json={"params": {"scenes": [{"prompt": "", "duration": 5}]}})
    assert refused.get_json()["error"]["details"]["fields"]["scenes"] == "Scenes scene 1 needs a prompt"
    [job] = run(client, "scenes", {"scenes": [{"prompt": "a door opens", "duration": 3, "seed": 7},
                                              {"prompt": "light floods in", "duration": 2.5, "seed": -1}]})
    params = job["params"]
    assert params["scene_1"] == 7
    assert 0 <= params["scene_2"] < 2**53
    assert [s["frames"] for s in params["scenes"]] == [49, 41]
    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    texts = sorted(n["inputs"]["text"] for n in done["prompt"].values() if n["class_type"] == "CLIPTextEncode"
                   and "film still, " in n["inputs"]["text"])
    assert texts == ["film still, a door opens", "film still, light floods in"]
    seeds = sorted(n["inputs"]["seed"] for n in done["prompt"].values() if n["class_type"] == "KSampler")
    assert seeds == sorted([7, params["scene_2"]])

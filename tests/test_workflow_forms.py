"""Detected forms: what a person sees without opening Advanced, on hand-made graphs for each rule
(prompts by role, the Flux guider chain, loaders as pickers, size, SwarmUI markers, ids whatever the
title) and on ComfyUI's own official templates, with a floor that may only rise."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bench.forms import SAMPLING, measure
from studio.workflows.detect import detect
from studio.workflows.manifest import InputSpec
from studio.workflows.uiformat import convert
from tests.capture.comfy_templates import gz_json, load_templates
from tests.ui_workflows import SAMPLER_API

FIXTURE = Path(__file__).parent / "fixtures" / "comfyui-templates" / "0.33.0"
OBJECT_INFO: dict[str, Any] = gz_json(FIXTURE / "object_info.json.gz")
BUNDLED = Path(__file__).resolve().parent.parent / "workflows"
# Sampler templates (of 204) showing each, with Studio's converter; the first detector showed
# 102 prompts, 139 seeds, 106 steps, 39 sizes and 229 of 930 model inputs as pickers.
FLOOR = {"prompt": 182, "seed": 191, "steps": 180, "size": 84, "pickers": 909}


def n(class_type: str, title: str | None = None, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title or class_type}}


def shown(inputs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["node_id"], p["field"]): p for p in inputs if not p.get("advanced") and not p.get("hidden")}


def save(images: list[Any]) -> dict[str, Any]:
    return n("SaveImage", filename_prefix="x", images=images)


def flux() -> dict[str, Any]:
    """Flux as ComfyUI's templates build it: UNET + two text encoders + VAE, the prompt through
    FluxGuidance into a BasicGuider, noise, sampler and sigmas from their own nodes."""
    return {
        "1": n("UNETLoader", unet_name="flux1-dev.safetensors", weight_dtype="default"),
        "2": n("DualCLIPLoader", clip_name1="clip_l.safetensors", clip_name2="t5xxl_fp16.safetensors", type="flux",
               device="default"),
        "3": n("VAELoader", vae_name="ae.safetensors"),
        "4": n("CLIPTextEncode", "CLIP Text Encode (Positive Prompt)", text="a fox in the snow", clip=["2", 0]),
        "5": n("FluxGuidance", guidance=3.5, conditioning=["4", 0]),
        "6": n("BasicGuider", model=["1", 0], conditioning=["5", 0]),
        "7": n("RandomNoise", noise_seed=123),
        "8": n("KSamplerSelect", sampler_name="euler"),
        "9": n("BasicScheduler", scheduler="simple", steps=20, denoise=1.0, model=["1", 0]),
        "10": n("EmptySD3LatentImage", width=1024, height=768, batch_size=1),
        "11": n("SamplerCustomAdvanced", noise=["7", 0], guider=["6", 0], sampler=["8", 0], sigmas=["9", 0],
                latent_image=["10", 0]),
        "12": n("VAEDecode", samples=["11", 0], vae=["3", 0]),
        "13": save(["12", 0]),
    }


def test_a_prompt_named_prompt_on_another_encoder_is_the_prompt() -> None:
    prompt = {
        "1": n("CLIPLoader", clip_name="qwen_2.5_vl_7b.safetensors", type="qwen_image", device="default"),
        "2": n("UNETLoader", unet_name="qwen_image_edit.safetensors", weight_dtype="default"),
        "3": n("LoadImage", image="cat.png"),
        "4": n("TextEncodeQwenImageEditPlus", prompt="make the cat blue", clip=["1", 0], image1=["3", 0]),
        "5": n("TextEncodeQwenImageEditPlus", prompt="", clip=["1", 0]),
        "6": n("EmptySD3LatentImage", width=1024, height=1024, batch_size=1),
        "7": n("KSampler", seed=5, steps=8, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0,
               model=["2", 0], positive=["4", 0], negative=["5", 0], latent_image=["6", 0]),
        "8": save(["7", 0]),
    }
    inputs = detect(prompt, OBJECT_INFO)
    form = shown(inputs)
    assert form[("4", "prompt")]["type"] == "text"
    assert form[("4", "prompt")]["name"] == "Prompt"
    assert form[("5", "prompt")]["name"] == "Negative prompt"
    assert [p["field"] for p in inputs[:2]] == ["prompt", "prompt"]  # the prompts come first
    assert form[("3", "image")]["type"] == "image"
    assert ("7", "scheduler") not in form  # still reachable, under Advanced
    assert any((p["node_id"], p["field"]) == ("7", "scheduler") for p in inputs)


def test_an_encoder_with_its_own_negative_field_and_an_llm_prompt_writer() -> None:
    prompt = {
        "1": n("CLIPLoader", clip_name="te.safetensors", type="stable_diffusion", device="default"),
        "2": n("PrimitiveStringMultiline", "Idea", value="a lighthouse at dusk"),
        "3": n("StringConcatenate", string_a=["2", 0], string_b="cinematic", delimiter=", "),
        "4": n("CLIPTextEncode", text=["3", 0], clip=["1", 0]),
        "5": n("CLIPTextEncode", text="low quality", clip=["1", 0]),
        "6": n("KSampler", seed=1, steps=4, cfg=2.0, sampler_name="euler", scheduler="simple", denoise=1.0,
               model=["9", 0], positive=["4", 0], negative=["5", 0], latent_image=["8", 0]),
        "8": n("EmptyLatentImage", width=512, height=512, batch_size=1),
        "9": n("UNETLoader", unet_name="m.safetensors", weight_dtype="default"),
        "10": save(["6", 0]),
    }
    form = shown(detect(prompt, OBJECT_INFO))
    # the concatenation's linked half is followed to what a person types; its literal half is not a prompt
    assert form[("2", "value")]["name"] == "Idea"
    assert ("3", "string_b") not in form
    assert ("3", "delimiter") not in form
    assert form[("5", "text")]["name"] == "Negative prompt"


def test_the_flux_guider_chain_gives_prompt_seed_steps_sampler_and_size() -> None:
    inputs = detect(flux(), OBJECT_INFO)
    form = shown(inputs)
    assert form[("4", "text")]["name"] == "Prompt"
    assert form[("4", "text")]["id"] == "clip_text_encode_positive_prompt_text"  # the id the first detector gave
    assert (form[("7", "noise_seed")]["type"], form[("7", "noise_seed")]["default"]) == ("seed", -1)
    assert form[("9", "steps")]["name"] == "Steps"
    assert form[("8", "sampler_name")]["type"] == "select"
    assert (form[("10", "width")]["name"], form[("10", "height")]["name"]) == ("Width", "Height")
    assert ("9", "scheduler") not in form
    assert ("9", "denoise") not in form
    assert ("5", "guidance") not in form


def test_a_zeroed_negative_is_no_prompt() -> None:
    prompt = flux()
    prompt["6"] = n("CFGGuider", cfg=1.0, model=["1", 0], positive=["5", 0], negative=["14", 0])
    prompt["14"] = n("ConditioningZeroOut", conditioning=["4", 0])
    form = shown(detect(prompt, OBJECT_INFO))
    assert form[("4", "text")]["name"] == "Prompt"
    assert not [p for p in form.values() if p["name"] == "Negative prompt"]
    assert form[("6", "cfg")]["name"] == "CFG"


def test_every_loader_is_a_picker_of_its_folder() -> None:
    inputs = detect(flux(), OBJECT_INFO)
    form = shown(inputs)
    assert (form[("1", "unet_name")]["picker"], form[("1", "unet_name")]["name"]) == ("diffusion_models",
                                                                                    "Diffusion model")
    assert [form[("2", f)]["name"] for f in ("clip_name1", "clip_name2")] == ["Text encoder 1", "Text encoder 2"]
    assert form[("2", "clip_name1")]["picker"] == "text_encoders"
    assert form[("2", "clip_name1")]["default"] == "clip_l.safetensors"
    assert (form[("3", "vae_name")]["type"], form[("3", "vae_name")]["id"]) == ("vae_picker", "vae")
    # dropdowns that do not name a model file are not pickers, and not shown
    assert ("1", "weight_dtype") not in form
    assert ("2", "type") not in form
    assert not [p for p in inputs if p["field"] in ("weight_dtype", "type", "device") and "picker" in p]
    sd15 = shown(detect(SAMPLER_API, OBJECT_INFO))
    assert (sd15[("4", "ckpt_name")]["type"], sd15[("4", "ckpt_name")]["id"]) == ("checkpoint_picker", "checkpoint")


def test_size_from_a_node_that_makes_a_picture_and_not_from_a_resize() -> None:
    prompt = {
        "1": n("EmptyImage", width=640, height=480, batch_size=1, color=0),
        "2": n("ImageScale", upscale_method="bilinear", width=320, height=240, crop="disabled", image=["1", 0]),
        "3": save(["2", 0]),
    }
    form = shown(detect(prompt, OBJECT_INFO))
    assert (form[("1", "width")]["name"], form[("1", "height")]["name"]) == ("Width", "Height")
    assert ("2", "width") not in form  # resizing is an operation: advanced


@pytest.mark.parametrize("title", ["360 Rotation", "2nd pass", "旋转", "", "x" * 300, "9" * 40])
def test_ids_are_valid_whatever_the_title(title: str) -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["3"]["_meta"]["title"] = title
    prompt["10"] = n("ImageInvert", title, image=["8", 0])
    prompt["11"] = n("ImageBlur", title, blur_radius=2, sigma=1.0, image=["10", 0])
    inputs = detect(prompt, OBJECT_INFO)
    ids = [p["id"] for p in inputs]
    assert len(ids) == len(set(ids))
    for entry in inputs:
        InputSpec.model_validate(entry)  # the manifest's own rule
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", param_id) for param_id in ids)


def test_a_workflow_titled_with_a_digit_first_imports(client: FlaskClient) -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["3"]["_meta"]["title"] = "360 Rotation"
    prompt["10"] = n("ImageInvert", "360 Rotation", image=["8", 0])
    answer = client.post("/api/workflows", data={"file": (io.BytesIO(json.dumps(prompt).encode()), "spin.json"),
                                                 "id": "spin"}, content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()
    ids = [p["id"] for p in client.get("/api/workflows/spin").get_json()["manifest"]["inputs"]]
    assert "seed" in ids
    assert not [param_id for param_id in ids if param_id[0].isdigit()]


# The ids the first detector gave the bundled workflows' inputs: saved mapping edits are keyed by them.
BUNDLED_IDS = {
    "image-resize": ["image", "resize_upscale_method", "resize_width", "resize_height", "resize_crop"],
    "sd15-img2img": ["positive_prompt", "negative_prompt", "checkpoint", "seed", "steps", "cfg", "sampler_name",
                     "scheduler", "denoise", "image"],
    "sd15-inpaint": ["positive_prompt", "negative_prompt", "checkpoint", "seed", "steps", "cfg", "sampler_name",
                     "scheduler", "denoise", "image", "encode_for_inpainting_grow_mask_by"],
    "sd15-txt2img": ["positive_prompt", "negative_prompt", "checkpoint", "width", "height", "batch_size", "seed",
                     "steps", "cfg", "sampler_name", "scheduler", "denoise"],
}


@pytest.mark.parametrize("workflow", sorted(BUNDLED_IDS))
def test_ids_of_existing_workflows_do_not_change(workflow: str) -> None:
    from tests.servers.comfyui import load_object_info

    prompt = json.loads((BUNDLED / workflow / "workflow.json").read_text())
    for object_info in (load_object_info(), OBJECT_INFO):
        inputs = detect(prompt, object_info)
        assert sorted(p["id"] for p in inputs) == sorted(BUNDLED_IDS[workflow])
    by_target = {(p["node_id"], p["field"]): p["id"] for p in detect(prompt, load_object_info())}
    assert by_target.get(("6", "text"), "positive_prompt") == "positive_prompt"
    assert by_target.get(("3", "seed"), "seed") == "seed"


def test_swarm_input_nodes_make_the_form_in_their_order() -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["20"] = n("SwarmInputText", title="Subject", value="a castle", view_type="prompt", description="What",
                     order_priority=2.0, is_advanced=False, raw_id="")
    prompt["21"] = n("SwarmInputInteger", title="Steps", value=12, step=1, min=1, max=50, view_max=50,
                     view_type="big", description="", order_priority=-1.0, is_advanced=False, raw_id="")
    prompt["22"] = n("SwarmInputGroup", title="Extras", open_by_default=True, description="", order_priority=0,
                     is_advanced=True, can_shrink=True)
    prompt["23"] = n("SwarmInputInteger", title="Seed", value=3, step=1, min=0, max=9, view_max=9,
                     view_type="seed", description="", order_priority=0.0, is_advanced=False, raw_id="",
                     group=["22", 0])
    prompt["6"]["inputs"]["text"] = ["20", 0]
    prompt["3"]["inputs"]["steps"] = ["21", 0]
    prompt["3"]["inputs"]["seed"] = ["23", 0]
    inputs = detect(prompt, OBJECT_INFO)
    visible = [p for p in inputs if not p.get("advanced")]
    assert [(p["name"], p["type"]) for p in visible] == [("Steps", "int"), ("Subject", "text")]
    assert (visible[0]["min"], visible[0]["max"], visible[1]["description"]) == (1, 50, "What")
    seed = next(p for p in inputs if p["node_id"] == "23" and p["field"] == "value")
    assert (seed["type"], seed["advanced"]) == ("seed", True)  # its group is advanced
    # the SwarmInput nodes' own settings are not parameters anyone sets; nothing else is shown
    assert all(p.get("hidden") for p in inputs if p["node_id"] in ("20", "21", "23") and p["field"] != "value")
    assert not [p for p in visible if p["node_id"] not in ("20", "21")]


def test_swarmui_titles_say_what_a_value_is() -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["20"] = n("PrimitiveInt", "SwarmUI: Steps", value=9)
    prompt["3"]["inputs"]["steps"] = ["20", 0]
    prompt["5"]["_meta"]["title"] = "Empty Latent Image"
    ui = {"nodes": [
        {"id": 30, "type": "PrimitiveNode", "title": "SwarmUI: Seed", "outputs": [{"links": [99]}]},
        {"id": 3, "type": "KSampler",
         "inputs": [{"name": "seed", "type": "INT", "link": 99, "widget": {"name": "seed"}}]},
    ], "links": [[99, 30, 0, 3, 0, "INT"]]}
    form = shown(detect(prompt, OBJECT_INFO, ui))
    assert (form[("20", "value")]["name"], form[("20", "value")]["type"]) == ("Steps", "int")
    assert form[("3", "seed")]["type"] == "seed"


def test_app_mode_still_wins_over_every_rule() -> None:
    ui = {"extra": {"linearData": {"inputs": [["7", "noise_seed"], ["4", "text"]]}}}
    visible = [p for p in detect(flux(), OBJECT_INFO, ui) if not p.get("advanced")]
    assert [(p["node_id"], p["field"], p["type"]) for p in visible] == [("7", "noise_seed", "seed"),
                                                                       ("4", "text", "text")]


def _templates() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    found = []
    for name, raw in sorted(load_templates(FIXTURE, manifest).items()):
        ui = json.loads(raw)
        try:
            found.append((name, ui, convert(ui, OBJECT_INFO)))
        except Exception:  # noqa: BLE001 - the converter's failures are test_template_corpus's business
            continue
    return found


def test_official_templates_show_what_a_person_sets() -> None:
    totals = dict.fromkeys(FLOOR, 0)
    sampling = 0
    for name, ui, prompt in _templates():
        inputs = detect(prompt, OBJECT_INFO, ui)
        ids = [p["id"] for p in inputs]
        assert len(ids) == len(set(ids)), name
        for entry in inputs:
            InputSpec.model_validate(entry)
        if not any(node.get("class_type") in SAMPLING for node in prompt.values()):
            continue
        sampling += 1
        found = measure(prompt, inputs, OBJECT_INFO)
        for key in ("prompt", "seed", "steps", "size"):
            totals[key] += bool(found[key])
        totals["pickers"] += found["pickers"]
    assert sampling >= 200
    assert all(totals[key] >= FLOOR[key] for key in FLOOR), totals


def test_a_setting_behind_a_switch_is_set_where_the_switch_takes_it() -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["20"] = n("PrimitiveBoolean", "Fast mode", value=False)
    prompt["21"] = n("PrimitiveInt", "Int (Steps)", value=30)
    prompt["22"] = n("PrimitiveInt", "Int (Steps)", value=8)
    prompt["23"] = n("ComfySwitchNode", switch=["20", 0], on_false=["21", 0], on_true=["22", 0])
    prompt["3"]["inputs"]["steps"] = ["23", 0]
    form = shown(detect(prompt, OBJECT_INFO))
    assert (form[("21", "value")]["name"], form[("21", "value")]["default"]) == ("Steps", 30)
    assert ("22", "value") not in form  # the branch the switch does not take sets nothing a person sees

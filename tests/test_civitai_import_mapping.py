"""The pieces of an import a person checks by eye: A1111's sampler names in ComfyUI's words, LoRA
tags out of the prompt, ``parameters`` text with quoted values, the kind of work, CivitAI types to
model folders, CivitAI addresses to ids, and ComfyUI loaders read out of a graph."""

from __future__ import annotations

import pytest

from studio.civitai.imports.catalog import dest_for, parse_ref
from studio.civitai.imports.mapping import base_family, comfy_sampler, kind_of, take_lora_tags
from studio.civitai.imports.parse import Generation, a1111_pairs, from_comfy, from_meta, parse_a1111
from studio.errors import BadRequest


@pytest.mark.parametrize(("a1111", "scheduler", "expected"), [
    ("DPM++ 2M Karras", None, ("dpmpp_2m", "karras")),
    ("Euler a", None, ("euler_ancestral", "normal")),
    ("Euler", None, ("euler", "normal")),
    ("DPM++ 2M", "Karras", ("dpmpp_2m", "karras")),
    ("DPM++ SDE Karras", None, ("dpmpp_sde", "karras")),
    ("DPM++ 2M SDE Exponential", None, ("dpmpp_2m_sde", "exponential")),
    ("DPM++ 3M SDE", "SGM Uniform", ("dpmpp_3m_sde", "sgm_uniform")),
    ("UniPC", None, ("uni_pc", "normal")),
    ("DDIM", None, ("ddim", "normal")),
    ("dpmpp_2m", "karras", ("dpmpp_2m", "karras")),  # ComfyUI's own words pass through
    ("Made Up Sampler", None, (None, None)),
])
def test_a1111_sampler_names_become_comfyui_names(a1111: str, scheduler: str | None,
                                                  expected: tuple[str | None, str | None]) -> None:
    assert comfy_sampler(a1111, scheduler) == expected


def test_lora_tags_are_taken_out_of_the_prompt_with_their_weights() -> None:
    prompt, loras = take_lora_tags("<lora:add_detail:0.6> a castle, <lora:ink style:1.2>, sunset <lyco:soft>, "
                                   "<lora:bad:inf> <hypernet:old:1>")
    assert prompt == "a castle, sunset"
    assert [(r.name, r.weight) for r in loras] == [("add_detail", 0.6), ("ink style", 1.2), ("soft", 1.0),
                                                   ("bad", 1.0)]


def test_a1111_parameters_with_quoted_values_and_a_multiline_prompt() -> None:
    gen = parse_a1111("line one,\nline two\nNegative prompt: ugly,\nbad hands\n"
                      'Steps: 30, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 832x1216, '
                      'Model hash: 0123456789, Model: juggernaut, VAE: sdxl_vae.safetensors, Denoising strength: 0.4, '
                      'Lora hashes: "a: 1111111111, b c: 2222222222", TI hashes: "easyneg: 3333333333", Clip skip: 2')
    assert gen.prompt == "line one,\nline two"
    assert gen.negative == "ugly,\nbad hands"
    assert (gen.steps, gen.seed, gen.width, gen.height, gen.denoise, gen.clip_skip) == (30, 42, 832, 1216, 0.4, 2)
    assert gen.scheduler == "Karras"
    assert [(r.role, r.name, r.short_hash) for r in gen.resources] == [
        ("checkpoint", "juggernaut", "0123456789"), ("lora", "a", "1111111111"), ("lora", "b c", "2222222222"),
        ("embedding", "easyneg", "3333333333"), ("vae", "sdxl_vae.safetensors", None)]
    assert kind_of(gen)[0] == "img2img"  # a denoising strength below 1
    assert a1111_pairs('A: "x, y", B: 2') == {"A": "x, y", "B": "2"}


def test_civitai_meta_and_resources_are_merged_into_one_list() -> None:
    meta = {"prompt": "p", "seed": 1, "Model": "dream", "Model hash": "abcdef1234",
            "civitaiResources": [{"type": "checkpoint", "modelVersionId": 11},
                                 {"type": "lora", "weight": 0.5, "modelVersionId": 22}]}
    resources = [{"modelType": "checkpoint", "modelVersionId": 11, "modelName": "Dream"},
                 {"modelType": "lora", "modelVersionId": 22, "modelName": "Ink", "strength": 0.8}]
    gen = from_meta(meta, resources)
    assert [(r.role, r.version_id, r.weight) for r in gen.resources] == [("checkpoint", 11, None), ("lora", 22, 0.5)]
    assert gen.resources[1].name == "Ink"


def test_a_comfyui_graph_names_its_models_and_sampler() -> None:
    gen = from_comfy({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd/x.safetensors"}},
                      "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "ink.safetensors",
                                                                   "strength_model": 0.7}},
                      "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 9, "sampler_name": "euler"}},
                      "4": {"class_type": "LoadImage", "inputs": {"image": "in.png"}}}, None)
    assert [(r.role, r.file, r.weight) for r in gen.resources] == [("checkpoint", "sd/x.safetensors", None),
                                                                  ("lora", "ink.safetensors", 0.7)]
    assert (gen.seed, gen.steps, gen.sampler) == (5, 9, "euler")
    assert kind_of(gen)[0] == "img2img"
    assert kind_of(Generation(process="txt2img"))[0] == "txt2img"


@pytest.mark.parametrize(("kind", "base", "folder"), [
    ("Checkpoint", "SD 1.5", "checkpoints"), ("Checkpoint", "Flux.1 D", "diffusion_models"),
    ("Checkpoint", "Wan Video 14B t2v", "diffusion_models"), ("Checkpoint", "Hunyuan Video", "diffusion_models"),
    ("Checkpoint", "LTXV", "diffusion_models"), ("Checkpoint", "Qwen", "diffusion_models"),
    ("LORA", "Flux.1 D", "loras"), ("LoCon", "SDXL 1.0", "loras"), ("VAE", "SDXL 1.0", "vae"),
    ("TextualInversion", "SD 1.5", "embeddings"), ("Controlnet", "SD 1.5", "controlnet"),
    ("Upscaler", "Other", "upscale_models"), ("Poses", "Other", None),
])
def test_civitai_types_go_to_the_original_folders(kind: str, base: str, folder: str | None) -> None:
    assert dest_for(kind, base) == folder


def test_civitai_addresses_and_ids() -> None:
    assert parse_ref("https://civitai.com/models/4384/dreamshaper?modelVersionId=128713") == ("version", 128713)
    assert parse_ref("https://civitai.red/models/4384") == ("model", 4384)
    assert parse_ref("https://civitai.com/images/1234567") == ("image", 1234567)
    assert parse_ref("128713") == ("version", 128713)
    assert parse_ref("image:99") == ("image", 99)
    assert base_family("SD 1.5") == "sd15"
    assert base_family("Pony") == "sdxl"
    for bad in ("ftp://civitai.com/models/1", "models", "version:0", "https://civitai.com/user/x"):
        with pytest.raises(BadRequest):
            parse_ref(bad)


def test_an_a1111_embedding_becomes_comfyuis_embedding_syntax() -> None:
    from studio.civitai.imports.mapping import embedded

    gen = parse_a1111('a cat\nNegative prompt: EasyNegative, blurry, easynegative_v2\nSteps: 20, '
                      'TI hashes: "EasyNegative: 3333333333"')
    assert embedded(gen.negative, gen, {}) == "embedding:EasyNegative, blurry, easynegative_v2"
    index = next(i for i, r in enumerate(gen.resources) if r.role == "embedding")
    assert embedded(gen.negative, gen, {index: "easyneg.safetensors"}).startswith("embedding:easyneg,")

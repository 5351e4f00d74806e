"""Can this workflow run on this ComfyUI? Which nodes and which models are missing, by name."""

from __future__ import annotations

from typing import Any

from studio.workflows.library import Workflow
from studio.workflows.manifest import PICKER_FOLDERS

# Loader inputs whose value is a model file, and the model folder it lives in.
MODEL_INPUTS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
}


def _listed(object_info: dict[str, Any], class_type: str, field: str) -> list[str] | None:
    info = object_info.get(class_type, {}).get("input", {})
    for section in ("required", "optional"):
        spec = info.get(section, {}).get(field)
        if spec and isinstance(spec[0], list):
            return [str(item) for item in spec[0]]
    return None


def readiness(workflow: Workflow, object_info: dict[str, Any]) -> dict[str, Any]:
    prompt, manifest = workflow.prompt, workflow.manifest
    needed_nodes = sorted(set(manifest.required_nodes) | {node["class_type"] for node in prompt.values()})
    missing_nodes = [name for name in needed_nodes if name not in object_info]

    picked = {(spec.node_id, spec.field) for spec in manifest.inputs if spec.type in PICKER_FOLDERS}
    models: list[dict[str, Any]] = []
    seen: set[str] = set()
    for node_id, node in prompt.items():
        for field, value in node.get("inputs", {}).items():
            folder = MODEL_INPUTS.get((node["class_type"], field))
            if folder is None or not isinstance(value, str):
                continue
            spec = next((s for s in manifest.inputs if (s.node_id, s.field) == (node_id, field)), None)
            name = str(spec.default) if spec is not None and spec.default and (node_id, field) in picked else value
            listed = _listed(object_info, node["class_type"], field) or []
            models.append({"name": name, "folder": folder, "present": name in listed,
                           "choosable": (node_id, field) in picked and bool(listed)})
            seen.add(name)
    everything = {item for key in MODEL_INPUTS for item in (_listed(object_info, *key) or [])}
    for name in manifest.required_models:
        if name not in seen:
            models.append({"name": name, "folder": None, "present": name in everything, "choosable": False})
    missing_models = [m for m in models if not m["present"] and not m["choosable"]]
    problems = [f"node {name} is not installed" for name in missing_nodes]
    for model in missing_models:
        where = f" (folder {model['folder']})" if model["folder"] else ""
        problems.append(f"model {model['name']} is missing{where}")
    return {
        "ready": not missing_nodes and not missing_models,
        "missing_nodes": missing_nodes,
        "models": models,
        "missing_models": [m["name"] for m in missing_models],
        "problems": problems,
    }

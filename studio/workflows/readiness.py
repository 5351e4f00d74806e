"""Can this workflow run on this ComfyUI? Which nodes and which models are missing, by name."""

from __future__ import annotations

from typing import Any

from studio.workflows.library import Workflow
from studio.workflows.params import picker_folder

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


# Model inputs of loaders Studio has no entry for (custom nodes): the folder by the input's name.
FIELD_FOLDERS = {"ckpt_name": "checkpoints", "unet_name": "diffusion_models", "vae_name": "vae",
                 "lora_name": "loras", "lora": "loras", "clip_name": "text_encoders", "clip_name1": "text_encoders",
                 "clip_name2": "text_encoders", "control_net_name": "controlnet", "upscale_model": "upscale_models"}
MODEL_SUFFIXES = (".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".onnx")


def model_folder(class_type: str, field: str, options: list[str], index: dict[str, set[str]] | None) -> str | None:
    """Which model folder a loader input lists: known loaders, else the folder whose files the
    input offers (a custom loader lists a folder's files), else a guess from the input's name."""
    known = MODEL_INPUTS.get((class_type, field))
    if known:
        return known
    if index and options:
        offered = set(options)
        best = max(index.items(), key=lambda item: len(item[1] & offered), default=None)
        if best is not None and best[1] & offered:
            return best[0]
    return FIELD_FOLDERS.get(field)


def _model_references(node: dict[str, Any]) -> list[tuple[str, str]]:
    """(input name, file name) for every literal that names a model file, including the
    ``{"lora": ...}`` slots of rgthree's Power Lora Loader."""
    found = []
    for field, value in node.get("inputs", {}).items():
        if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES):
            found.append((field, value))
        elif (isinstance(value, dict) and isinstance(value.get("lora"), str) and value.get("on", True)
              and value["lora"].lower().endswith(MODEL_SUFFIXES)):
            found.append(("lora", value["lora"]))
    return found


def _listed(object_info: dict[str, Any], class_type: str, field: str) -> list[str] | None:
    info = object_info.get(class_type, {}).get("input", {})
    for section in ("required", "optional"):
        spec = info.get(section, {}).get(field)
        if spec and isinstance(spec[0], list):
            return [str(item) for item in spec[0]]
    return None


def readiness(workflow: Workflow, object_info: dict[str, Any],
              model_index: dict[str, set[str]] | None = None) -> dict[str, Any]:
    prompt, manifest = workflow.prompt, workflow.manifest
    needed_nodes = sorted(set(manifest.required_nodes) | {node["class_type"] for node in prompt.values()})
    missing_nodes = [name for name in needed_nodes if name not in object_info]

    # A model the person picks (any input with a picker) is theirs to swap: absent, it is not a blocker
    # while its folder has another file to choose.
    picked = {(spec.node_id, spec.field) for spec in manifest.inputs if picker_folder(spec)}
    models: list[dict[str, Any]] = []
    seen: set[str] = set()
    for node_id, node in prompt.items():
        if node["class_type"] not in object_info:
            continue  # its node pack is missing: said above, and its inputs cannot be checked
        for field, value in _model_references(node):
            spec = next((s for s in manifest.inputs if (s.node_id, s.field) == (node_id, field)), None)
            name = str(spec.default) if spec is not None and spec.default and (node_id, field) in picked else value
            listed = _listed(object_info, node["class_type"], field)
            folder = model_folder(node["class_type"], field, listed or [], model_index)
            if listed is None:  # a free-text input or a dynamic slot: ask the folder itself
                if model_index is None or folder not in model_index:
                    continue
                listed = sorted(model_index[folder])
            models.append({"name": name, "folder": folder, "present": name in listed,
                           "choosable": (node_id, field) in picked and bool(listed)})
            seen.update((name, value))  # a picked input's file in the graph is replaced, never needed
    everything = {item for key in MODEL_INPUTS for item in (_listed(object_info, *key) or [])}
    for name in manifest.required_models:
        if name not in seen:
            models.append({"name": name, "folder": None, "present": name in everything, "choosable": False})
    missing_models = [m for m in models if not m["present"] and not m["choosable"]]
    problems = [f"node {name} is not installed" for name in missing_nodes]
    # Installed, yet the workflow was not converted again for them (their pack's nodes did not fit it).
    unconverted = [name for name in manifest.unconverted_nodes or [] if name not in missing_nodes]
    problems += [f"node {name} is installed, but the workflow could not be converted for it: import it again"
                 for name in unconverted]
    for model in missing_models:
        where = f" (folder {model['folder']})" if model["folder"] else ""
        problems.append(f"model {model['name']} is missing{where}")
    return {
        "ready": not missing_nodes and not missing_models and not unconverted,
        "missing_nodes": missing_nodes,
        "models": models,
        "missing_models": [m["name"] for m in missing_models],
        "problems": problems,
    }

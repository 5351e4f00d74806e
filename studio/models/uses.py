"""A model file as a person reads it on the Models page (a name, its folder, its size), the workflows
that can use it (Run's ``/run/<id>?<input>=<file>`` presets it), and the folders a download may go to.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from studio.models.catalog import Catalog
from studio.workflows.library import Workflow
from studio.workflows.params import picker_folder

# The model folders ComfyUI itself knows (folder_paths.py), offered first when downloading a file.
COMFYUI_FOLDERS = ("checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                   "controlnet", "upscale_models", "embeddings", "clip", "unet", "style_models", "hypernetworks",
                   "photomaker", "gligen", "vae_approx", "diffusers", "model_patches", "audio_encoders")
# A LoRA pair picker chooses by pair, not by file: a single file cannot be preset there.
NOT_BY_FILE = ("lora_picker",)


def readable(path: str) -> dict[str, str]:
    """``loras/style/my_lora-v2.safetensors`` → name ``my lora-v2``, folder ``loras``, sub folder
    ``style``, and ``file``: the value ComfyUI lists for it (its path inside the folder)."""
    folder, _, inside = path.partition("/")
    sub, _, leaf = inside.rpartition("/")
    stem = os.path.splitext(leaf)[0]
    return {"name": stem.replace("_", " ").strip() or leaf, "folder": folder, "sub_folder": sub, "file": inside}


def uses_by_folder(workflows: Iterable[Workflow]) -> dict[str, list[dict[str, str]]]:
    """``{folder: [{workflow_id, workflow_name, param, param_name}]}``: the visible inputs that pick a
    file from each model folder."""
    found: dict[str, list[dict[str, str]]] = {}
    for workflow in workflows:
        for spec in workflow.manifest.inputs:
            folder = picker_folder(spec)
            if folder is None or spec.hidden or spec.type in NOT_BY_FILE:
                continue
            found.setdefault(folder, []).append({"workflow_id": workflow.id, "workflow_name": workflow.manifest.name,
                                                 "param": spec.id, "param_name": spec.name})
    return found


def known_folders(catalogs: dict[str, Catalog], files: list[dict[str, Any]]) -> list[str]:
    """ComfyUI's folders, then any other one a catalog or the disk already uses."""
    seen = dict.fromkeys(COMFYUI_FOLDERS)
    for catalog in catalogs.values():
        for _, entry in catalog.entries:
            top = entry.dest.strip("/").split("/", 1)[0]
            if top:
                seen.setdefault(top)
    for item in files:
        seen.setdefault(item["category"])
    return list(seen)

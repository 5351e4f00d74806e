"""Finds a workflow's form: which literal inputs a person will want to set, named as they think.

App Mode (``extra.linearData``) wins when the workflow has it. Otherwise prompts are found by
node title, or as positive / negative by how they reach a sampler; samplers give seed, steps, CFG,
sampler, scheduler and denoise; latent images give size and batch; LoadImage gives an image;
loaders become pickers. Every other literal stays reachable as an advanced parameter.

Ids are derived from what a node *is* (its role, class and title), never from its number, so
re-importing an edited version of the same workflow keeps each parameter's id and with it the
names, order and defaults a person chose in the mapping editor.
"""

from __future__ import annotations

import re
from typing import Any

from studio.workflows.uiformat import is_widget

SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
SAMPLER_FIELDS = {
    "seed": ("seed", "Seed", "seed"), "noise_seed": ("seed", "Seed", "seed"), "steps": ("steps", "Steps", None),
    "cfg": ("cfg", "CFG", None), "sampler_name": ("sampler_name", "Sampler", None),
    "scheduler": ("scheduler", "Scheduler", None), "denoise": ("denoise", "Denoise", None),
}
LATENTS = {"EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo", "EmptyMochiLatentVideo"}
PICKERS = {
    ("CheckpointLoaderSimple", "ckpt_name"): ("checkpoint", "Checkpoint", "checkpoint_picker"),
    ("CheckpointLoader", "ckpt_name"): ("checkpoint", "Checkpoint", "checkpoint_picker"),
    ("VAELoader", "vae_name"): ("vae", "VAE", "vae_picker"),
    ("LoraLoader", "lora_name"): ("lora", "LoRA", "select"),
    ("LoraLoaderModelOnly", "lora_name"): ("lora", "LoRA", "select"),
}
DEFAULT_TITLES = {"CLIP Text Encode (Prompt)", "CLIPTextEncode", ""}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "value"


def _spec(object_info: dict[str, Any], class_type: str, field: str) -> list[Any] | None:
    info = object_info.get(class_type, {}).get("input", {})
    for section in ("required", "optional"):
        found = info.get(section, {}).get(field)
        if found:
            return list(found)
    return None


def _typed(spec: list[Any] | None, value: Any) -> dict[str, Any]:
    """Manifest type and limits for a literal, from ComfyUI's own definition of the input."""
    options = spec[1] if spec and len(spec) > 1 and isinstance(spec[1], dict) else {}
    kind = spec[0] if spec else None
    if isinstance(kind, list) or kind == "COMBO":
        choices = kind if isinstance(kind, list) else options.get("options", [])
        return {"type": "select", "options": [{"label": str(c), "value": c} for c in choices]}
    if kind == "INT" or (kind is None and isinstance(value, int) and not isinstance(value, bool)):
        found: dict[str, Any] = {"type": "int"}
    elif kind == "FLOAT" or (kind is None and isinstance(value, float)):
        found = {"type": "float"}
    elif kind == "BOOLEAN" or isinstance(value, bool):
        return {"type": "boolean"}
    else:
        return {"type": "text"}
    for key in ("min", "max", "step"):
        if isinstance(options.get(key), int | float) and abs(options[key]) < 2**53:
            found[key] = options[key]
    return found


def _title(node: dict[str, Any]) -> str:
    return str((node.get("_meta") or {}).get("title") or "")


def _trace_conditioning(prompt: dict[str, Any], start: Any) -> set[str]:
    """Every text-encode node feeding a sampler's positive or negative input (walked, not recursed:
    a chain of thousands of nodes must not exhaust the stack)."""
    found: set[str] = set()
    seen: set[str] = set()
    pending = [start]
    while pending:
        link = pending.pop()
        if not (isinstance(link, list) and len(link) == 2):
            continue
        node_id = str(link[0])
        if node_id in seen or node_id not in prompt:
            continue
        seen.add(node_id)
        node = prompt[node_id]
        if isinstance(node.get("inputs", {}).get("text"), str):
            found.add(node_id)
        if node["class_type"] in SAMPLERS:
            continue
        pending.extend(value for value in node.get("inputs", {}).values()
                       if isinstance(value, list) and len(value) == 2)
    return found


def _linear_data(ui: dict[str, Any] | None) -> list[tuple[str, str, dict[str, Any]]]:
    """App Mode's chosen inputs, in its order: ComfyUI's frontend saves ``extra.linearData.inputs``
    as ``[node id, widget name, config?]`` tuples (config may carry a ``description``)."""
    extra = (ui or {}).get("extra") or {}
    data = extra.get("linearData") if isinstance(extra, dict) else None
    pairs = data.get("inputs") if isinstance(data, dict) else data
    found = []
    for item in pairs if isinstance(pairs, list) else []:
        if isinstance(item, list | tuple) and len(item) >= 2:
            config = item[2] if len(item) > 2 and isinstance(item[2], dict) else {}
            found.append((str(item[0]), str(item[1]), config))
        elif isinstance(item, dict) and "nodeId" in item and ("widgetName" in item or "name" in item):
            found.append((str(item["nodeId"]), str(item.get("widgetName") or item.get("name")), {}))
    return found


def app_mode_outputs(ui: dict[str, Any] | None) -> list[str]:
    """The output node ids App Mode shows (``extra.linearData.outputs``), if any."""
    extra = (ui or {}).get("extra") or {}
    data = extra.get("linearData") if isinstance(extra, dict) else None
    outputs = data.get("outputs") if isinstance(data, dict) else None
    return [str(node_id) for node_id in (outputs if isinstance(outputs, list) else [])
            if isinstance(node_id, str | int)]


def detect(prompt: dict[str, Any], object_info: dict[str, Any], ui: dict[str, Any] | None = None) -> list[dict]:
    """Manifest inputs for ``prompt``: the obvious ones first, every other literal as advanced."""
    inputs: list[dict[str, Any]] = []
    claimed: set[tuple[str, str]] = set()
    used_ids: set[str] = set()

    def add(node_id: str, field: str, base_id: str, name: str, forced_type: str | None = None, **extra: Any) -> None:
        node = prompt[node_id]
        value = node["inputs"][field]
        spec = _spec(object_info, node["class_type"], field)
        param_id = base_id
        if param_id in used_ids:
            param_id = f"{base_id}_{slug(_title(node) or node['class_type'])}"
            suffix = 2
            while param_id in used_ids:
                param_id, suffix = f"{base_id}_{slug(_title(node))}_{suffix}", suffix + 1
        used_ids.add(param_id)
        claimed.add((node_id, field))
        entry: dict[str, Any] = {"id": param_id, "name": name, **_typed(spec, value), "node_id": node_id,
                                 "field": field, "default": value}
        if forced_type:
            entry["type"] = forced_type
            entry.pop("options", None)
        if forced_type == "seed":
            entry.update(default=-1, min=None, max=None)
            entry = {k: v for k, v in entry.items() if v is not None}
        entry.update(extra)
        inputs.append(entry)

    def literal(node_id: str, field: str) -> bool:
        value = prompt.get(node_id, {}).get("inputs", {}).get(field)
        return value is not None and not (isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt)

    app_mode = _linear_data(ui)
    if app_mode:
        for node_id, field, config in app_mode:
            if node_id not in prompt or not literal(node_id, field) or (node_id, field) in claimed:
                continue
            node = prompt[node_id]
            title = _title(node) or node["class_type"]
            described = {"description": str(config["description"])} if config.get("description") else {}
            if node["class_type"] in SAMPLERS and field in SAMPLER_FIELDS:
                base, name, forced = SAMPLER_FIELDS[field]
                add(node_id, field, base, name, forced, **described)
            elif field == "text" and isinstance(node["inputs"][field], str):
                add(node_id, field, slug(f"{title}_{field}"), title, "text", **described)
            else:
                add(node_id, field, slug(f"{title}_{field}"), f"{title}: {field.replace('_', ' ')}", **described)
    else:
        roles: dict[str, str] = {}
        for node in prompt.values():
            if node["class_type"] in SAMPLERS:
                for role in ("positive", "negative"):
                    for text_node in _trace_conditioning(prompt, node["inputs"].get(role)):
                        roles.setdefault(text_node, role)
        for node_id, node in sorted(prompt.items(), key=lambda item: (item[1]["class_type"], item[0])):
            title = _title(node)
            if literal(node_id, "text") and isinstance(node["inputs"]["text"], str):
                text_role = roles.get(node_id)
                if title not in DEFAULT_TITLES and not title.startswith("CLIP Text Encode"):
                    add(node_id, "text", slug(title) if text_role is None else f"{text_role}_prompt", title, "text")
                elif text_role:
                    label = "Prompt" if text_role == "positive" else "Negative prompt"
                    add(node_id, "text", f"{text_role}_prompt", label, "text")
            if node["class_type"] in SAMPLERS:
                for field, (base, name, forced) in SAMPLER_FIELDS.items():
                    if literal(node_id, field):
                        add(node_id, field, base, name, forced, advanced=field in ("scheduler", "denoise"))
            if node["class_type"] in LATENTS:
                for field, name in (("width", "Width"), ("height", "Height"), ("batch_size", "Images per run")):
                    if literal(node_id, field):
                        add(node_id, field, field, name, advanced=field == "batch_size")
            if node["class_type"] in ("LoadImage", "LoadImageMask") and literal(node_id, "image"):
                add(node_id, "image", "image", title or "Image", "image", required=True)
            for (class_type, field), (base, name, kind) in PICKERS.items():
                if node["class_type"] == class_type and literal(node_id, field):
                    add(node_id, field, base, name, None if kind == "select" else kind)
    for node_id, node in sorted(prompt.items(), key=lambda item: (item[1]["class_type"], item[0])):
        for field in node.get("inputs", {}):
            spec = _spec(object_info, node["class_type"], field)
            if (node_id, field) in claimed or not literal(node_id, field) or field == "filename_prefix":
                continue
            if spec is not None and not is_widget(spec):
                continue
            title = _title(node) or node["class_type"]
            add(node_id, field, slug(f"{title}_{field}"), f"{title}: {field.replace('_', ' ')}", advanced=True)
    return inputs

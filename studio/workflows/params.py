"""Form values → a validated, fully resolved parameter set → the API prompt ComfyUI runs.

Validation names each bad field in words. Resolution draws random seeds (``-1``) at submit time so
the job records the seed it really used. Building substitutes ``node_id``/``field`` targets and
``{{var}}`` placeholders, then points every saving node at ``studio/<job id>/``.
"""

from __future__ import annotations

import copy
import json
import math
import re
import secrets
from collections.abc import Callable
from typing import Any

from studio import jsonio
from studio.errors import BadRequest, Unprocessable
from studio.safepath import name_problem
from studio.workflows.library import Workflow
from studio.workflows.lora_pairs import inject_lora_pairs, validate_pairs
from studio.workflows.manifest import PICKER_FOLDERS, InputSpec, Manifest
from studio.workflows.outputs import KNOWN_OUTPUTS, file_stem

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Seeds stay below 2^53 so they survive a round trip through JavaScript numbers unchanged.
SEED_LIMIT = 2**53
MAX_TEXT = 20_000
# No input ComfyUI has takes a number beyond ±2^64 (its seeds stop at 2^64 - 1); anything larger is a
# mistake or an attack, and Python would otherwise carry it (or NaN, or infinity) all the way to the POST.
MAX_MAGNITUDE = jsonio.MAX_INT
MAX_NAME = 1024
INT_TEXT = re.compile(r"[+-]?\d+")
MISSING = object()

FOLDER_LOADERS = {"checkpoints": ("CheckpointLoaderSimple", "ckpt_name"), "vae": ("VAELoader", "vae_name"),
                  "loras": ("LoraLoader", "lora_name")}

# Saving nodes and the name their files get inside the job's folder: any node that takes a
# ``filename_prefix`` (every saving node ComfyUI and the node packs have), and the few known ones.
OUTPUT_PREFIXES = {class_type: file_stem(class_type) for class_type in KNOWN_OUTPUTS}


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot travel as text to ComfyUI and back (JSON, SQLite, a ZIP), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text (it holds a lone surrogate)"
    return None


def _number(spec: InputSpec, value: Any, kind: type) -> tuple[Any, str | None]:
    """A finite number within ±2^64 and the input's limits; for ``int`` a whole one, never truncated."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, f"must be a number, not {type(value).__name__}"
    if isinstance(value, str):
        text = value.strip()
        if INT_TEXT.fullmatch(text):
            if len(text.lstrip("+-")) > len(str(MAX_MAGNITUDE)):
                return None, "is out of range"
            value = int(text)
        else:
            try:
                value = float(text) if len(text) <= 64 else math.nan
            except ValueError:
                return None, "must be a number"
    if isinstance(value, float) and not math.isfinite(value):
        return None, "must be a finite number (not NaN or infinity)"
    if abs(value) > MAX_MAGNITUDE:
        return None, "is out of range"
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            return None, "must be a whole number"
        value = int(value)
    number = value if kind is int else float(value)
    if spec.min is not None and number < spec.min:
        return None, f"must be at least {spec.min:g}"
    if spec.max is not None and number > spec.max:
        return None, f"must be at most {spec.max:g}"
    return number, None


def _choice(value: Any) -> str | None:
    """A select or picker value: one plain JSON value, never a structure or a non-finite number."""
    if isinstance(value, str):
        return text_problem(value) or ("is too long" if len(value) > MAX_NAME else None)
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (not NaN or infinity)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_MAGNITUDE:
        return "is out of range"
    if value is not None and not isinstance(value, bool | int | float):
        return f"must be one value, not {type(value).__name__}"
    return None


def image_name_problem(value: Any) -> str | None:
    """An input image's name: ``folder/file`` below ComfyUI's input folder, each part a safe name."""
    if not isinstance(value, str) or not value:
        return "must name an uploaded image"
    if len(value) > MAX_NAME or value.startswith("/") or "\\" in value:
        return "must name an uploaded image"
    for part in value.split("/"):
        if name_problem(part, reserve=0):
            return "must name an uploaded image"
    return None


def picker_folder(spec: InputSpec) -> str | None:
    """The model folder an input chooses from: the picker types', or any input's ``picker`` key
    (every model loader a form detects, a UNet, a CLIP or an upscaler as much as a checkpoint)."""
    folder = (spec.model_extra or {}).get("picker")
    if isinstance(folder, str) and folder:
        return folder
    return PICKER_FOLDERS.get(spec.type)


def choices_for(spec: InputSpec, prompt: dict[str, Any], object_info: dict[str, Any] | None) -> list[Any] | None:
    """The values a select or picker accepts. A model picker asks ComfyUI first (its node field's
    list, or the usual loader of its folder), because a list stored at import is stale the moment a
    model is added or removed; its stored options are the answer only while ComfyUI cannot be asked."""
    folder = picker_folder(spec)
    if folder is not None and object_info:
        if spec.node_id and spec.field:
            class_type, field = prompt.get(spec.node_id, {}).get("class_type"), spec.field
        else:  # dynamic workflows: ask the usual loader of that folder
            class_type, field = FOLDER_LOADERS.get(folder, ("", ""))
        info = object_info.get(class_type or "", {}).get("input", {})
        for section in ("required", "optional"):
            field_spec = info.get(section, {}).get(field)
            if field_spec and isinstance(field_spec[0], list):
                return list(field_spec[0])
    if spec.options:
        return [option.value for option in spec.options]
    return None


def convert(spec: InputSpec, value: Any, choices: list[Any] | None) -> tuple[Any, str | None]:
    kind = spec.type
    if kind == "text":
        if not isinstance(value, str):
            return None, "must be text"
        if len(value) > MAX_TEXT:
            return None, f"is longer than {MAX_TEXT} characters"
        return (None, problem) if (problem := text_problem(value)) else (value, None)
    if kind == "int":
        return _number(spec, value, int)
    if kind == "float":
        return _number(spec, value, float)
    if kind == "seed":
        if value in (-1, "-1"):
            return -1, None
        number, problem = _number(spec, value, int)
        if problem:
            return None, problem
        return (number, None) if 0 <= number < SEED_LIMIT else (None, "must be -1 (random) or 0 … 2^53-1")
    if kind == "boolean":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if kind in ("select", "checkpoint_picker", "vae_picker"):
        if (problem := _choice(value)) is not None:
            return None, problem
        if kind != "select" and not isinstance(value, str):
            return None, "must be a file name"
        if choices is not None and value not in choices:
            if kind == "select" and picker_folder(spec) is None:
                return None, "is not one of the choices"
            return None, f"{value!r} is not installed in ComfyUI"
        return value, None
    if kind == "image":
        return (None, problem) if (problem := image_name_problem(value)) else (value, None)
    if kind == "resolution_picker":
        if not isinstance(value, dict):
            return None, "must be {w, h}"
        width, height = value.get("w"), value.get("h")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 64 <= v <= 16384 for v in (width, height)):
            return None, "width and height must be whole numbers from 64 to 16384"
        return {"w": width, "h": height}, None
    if kind == "lora_picker_dynamic":
        return _loras(spec, value, choices)
    if kind == "scene_list":
        return _scenes(spec, value)
    try:
        jsonio.check_shape(value)
    except jsonio.JSONRefused as err:
        return None, f"cannot be used: {err}"
    return value, None


FRAMES_PER_SECOND = 16
MAX_SCENES = 32


def _scenes(spec: InputSpec, value: Any) -> tuple[Any, str | None]:
    """``[{prompt, duration, seed}]``: a prompt each, 1-30 seconds each, seed -1 (random) or fixed."""
    if not isinstance(value, list) or not value:
        return None, "needs at least one scene"
    if len(value) > int((spec.model_extra or {}).get("max_scenes", MAX_SCENES)):
        return None, "has too many scenes"
    scenes = []
    for number, scene in enumerate(value, start=1):
        if not isinstance(scene, dict) or not isinstance(scene.get("prompt"), str) or not scene["prompt"].strip():
            return None, f"scene {number} needs a prompt"
        problem = "is too long" if len(scene["prompt"]) > MAX_TEXT else text_problem(scene["prompt"])
        if problem:
            return None, f"scene {number} prompt {problem}"
        duration = scene.get("duration", 5)
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not 1 <= duration <= 30:
            return None, f"scene {number} must last 1 to 30 seconds"
        seed = scene.get("seed", -1)
        if isinstance(seed, bool) or not isinstance(seed, int) or not -1 <= seed < SEED_LIMIT:
            return None, f"scene {number} seed must be -1 (random) or a whole number"
        scenes.append({"prompt": scene["prompt"], "duration": duration, "seed": seed})
    return scenes, None


def _loras(spec: InputSpec, value: Any, choices: list[Any] | None) -> tuple[Any, str | None]:
    """``[{file, strength}]``: each file installed, each strength sane, no more than ``max_loras``."""
    if not isinstance(value, list):
        return None, "must be a list of {file, strength}"
    limit = int((spec.model_extra or {}).get("max_loras", 8))
    if len(value) > limit:
        return None, f"takes at most {limit} LoRAs"
    cleaned = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            return None, "must be a list of {file, strength}"
        if (problem := _choice(item["file"])) is not None:
            return None, f"LoRA file {problem}"
        if choices is not None and item["file"] not in choices:
            return None, f"{item['file']!r} is not installed in ComfyUI"
        strength = item.get("strength", 1.0)
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not -10 <= strength <= 10:
            return None, "strengths must be numbers from -10 to 10"
        cleaned.append({"file": item["file"], "strength": float(strength)})
    return cleaned, None


def validate(
    workflow: Workflow,
    raw: dict[str, Any],
    object_info: dict[str, Any] | None = None,
    image_exists: Callable[[str], bool] | None = None,
    lora_pairs: Callable[[str | None], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Returns every input's value (defaults filled in) or raises a 400 naming each bad field."""
    manifest = workflow.manifest
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for unknown in sorted(set(raw) - {spec.id for spec in manifest.inputs}):
        errors[unknown] = "is not a parameter of this workflow"
    for spec in manifest.inputs:
        given = raw.get(spec.id, MISSING)
        if given is MISSING or given is None or (given == "" and spec.type in ("text", "image")):
            default = manifest.defaults.get(spec.id, spec.default)
            if spec.required and (default is None or default == ""):
                errors[spec.id] = "is required"  # the message names the field: "Prompt is required"
                continue
            given = default
            if given is None:
                continue
        choices = choices_for(spec, workflow.prompt, object_info)
        if spec.type == "lora_picker":
            base_model = (spec.model_extra or {}).get("base_model") or manifest.base_model
            value, problem = validate_pairs(spec, given, choices, lora_pairs(base_model) if lora_pairs else [],
                                         base_model)
        else:
            value, problem = convert(spec, given, choices)
        if not problem and spec.type == "lora_picker_dynamic" and value == [] and spec.required:
            problem = "needs at least one LoRA"
        if not problem and spec.type == "image" and image_exists is not None and not image_exists(value):
            problem = "was not uploaded (upload the image first)"
        if problem:
            errors[spec.id] = f"{spec.name} {problem}"
        else:
            values[spec.id] = value
    for key, problem in value_problems(values).items():  # a last net: nothing unsendable is queued
        errors[key] = f"{key} {problem}"
    if errors:
        names = {spec.id: spec.name for spec in manifest.inputs}
        said = [f"{names[key]} {problem}" if problem == "is required" else f"{key} {problem}" if key not in names
                else problem for key, problem in errors.items()]
        raise BadRequest("Some values need fixing: " + "; ".join(said), fields=errors)
    return values


def resolve(manifest: Manifest, values: dict[str, Any]) -> dict[str, Any]:
    """Draws random seeds: what is returned is exactly what runs, and is recorded on the job."""
    resolved = dict(values)
    for spec in manifest.inputs:
        if spec.type == "seed" and resolved.get(spec.id) == -1:
            resolved[spec.id] = secrets.randbelow(SEED_LIMIT)
        if spec.type == "scene_list" and isinstance(resolved.get(spec.id), list):
            scenes = []
            for number, scene in enumerate(resolved[spec.id], start=1):
                seed = scene["seed"] if scene["seed"] != -1 else secrets.randbelow(SEED_LIMIT)
                scenes.append({**scene, "seed": seed, "frames": int(scene["duration"] * FRAMES_PER_SECOND) + 1})
                resolved[f"scene_{number}"] = seed  # the original records each scene's seed this way
            resolved[spec.id] = scenes
    return resolved


def variables(manifest: Manifest, values: dict[str, Any]) -> dict[str, Any]:
    found = dict(values)
    for spec in manifest.inputs:
        if spec.type == "resolution_picker" and isinstance(values.get(spec.id), dict):
            found.setdefault("width", values[spec.id]["w"])
            found.setdefault("height", values[spec.id]["h"])
        if spec.type == "lora_picker" and isinstance(values.get(spec.id), list):
            for role in ("high", "low"):
                found.setdefault(f"loras_{role}", [{"file": pair[role], "strength": pair["strength"]}
                                                   for pair in values[spec.id] if pair.get(role)])
    return found


def _substitute(value: Any, names: dict[str, Any], missing: set[str]) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            name = whole.group(1)
            if name not in names:
                missing.add(name)
                return value
            return names[name]  # typed: an int stays an int

        def text(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                missing.add(match.group(1))
                return match.group(0)
            return str(names[match.group(1)])

        return PLACEHOLDER.sub(text, value)
    if isinstance(value, dict):
        return {key: _substitute(item, names, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, names, missing) for item in value]
    return value


def defaults_of(manifest: Manifest) -> dict[str, Any]:
    found = {}
    for spec in manifest.inputs:
        value = manifest.defaults.get(spec.id, spec.default)
        if value is not None:
            found[spec.id] = value
    return found


def build_prompt(workflow: Workflow, values: dict[str, Any], *, job_id: str) -> dict[str, Any]:
    manifest = workflow.manifest
    if workflow.blocks_dir is not None and manifest.pipeline:
        from studio.workflows.blocks import assemble

        names = {**variables(manifest, values), "output_prefix": f"studio/{job_id}/image",
                 "output_dir": f"studio/{job_id}"}
        prompt = assemble(manifest.pipeline, workflow.blocks_dir, names)
        inject_lora_pairs(prompt, manifest, values)
        patch_outputs(prompt, job_id)
        return prompt
    prompt = copy.deepcopy(workflow.prompt)
    for spec in manifest.inputs:
        if spec.node_id and spec.field and spec.id in values:
            prompt[spec.node_id].setdefault("inputs", {})[spec.field] = values[spec.id]
    missing: set[str] = set()
    names = variables(manifest, values)
    for node in prompt.values():
        node["inputs"] = _substitute(node.get("inputs", {}), names, missing)
    if missing:
        raise Unprocessable(
            f"The workflow uses {{{{{sorted(missing)[0]}}}}} but no input gives it a value.",
            code="workflow_placeholder", details={"placeholders": sorted(missing)},
        )
    inject_lora_pairs(prompt, manifest, values)
    patch_outputs(prompt, job_id)
    return prompt


def patch_outputs(prompt: dict[str, Any], job_id: str) -> None:
    """Every saving node writes into ``studio/<job id>/`` of ComfyUI's output folder."""
    for node in prompt.values():
        class_type = str(node.get("class_type", ""))
        takes_prefix = isinstance(node.get("inputs"), dict) and "filename_prefix" in node["inputs"]
        name = OUTPUT_PREFIXES.get(class_type) or (file_stem(class_type) if takes_prefix else None)
        if name is None:
            continue
        inputs = node.setdefault("inputs", {})
        inputs["filename_prefix"] = f"studio/{job_id}/{name}"
        if node["class_type"] == "VHS_VideoCombine":
            inputs["save_output"] = True


MAX_NODES = 10_000


def value_problems(values: dict[str, Any]) -> dict[str, str]:
    """Parameter values that could never be stored, sent or shown as JSON (NaN, a lone surrogate...).

    ``validate`` never lets such a value through; this is for values that come back from elsewhere
    (a retried job's stored parameters, a preset written by hand).
    """
    problems: dict[str, str] = {}
    for key, value in values.items():
        try:
            jsonio.check_shape(value)
        except jsonio.JSONRefused as err:
            problems[str(key)] = str(err)
            continue
        if isinstance(value, str) and (problem := text_problem(value)):
            problems[str(key)] = problem
    return problems


def prompt_problem(prompt: Any) -> str | None:
    """Why ``prompt`` cannot be sent to ComfyUI as it stands, in words naming the node; None if it can.

    Python's ``json`` would write NaN or infinity and read them back, but nothing else does: such a
    prompt never reaches ComfyUI, whatever put the value there (a workflow file, a stored job).
    """
    if not isinstance(prompt, dict) or not prompt:
        return "it has no nodes"
    if len(prompt) > MAX_NODES:
        return f"it has more than {MAX_NODES} nodes"
    for node_id, node in prompt.items():
        if not isinstance(node_id, str) or not node_id or len(node_id) > 64:
            return f"the node id {str(node_id)[:40]!r} is not usable"
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) or not node["class_type"]:
            return f"node {node_id} has no class_type"
        class_type = node["class_type"][:80]
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            return f"node {node_id} ({class_type}) has no inputs object"
        for name, value in inputs.items():
            try:
                jsonio.check_shape(value)
            except jsonio.JSONRefused as err:
                return f"node {node_id} ({class_type}) input {str(name)[:80]}: {err}"
        try:
            jsonio.check_shape(node)
        except jsonio.JSONRefused as err:
            return f"node {node_id} ({class_type}): {err}"
    try:
        json.dumps(prompt, allow_nan=False)
    except (TypeError, ValueError) as err:
        return f"it cannot be written as JSON ({err})"
    return None

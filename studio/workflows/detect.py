"""Finds a workflow's form: which literal inputs a person will want to set, named as they think.

What decides the form, first match wins: ComfyUI's App Mode (``extra.linearData``), then SwarmUI's
SwarmInput nodes; otherwise the roles the graph gives its literals (``studio.workflows.roles``:
prompts traced from the samplers, sampler settings, size, images, model pickers), where a
``SwarmUI: <parameter>`` title overrides what a value is. Every other literal stays reachable as an
advanced parameter.

Ids never follow the role: a parameter's id is the one the first version of this detector gave that
node input (``legacy_ids``), derived from what the node *is* (its class and title) and never from
its number, so re-importing a workflow, or an edited version of it, keeps each parameter's id and
with it the names, order and defaults a person chose in the mapping editor, even where detection
now understands more of it. Only an id the manifest would refuse (a title starting with a digit)
is replaced, by the same id behind ``p_``.
"""

from __future__ import annotations

import re
from typing import Any

from studio.workflows.families import family, mark_advanced_options
from studio.workflows.graph import Graph
from studio.workflows.markers import CONFIG_FIELDS, SWARM_INPUT, marked_roles, swarm_inputs
from studio.workflows.roles import FOLDER_NAMES, ORDER, ROLE_NAMES, Role, find_roles
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
# Model folders whose pickers the manifest has a type of its own for; other folders are a select
# carrying ``picker: <folder>``.
PICKER_TYPES = {"checkpoints": "checkpoint_picker", "vae": "vae_picker"}
DEFAULT_TITLES = {"CLIP Text Encode (Prompt)", "CLIPTextEncode", ""}
VALID_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    """The first detector's prompt trace (every node with a ``text`` string upstream of a sampler
    input, through any link), kept only because the ids it gave depend on it."""
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


def _literal(prompt: dict[str, Any], node_id: str, field: str) -> bool:
    value = prompt.get(node_id, {}).get("inputs", {}).get(field)
    return value is not None and not (isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt)


def _valid(param_id: str) -> str:
    """An id the manifest accepts, the same one for the same input every time. Long ids stay long:
    workflows imported before already carry them (the manifest sets no length limit)."""
    return param_id if VALID_ID.fullmatch(param_id) else f"p_{param_id}"


def legacy_ids(prompt: dict[str, Any], object_info: dict[str, Any],
               ui: dict[str, Any] | None = None) -> dict[tuple[str, str], str]:
    """The id the first detector gave each literal, made valid for the manifest.

    This is that detector's walk, kept step for step (its roles, its order, its way of telling two
    prompts or two samplers apart by title) because saved mapping edits are keyed by these ids.
    """
    ids: dict[tuple[str, str], str] = {}
    used: set[str] = set()

    def add(node_id: str, field: str, base_id: str) -> None:
        node = prompt[node_id]
        param_id = base_id
        if param_id in used:
            param_id = f"{base_id}_{slug(_title(node) or node['class_type'])}"
            suffix = 2
            while param_id in used:
                param_id, suffix = f"{base_id}_{slug(_title(node))}_{suffix}", suffix + 1
        used.add(param_id)
        ids[(node_id, field)] = param_id

    def literal(node_id: str, field: str) -> bool:
        return _literal(prompt, node_id, field)

    app_mode = _linear_data(ui)
    if app_mode:
        for node_id, field, _config in app_mode:
            if node_id not in prompt or not literal(node_id, field) or (node_id, field) in ids:
                continue
            node = prompt[node_id]
            title = _title(node) or node["class_type"]
            if node["class_type"] in SAMPLERS and field in SAMPLER_FIELDS:
                add(node_id, field, SAMPLER_FIELDS[field][0])
            else:
                add(node_id, field, slug(f"{title}_{field}"))
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
                    add(node_id, "text", slug(title) if text_role is None else f"{text_role}_prompt")
                elif text_role:
                    add(node_id, "text", f"{text_role}_prompt")
            if node["class_type"] in SAMPLERS:
                for field, (base, _name, _forced) in SAMPLER_FIELDS.items():
                    if literal(node_id, field):
                        add(node_id, field, base)
            if node["class_type"] in LATENTS:
                for field in ("width", "height", "batch_size"):
                    if literal(node_id, field):
                        add(node_id, field, field)
            if node["class_type"] in ("LoadImage", "LoadImageMask") and literal(node_id, "image"):
                add(node_id, "image", "image")
            for (class_type, field), (base, _name, _kind) in PICKERS.items():
                if node["class_type"] == class_type and literal(node_id, field):
                    add(node_id, field, base)
    for node_id, node in sorted(prompt.items(), key=lambda item: (item[1]["class_type"], item[0])):
        for field in node.get("inputs", {}):
            spec = _spec(object_info, node["class_type"], field)
            if (node_id, field) in ids or not literal(node_id, field) or field == "filename_prefix":
                continue
            if spec is not None and not is_widget(spec):
                continue
            add(node_id, field, slug(f"{_title(node) or node['class_type']}_{field}"))
    valid: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for key, param_id in ids.items():
        fixed = _valid(param_id)
        if fixed != param_id:  # a new id: it must not take one that exists
            base, suffix = fixed, 2
            while fixed in taken or fixed in used:
                fixed, suffix = f"{base}_{suffix}", suffix + 1
        valid[key] = fixed
        taken.add(fixed)
    return valid


class Form:
    """The inputs found so far, each node input at most once, each under its stable id."""

    def __init__(self, graph: Graph, ids: dict[tuple[str, str], str]) -> None:
        self.graph = graph
        self.ids = ids
        self.inputs: list[dict[str, Any]] = []
        self.claimed: set[tuple[str, str]] = set()

    def _id(self, node_id: str, field: str) -> str:
        known = self.ids.get((node_id, field))
        if known is not None:
            return known
        taken = set(self.ids.values()) | {entry["id"] for entry in self.inputs}
        base = _valid(slug(f"{self.graph.label(node_id)}_{field}"))
        param_id, suffix = base, 2
        while param_id in taken:
            param_id, suffix = f"{base}_{suffix}", suffix + 1
        return param_id

    def add(self, node_id: str, field: str, name: str, kind: str | None = None, *, advanced: bool = False,
            **extra: Any) -> dict[str, Any] | None:
        key = (node_id, field)
        if key in self.claimed or not self.graph.literal(node_id, field):
            return None
        value = self.graph.inputs(node_id)[field]
        entry: dict[str, Any] = {"id": self._id(node_id, field), "name": name[:200],
                                 **_typed(self.graph.spec(node_id, field), value),
                                 "node_id": node_id, "field": field, "default": value}
        if kind is not None and kind != entry["type"]:
            entry["type"] = kind
            for stale in ("options", "min", "max", "step") if kind != "select" else ("min", "max", "step"):
                entry.pop(stale, None)
        if kind == "seed":
            entry["default"] = -1
        entry["advanced"] = advanced
        entry.update(extra)
        self.claimed.add(key)
        self.inputs.append(entry)
        return entry

    def add_role(self, node_id: str, field: str, role: Role, **extra: Any) -> None:
        kind: str | None = None
        if role.kind in ("positive_prompt", "negative_prompt"):
            kind = "text"
        elif role.kind in ("seed", "image"):
            kind = role.kind
            if role.kind == "image":
                extra.setdefault("required", True)
        elif role.kind == "model":
            kind = PICKER_TYPES.get(role.folder or "")
            extra["picker"] = role.folder or "models"
        self.add(node_id, field, role.name, kind, advanced=role.advanced, **extra)

    def rest(self, roles: dict[tuple[str, str], Role]) -> None:
        """Every other literal widget, as an advanced parameter (SwarmInput settings hidden); a model
        file stays a picker of its folder even there, so swapping a model never means typing its name."""
        graph = self.graph
        for node_id in sorted(graph.prompt, key=lambda item: (graph.class_of(item), item)):
            swarm = graph.class_of(node_id).startswith(SWARM_INPUT)
            for field in graph.inputs(node_id):
                spec = graph.spec(node_id, field)
                if field == "filename_prefix" or (spec is not None and not is_widget(spec)):
                    continue
                hidden: dict[str, Any] = {"hidden": True} if swarm and field in CONFIG_FIELDS else {}
                role = roles.get((node_id, field))
                if role is not None and role.kind == "model" and not hidden:
                    self.add_role(node_id, field, Role(role.kind, role.name, True, role.folder))
                    continue
                self.add(node_id, field, f"{graph.title(node_id) or graph.class_of(node_id)}: "
                         f"{field.replace('_', ' ')}", advanced=True, **hidden)

    def unique_names(self) -> None:
        """Two shown inputs never share a name: the second says which node it belongs to."""
        seen: dict[str, int] = {}
        for entry in self.inputs:
            if entry.get("advanced"):
                continue
            name = entry["name"]
            if name in seen:
                label = self.graph.label(entry["node_id"])
                candidate = f"{name} ({label})" if label and label != name else name
                number = 2
                while candidate in seen:
                    candidate, number = f"{name} {number}", number + 1
                entry["name"] = candidate[:200]
            seen[entry["name"]] = 1


def _role_order(graph: Graph) -> Any:
    position = {node_id: index for index, node_id in enumerate(graph.prompt)}
    folders = list(FOLDER_NAMES)

    def key(item: tuple[tuple[str, str], Role]) -> tuple[int, int, int, int]:
        (node_id, _field), role = item
        folder = folders.index(role.folder) if role.folder in folders else len(folders)
        return ORDER.index(role.kind), folder if role.kind == "model" else 0, role.rank, position.get(node_id, 0)

    return key


def detect(prompt: dict[str, Any], object_info: dict[str, Any], ui: dict[str, Any] | None = None) -> list[dict]:
    """Manifest inputs for ``prompt``: the obvious ones first, every other literal as advanced."""
    graph = Graph(prompt, object_info)
    form = Form(graph, legacy_ids(prompt, object_info, ui))
    app_mode = _linear_data(ui)
    swarm = [] if app_mode else swarm_inputs(graph)
    roles = find_roles(prompt, object_info)
    if app_mode:
        for node_id, field, config in app_mode:
            if node_id not in prompt or not graph.literal(node_id, field):
                continue
            described: dict[str, Any] = {}
            if config.get("description"):
                described["description"] = str(config["description"])[:2000]
            role = roles.get((node_id, field))
            title = graph.title(node_id) or graph.class_of(node_id)
            if role is not None:
                form.add_role(node_id, field, Role(role.kind, role.name, False, role.folder), **described)
            elif isinstance(graph.inputs(node_id)[field], str) and field == "text":
                form.add(node_id, field, title, "text", **described)
            else:
                form.add(node_id, field, f"{title}: {field.replace('_', ' ')}", **described)
    elif swarm:
        for item in swarm:
            form.add(item.node_id, item.field, item.name, item.kind, advanced=item.advanced, **item.extra)
    else:
        for key, (kind, name) in marked_roles(graph, ui).items():
            roles[key] = Role(kind, ROLE_NAMES.get(kind, name), False,
                              "checkpoints" if kind == "model" else None, rank=-1)
        for (node_id, field), role in sorted(roles.items(), key=_role_order(graph)):
            form.add_role(node_id, field, role)
    form.rest(roles)
    form.unique_names()
    kinds = {key: role.kind for key, role in roles.items()}
    mark_advanced_options(form.inputs, kinds, family(prompt))
    return _prompt_first(form.inputs, kinds)


def _prompt_first(inputs: list[dict[str, Any]], kinds: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """The prompt before the negative prompt, whatever order the workflow's own form (its app mode,
    its SwarmUI inputs) gave them: every positive prompt moves up to just before the first negative."""
    def kind(entry: dict[str, Any]) -> str | None:
        return kinds.get((entry["node_id"], entry["field"]))

    first_negative = next((i for i, entry in enumerate(inputs) if kind(entry) == "negative_prompt"), None)
    if first_negative is None:
        return inputs
    early = [entry for entry in inputs[first_negative:] if kind(entry) == "positive_prompt"]
    rest = [entry for entry in inputs[first_negative:] if kind(entry) != "positive_prompt"]
    return inputs[:first_negative] + early + rest

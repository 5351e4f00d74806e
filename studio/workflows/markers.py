"""SwarmUI's ways of marking a ComfyUI workflow's inputs, honoured as SwarmUI reads them.

SwarmUI (mcmonkeyprojects/SwarmUI, its ComfyUI backend's workflow-to-parameters code and the
``SwarmInputNodes.py`` node pack) knows two markers:

- **SwarmInput nodes** (``SwarmInputInteger``, ``…Float``, ``…Text``, ``…Boolean``, ``…Dropdown``,
  ``…ModelName``, ``…Checkpoint``, ``…Image``): each is one parameter, its ``title`` widget the
  name, ``value`` the default, with ``description``, ``min``/``max``/``step``, ``order_priority``
  (lower first), ``is_advanced`` and an optional ``SwarmInputGroup`` (whose ``is_advanced`` covers
  its members). When a workflow has any, SwarmUI stops guessing: only they make the form.
- **Primitive nodes titled ``SwarmUI: <parameter>``**: the primitive's value *is* that standard
  parameter (``SwarmUI: Prompt``, ``SwarmUI: Seed``, ``SwarmUI: Width``…); SwarmUI compares the part
  after the colon lowercased with everything but letters and digits removed.

In the API prompt Studio keeps, a frontend PrimitiveNode is gone (its value was copied into what it
feeds), so its title is read from the UI workflow and its one target found through its link; a
backend Primitive node (``PrimitiveInt``, ``PrimitiveStringMultiline``…) keeps its title itself.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from studio.workflows.graph import Graph, link_of
from studio.workflows.subgraphs import link_rows

SWARM_INPUT = "SwarmInput"
MARKER = re.compile(r"^\s*swarmui\s*:(.*)$", re.IGNORECASE)
# SwarmUI's standard parameter ids (its cleaned names) and the role each is in Studio's forms.
STANDARD = {"prompt": "positive_prompt", "negativeprompt": "negative_prompt", "seed": "seed", "steps": "steps",
            "cfgscale": "cfg", "cfg": "cfg", "sampler": "sampler", "scheduler": "scheduler", "width": "width",
            "height": "height", "batchsize": "batch_size", "images": "batch_size", "model": "model",
            "initimage": "image", "denoise": "denoise", "initimagecreativity": "denoise"}
# SwarmInputModelName's subtypes and the model folder each lists.
SUBTYPE_FOLDERS = {"Stable-Diffusion": "checkpoints", "VAE": "vae", "LoRA": "loras", "Embedding": "embeddings",
                   "ControlNet": "controlnet", "ClipVision": "clip_vision"}
# The widgets of a SwarmInput node that configure it rather than feed the workflow.
CONFIG_FIELDS = {"title", "description", "order_priority", "is_advanced", "raw_id", "step", "min", "max", "view_max",
                 "view_type", "subtype", "values", "auto_resize", "group"}


def clean(text: str) -> str:
    """SwarmUI's parameter-name cleaning: lowercase letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass
class SwarmInput:
    node_id: str
    field: str
    name: str
    kind: str  # the manifest type
    advanced: bool
    priority: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def swarm_inputs(graph: Graph) -> list[SwarmInput]:
    """The SwarmInput nodes of the prompt as form inputs, in SwarmUI's order."""
    found: list[SwarmInput] = []
    for order, node_id in enumerate(graph.prompt):
        class_type = graph.class_of(node_id)
        if not class_type.startswith(SWARM_INPUT) or class_type == "SwarmInputGroup":
            continue
        inputs = graph.inputs(node_id)
        title = inputs.get("title") if isinstance(inputs.get("title"), str) and inputs["title"].strip() else None
        name = (title or graph.label(node_id)).strip()[:200]
        advanced = inputs.get("is_advanced") is True
        group = link_of(inputs.get("group"))
        if group is not None and group[0] in graph.prompt and graph.inputs(group[0]).get("is_advanced") is True:
            advanced = True
        extra: dict[str, Any] = {}
        if isinstance(inputs.get("description"), str) and inputs["description"].strip():
            extra["description"] = inputs["description"].strip()[:2000]
        kind, target = _kind(graph, node_id, class_type, extra)
        if kind is None or not graph.literal(node_id, target):
            continue
        found.append(SwarmInput(node_id, target, name, kind, advanced,
                                _number(inputs.get("order_priority")) + order * 1e-6, extra))
    return sorted(found, key=lambda item: item.priority)


def _kind(graph: Graph, node_id: str, class_type: str, extra: dict[str, Any]) -> tuple[str | None, str]:
    inputs = graph.inputs(node_id)
    short = class_type[len(SWARM_INPUT):]
    if short in ("Integer", "Float"):
        if inputs.get("view_type") == "seed":
            return "seed", "value"
        for key in ("min", "max", "step"):
            if isinstance(inputs.get(key), int | float) and not isinstance(inputs[key], bool) \
                    and abs(inputs[key]) < 2**53:
                extra[key] = inputs[key]
        return ("int" if short == "Integer" else "float"), "value"
    if short == "Text":
        return "text", "value"
    if short == "Boolean":
        return "boolean", "value"
    if short == "Checkpoint":
        extra["picker"] = "checkpoints"
        return "checkpoint_picker", "value"
    if short == "ModelName":
        extra["picker"] = SUBTYPE_FOLDERS.get(str(inputs.get("subtype")), "models")
        return "text", "value"
    if short == "Dropdown":
        values = [v.strip() for v in str(inputs.get("values") or "").split(",") if v.strip()]
        if len(values) <= 1:  # SwarmUI then lists what the dropdown it feeds offers
            for target, target_field in graph.consumers(node_id, 1):
                spec = graph.spec(target, target_field)
                if spec and isinstance(spec[0], list):
                    values = [str(v) for v in spec[0]]
                elif spec and spec[0] == "COMBO":
                    values = [str(v) for v in graph.options(target, target_field).get("options") or []]
                break
        extra["options"] = [{"label": value, "value": value} for value in values[:500]]
        return "select", "value"
    if short == "Image":
        extra["required"] = True
        return "image", "image"
    return None, "value"


def marked_roles(graph: Graph, ui: dict[str, Any] | None) -> dict[tuple[str, str], tuple[str, str]]:
    """``(node, input) → (role, name)`` for every value a ``SwarmUI: …`` title marks."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for node_id in graph.prompt:  # backend primitives keep their title in the prompt
        match = MARKER.match(graph.title(node_id))
        if match and graph.class_of(node_id).startswith("Primitive") and graph.literal(node_id, "value"):
            role = STANDARD.get(clean(match.group(1)))
            if role:
                found[(node_id, "value")] = (role, match.group(1).strip() or role)
    nodes = (ui or {}).get("nodes")
    if not isinstance(nodes, list):
        return found
    by_id = {str(node.get("id")): node for node in nodes if isinstance(node, dict)}
    try:
        links = link_rows((ui or {}).get("links") or [])
    except (TypeError, ValueError, KeyError, IndexError):
        return found
    for node in by_id.values():
        match = MARKER.match(str(node.get("title") or "")) if node.get("type") == "PrimitiveNode" else None
        role = STANDARD.get(clean(match.group(1))) if match else None
        if role is None:
            continue
        targets = [(str(row[3]), row[4]) for row in links.values() if str(row[1]) == str(node.get("id"))]
        if len(targets) != 1:
            continue  # one form value can set one input; a primitive feeding several stays as it is
        target_id, slot = targets[0]
        target = by_id.get(target_id)
        slots = target.get("inputs") if isinstance(target, dict) else None
        if not isinstance(slots, list) or not isinstance(slot, int) or not 0 <= slot < len(slots) \
                or not isinstance(slots[slot], dict):
            continue
        name = slots[slot].get("widget", {}).get("name") if isinstance(slots[slot].get("widget"), dict) else None
        field_name = str(name or slots[slot].get("name") or "")
        if target_id in graph.prompt and graph.literal(target_id, field_name):
            found[(target_id, field_name)] = (role, match.group(1).strip() if match else role)
    return found

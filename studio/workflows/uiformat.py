"""Converts ComfyUI's UI-format workflow (what the editor saves) into the API format it runs.

Only the frontend does this in ComfyUI itself, with the node definitions from ``/object_info``:
``widgets_values`` are positional, and some widgets carry extra values that are not inputs
(``control_after_generate`` after a seed, the upload button after LoadImage's file). Reroutes are
followed, PrimitiveNode values are copied into their targets, muted nodes are dropped and bypassed
nodes are bridged (a consumer gets the bypassed node's input of the same type).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import Unprocessable
from studio.workflows.subgraphs import flatten, link_rows

MUTED, BYPASSED = 2, 4
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "PrimitiveString", "Label (rgthree)"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Reroutes and bypassed nodes followed from one input before the links are taken to go round in a loop.
MAX_HOPS = 64


def _loop() -> Unprocessable:
    return Unprocessable("The workflow's links go round in a loop (through reroutes or bypassed nodes).",
                         code="link_loop")


@dataclass(frozen=True)
class Link:
    origin: str
    slot: int
    target: str
    target_slot: int
    type: str


def _links(workflow: dict[str, Any]) -> dict[str, Link]:
    return {link_id: Link(row[1], row[2], row[3], row[4], str(row[5]))
            for link_id, row in link_rows(workflow.get("links") or []).items()}


def _order(node_id: str) -> tuple[int, ...]:
    """Numeric order for ids like ``12`` and ``5:3`` (subgraph members)."""
    return tuple(int(part) if part.lstrip("-").isdigit() else 0 for part in node_id.split(":"))


def is_widget(spec: list[Any]) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_names(info: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """Inputs that are widgets, in the order the editor lays out their values."""
    order = info.get("input_order") or {k: list(v) for k, v in info.get("input", {}).items()}
    found = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = info["input"].get(section, {}).get(name)
            if spec and is_widget(spec):
                found.append((name, spec))
    return found


def convert(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    workflow = flatten(workflow)
    nodes = {str(node["id"]): node for node in workflow.get("nodes") or []}
    links = _links(workflow)
    unknown = sorted({n["type"] for n in nodes.values()
                      if n["type"] not in object_info and n["type"] not in FRONTEND_ONLY
                      and n.get("mode", 0) not in (MUTED, BYPASSED)})
    if unknown:
        raise Unprocessable(f"ComfyUI does not know these nodes: {', '.join(unknown)}. Install them first.",
                            code="unknown_nodes", details={"nodes": unknown})

    def source(link_id: Any, wanted_type: str | None = None, depth: int = 0) -> tuple[str, int] | None:
        """Where a link really comes from, through reroutes and bypassed nodes; None if nowhere."""
        if link_id is None or str(link_id) not in links:
            return None
        if depth > MAX_HOPS:
            raise _loop()
        link = links[str(link_id)]
        origin = nodes.get(link.origin)
        if origin is None or origin.get("mode", 0) == MUTED:
            return None
        if origin["type"] == "Reroute":
            upstream = (origin.get("inputs") or [{}])[0].get("link")
            return source(upstream, wanted_type or link.type, depth + 1)
        if origin.get("mode", 0) == BYPASSED:
            wanted = wanted_type or link.type
            for candidate in origin.get("inputs") or []:
                if candidate.get("link") is not None and candidate.get("type") in (wanted, "*"):
                    return source(candidate["link"], wanted, depth + 1)
            return None
        return link.origin, link.slot

    def primitive_value(link_id: Any, depth: int = 0) -> tuple[bool, Any]:
        if link_id is None or str(link_id) not in links:
            return False, None
        if depth > MAX_HOPS:
            raise _loop()
        origin = nodes.get(links[str(link_id)].origin)
        if origin is not None and origin["type"] in ("PrimitiveNode", "PrimitiveString"):
            values = origin.get("widgets_values") or [None]
            return True, values[0] if isinstance(values, list) else next(iter(values.values()), None)
        if origin is not None and origin["type"] == "Reroute":
            return primitive_value((origin.get("inputs") or [{}])[0].get("link"), depth + 1)
        return False, None

    prompt: dict[str, Any] = {}
    for node_id, node in sorted(nodes.items(), key=lambda item: _order(item[0])):
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (MUTED, BYPASSED):
            continue
        info = object_info[node["type"]]
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        linked = {slot.get("name"): slot.get("link") for slot in node.get("inputs") or []}
        if isinstance(values, dict):
            for name, _spec in widget_names(info):
                if name in values:
                    inputs[name] = values[name]
        else:
            queue = list(values or [])
            for name, spec in widget_names(info):
                if not queue:
                    break
                inputs[name] = queue.pop(0)
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if options.get("control_after_generate") and queue and isinstance(queue[0], str):
                    queue.pop(0)
                if options.get("image_upload") and queue and queue[0] in ("image", "upload", None):
                    queue.pop(0)
        for name, link_id in linked.items():
            if link_id is None:
                continue
            is_primitive, value = primitive_value(link_id)
            if is_primitive:
                inputs[name] = value
                continue
            found = source(link_id)
            if found is None:
                inputs.pop(name, None)
            else:
                inputs[name] = [found[0], found[1]]
        title = node.get("title") or info.get("display_name") or node["type"]
        prompt[node_id] = {"class_type": node["type"], "inputs": inputs, "_meta": {"title": title}}
    return prompt

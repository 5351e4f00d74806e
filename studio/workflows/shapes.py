"""The shapes a workflow file must have before anything reads it, each failure said in words.

A workflow comes from a person's upload, a PNG's metadata or a folder on disk: any of them can hold
a node that is not an object, a ``class_type`` that is a list, links that are numbers, text nested
50,000 deep. The converter, the detector and the engine all index into these structures, so they
are checked here once, up front, and whatever is wrong is named (``nodes[3].widgets_values must be
a list``) instead of surfacing later as a crash.
"""

from __future__ import annotations

from typing import Any

from studio import jsonio

MAX_NODES = 5000
MAX_LINKS = 20000
MAX_ID = 64
MAX_CLASS = 200
MAX_SUBGRAPHS = 500
# Values in one document. YAML anchors can make a small file a huge tree of shared references.
MAX_VALUES = 1_000_000


class ShapeError(ValueError):
    """A workflow whose structure cannot be used; the message names the part."""


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
        raise ShapeError(f"{where} must be a number or a text id")
    text = str(value)
    if len(text) > MAX_ID:
        raise ShapeError(f"{where} is longer than {MAX_ID} characters")
    return text


def _class(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ShapeError(f"{where} must be a node class name (text)")
    if len(value) > MAX_CLASS:
        raise ShapeError(f"{where} is longer than {MAX_CLASS} characters")
    return value


def check_tree(value: Any, what: str) -> None:
    """Depth, numbers and text of the whole document (NaN, 10**400, lone surrogates are refused)."""
    stack, seen = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ShapeError(f"the {what} holds more than {MAX_VALUES} values")
        if isinstance(item, dict | list) and depth > jsonio.MAX_DEPTH:
            raise ShapeError(f"the {what} is not usable: nested deeper than {jsonio.MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    try:
        jsonio.check_shape(value)
    except jsonio.JSONRefused as err:
        raise ShapeError(f"the {what} is not usable: {err}") from err


def check_api_prompt(prompt: Any, what: str = "workflow") -> dict[str, Any]:
    """An API-format prompt: ``{node id: {"class_type": str, "inputs": {...}, "_meta"?: {...}}}``."""
    if not isinstance(prompt, dict) or not prompt:
        raise ShapeError(f"the {what} has no nodes")
    if len(prompt) > MAX_NODES:
        raise ShapeError(f"the {what} has more than {MAX_NODES} nodes")
    check_tree(prompt, what)
    for node_id, node in prompt.items():
        where = f"node {str(node_id)[:MAX_ID]}"
        _id(node_id, f"the node id {str(node_id)[:MAX_ID]!r}")
        if not isinstance(node, dict):
            raise ShapeError(f"{where} must be an object")
        _class(node.get("class_type"), f"{where}: class_type")
        if not isinstance(node.get("inputs", {}), dict):
            raise ShapeError(f"{where}: inputs must be an object")
        for name in node.get("inputs", {}):
            if not isinstance(name, str) or not name or len(name) > MAX_CLASS:
                raise ShapeError(f"{where}: an input name is not usable")
        if not isinstance(node.get("_meta", {}), dict):
            raise ShapeError(f"{where}: _meta must be an object")
        if not isinstance((node.get("_meta") or {}).get("title", ""), str):
            raise ShapeError(f"{where}: _meta.title must be text")
    return prompt


def _check_slots(slots: Any, where: str, *, linked: bool) -> None:
    if slots is None:
        return
    if not isinstance(slots, list):
        raise ShapeError(f"{where} must be a list")
    for index, slot in enumerate(slots):
        if not isinstance(slot, dict):
            raise ShapeError(f"{where}[{index}] must be an object")
        if slot.get("name") is not None and not isinstance(slot["name"], str):
            raise ShapeError(f"{where}[{index}].name must be text")
        if slot.get("type") is not None and not isinstance(slot["type"], str | int):
            raise ShapeError(f"{where}[{index}].type must be text")
        if linked and slot.get("link") is not None:
            _id(slot["link"], f"{where}[{index}].link")
        if not linked and slot.get("links") is not None and not isinstance(slot["links"], list):
            raise ShapeError(f"{where}[{index}].links must be a list")


def _check_nodes(nodes: Any, where: str) -> None:
    if not isinstance(nodes, list):
        raise ShapeError(f"{where} must be a list")
    if len(nodes) > MAX_NODES:
        raise ShapeError(f"{where} has more than {MAX_NODES} nodes")
    for index, node in enumerate(nodes):
        at = f"{where}[{index}]"
        if not isinstance(node, dict):
            raise ShapeError(f"{at} must be an object")
        if "id" not in node:
            raise ShapeError(f"{at} has no id")
        _id(node["id"], f"{at}.id")
        _class(node.get("type"), f"{at}.type")
        values = node.get("widgets_values")
        if values is not None and not isinstance(values, list | dict):
            raise ShapeError(f"{at}.widgets_values must be a list")
        mode = node.get("mode", 0)
        if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int)):
            raise ShapeError(f"{at}.mode must be a number")
        if node.get("title") is not None and not isinstance(node["title"], str):
            raise ShapeError(f"{at}.title must be text")
        _check_slots(node.get("inputs"), f"{at}.inputs", linked=True)
        _check_slots(node.get("outputs"), f"{at}.outputs", linked=False)


def _slot_number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < 10_000:
        raise ShapeError(f"{where} must be a slot number")


def _check_links(links: Any, where: str) -> None:
    if links is None:
        return
    if not isinstance(links, list):
        raise ShapeError(f"{where} must be a list")
    if len(links) > MAX_LINKS:
        raise ShapeError(f"{where} has more than {MAX_LINKS} links")
    for index, link in enumerate(links):
        at = f"{where}[{index}]"
        if link is None:  # the editor leaves a null where a link was deleted
            continue
        if isinstance(link, list):
            if len(link) < 6:
                raise ShapeError(f"{at} must be [id, origin, slot, target, slot, type]")
            _id(link[0], f"{at} id")
            _id(link[1], f"{at} origin")
            _slot_number(link[2], f"{at} origin slot")
            _id(link[3], f"{at} target")
            _slot_number(link[4], f"{at} target slot")
        elif isinstance(link, dict):
            for key in ("id", "origin_id", "target_id"):
                if key not in link:
                    raise ShapeError(f"{at} has no {key}")
                _id(link[key], f"{at}.{key}")
            _slot_number(link.get("origin_slot"), f"{at}.origin_slot")
            _slot_number(link.get("target_slot"), f"{at}.target_slot")
        else:
            raise ShapeError(f"{at} must be a list or an object")


def check_ui_workflow(workflow: Any) -> dict[str, Any]:
    """A UI-format workflow (what ComfyUI's editor saves), subgraph definitions included."""
    if not isinstance(workflow, dict):
        raise ShapeError("the workflow must be an object")
    check_tree(workflow, "workflow")
    _check_nodes(workflow.get("nodes"), "nodes")
    _check_links(workflow.get("links"), "links")
    if workflow.get("extra") is not None and not isinstance(workflow["extra"], dict):
        raise ShapeError("extra must be an object")
    definitions = workflow.get("definitions")
    if definitions is None:
        return workflow
    if not isinstance(definitions, dict):
        raise ShapeError("definitions must be an object")
    subgraphs = definitions.get("subgraphs")
    if subgraphs is None:
        return workflow
    if not isinstance(subgraphs, list) or len(subgraphs) > MAX_SUBGRAPHS:
        raise ShapeError("definitions.subgraphs must be a list")
    for index, subgraph in enumerate(subgraphs):
        at = f"definitions.subgraphs[{index}]"
        if not isinstance(subgraph, dict) or "id" not in subgraph:
            raise ShapeError(f"{at} must be an object with an id")
        if not isinstance(subgraph["id"], str | int) or isinstance(subgraph["id"], bool):
            raise ShapeError(f"{at}.id must be text")
        _check_nodes(subgraph.get("nodes") or [], f"{at}.nodes")
        _check_links(subgraph.get("links"), f"{at}.links")
    return workflow


__all__ = ["ShapeError", "check_api_prompt", "check_ui_workflow", "check_tree"]

"""Flattens ComfyUI subgraphs (``definitions.subgraphs``) so the converter sees one plain graph.

A node whose ``type`` is a subgraph's id is an instance: its inner nodes are copied in with ids
``<instance>:<inner>`` (the form ComfyUI's own API export uses), links from the subgraph's input
node (id -10) start where the instance's inputs were fed from, and consumers of the instance's
outputs are rewired to whatever reaches the subgraph's output node (id -20). Nested subgraphs are
flattened from the outside in.
"""

from __future__ import annotations

import copy
from typing import Any

from studio.errors import Unprocessable

INPUT_NODE, OUTPUT_NODE = -10, -20
MAX_DEPTH = 16
# A subgraph that holds several instances of itself doubles the graph at every level.
MAX_FLAT_NODES = 5000


def link_rows(raw_links: list[Any]) -> dict[str, list[Any]]:
    """Links as ``{id: [id, origin, origin_slot, target, target_slot, type]}`` with string ids."""
    rows: dict[str, list[Any]] = {}
    for raw in raw_links or []:
        if isinstance(raw, list) and len(raw) >= 6:
            rows[str(raw[0])] = [str(raw[0]), str(raw[1]), int(raw[2]), str(raw[3]), int(raw[4]), raw[5]]
        elif isinstance(raw, dict):
            rows[str(raw["id"])] = [str(raw["id"]), str(raw["origin_id"]), int(raw["origin_slot"]),
                                    str(raw["target_id"]), int(raw["target_slot"]), raw.get("type", "*")]
    return rows


def flatten(workflow: dict[str, Any]) -> dict[str, Any]:
    definitions = {str(sg["id"]): sg for sg in (workflow.get("definitions") or {}).get("subgraphs") or []}
    nodes = [dict(node, id=str(node["id"])) for node in workflow.get("nodes") or []]
    links = link_rows(workflow.get("links") or [])
    for _ in range(MAX_DEPTH):
        instances = [node for node in nodes if str(node.get("type")) in definitions]
        if not instances:
            return {**workflow, "nodes": nodes, "links": list(links.values()), "definitions": {}}
        for instance in instances:
            nodes, links = _expand(instance, definitions[str(instance["type"])], nodes, links)
            if len(nodes) > MAX_FLAT_NODES:
                raise Unprocessable(f"Its subgraphs expand to more than {MAX_FLAT_NODES} nodes.",
                                    code="subgraphs_too_large")
    raise Unprocessable("Subgraphs are nested too deeply to flatten.", code="subgraphs_too_deep")


def _expand(
    instance: dict[str, Any], subgraph: dict[str, Any], nodes: list[dict[str, Any]], links: dict[str, list[Any]]
) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    prefix = f"{instance['id']}:"
    feeding = {slot: links.get(str(entry.get("link"))) for slot, entry in enumerate(instance.get("inputs") or [])}
    inner_links = link_rows(subgraph.get("links") or [])
    outputs: dict[int, tuple[str, int]] = {}
    added: dict[str, list[Any]] = {}
    for link_id, (_, origin, origin_slot, target, target_slot, kind) in inner_links.items():
        if target == str(OUTPUT_NODE):
            if origin == str(INPUT_NODE):  # an input passed straight through
                source = feeding.get(origin_slot)
                if source is not None:
                    outputs[target_slot] = (source[1], source[2])
            else:
                outputs[target_slot] = (prefix + origin, origin_slot)
            continue
        if origin == str(INPUT_NODE):
            source = feeding.get(origin_slot)
            if source is None:
                continue
            origin, origin_slot = source[1], source[2]
        else:
            origin = prefix + origin
        added[prefix + link_id] = [prefix + link_id, origin, origin_slot, prefix + target, target_slot, kind]
    inner_nodes = []
    for inner in subgraph.get("nodes") or []:
        copied = copy.deepcopy(inner)
        copied["id"] = prefix + str(inner["id"])
        for slot in copied.get("inputs") or []:
            if slot.get("link") is not None:
                slot["link"] = prefix + str(slot["link"]) if prefix + str(slot["link"]) in added else None
        inner_nodes.append(copied)
    kept: dict[str, list[Any]] = {}
    for link_id, row in links.items():
        if row[3] == instance["id"]:
            continue  # replaced by the inner links above
        if row[1] == instance["id"]:
            target = outputs.get(row[2])
            if target is None:
                continue
            row = [row[0], target[0], target[1], row[3], row[4], row[5]]
        kept[link_id] = row
    kept.update(added)
    live_links = set(kept)
    remaining = []
    for node in nodes:
        if node is instance:
            continue
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None and str(slot["link"]) not in live_links:
                slot["link"] = None
        remaining.append(node)
    return remaining + inner_nodes, kept

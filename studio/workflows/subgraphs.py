"""The graphs of a UI workflow: the root graph and each subgraph definition (``definitions.subgraphs``).

ComfyUI's editor never copies a subgraph's nodes out: each instance (a node whose ``type`` is a
subgraph's id) refers to the one definition, and when it builds the prompt it walks into it,
naming the inner nodes ``<instance>:<inner>`` (nested instances add one more part each). A link
that starts at the subgraph's input node (id -10) leaves through the instance's input *of the
same name* (the instance's saved inputs may be fewer, or in another order, than the definition's),
and a link into its output node (id -20) is what the instance's output of that slot gives.
This module reads those graphs; ``uiformat`` walks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.errors import Unprocessable

INPUT_NODE, OUTPUT_NODE = "-10", "-20"
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


@dataclass(frozen=True)
class Link:
    origin: str
    slot: int
    target: str
    target_slot: int
    type: Any


@dataclass
class Graph:
    """One graph: the root, or a subgraph definition (then ``inputs``/``outputs`` name its sockets)."""

    id: str
    nodes: dict[str, dict[str, Any]]
    links: dict[str, Link]
    inputs: list[str] | None = None  # the definition's input names by slot; None for the root or if unsaid
    output_links: dict[int, Link] = field(default_factory=dict)  # output slot → the link into it
    promoted: list[int] = field(default_factory=list)  # input slots that feed an inner widget, in order


def _graph(graph_id: str, raw: dict[str, Any], *, subgraph: bool, renumbered: dict[str, str] | None = None) -> Graph:
    new = renumbered or {}
    nodes = {new.get(str(node["id"]), str(node["id"])): node for node in raw.get("nodes") or []}
    rows = link_rows(raw.get("links") or [])
    links = {key: Link(new.get(row[1], row[1]), row[2], new.get(row[3], row[3]), row[4], row[5])
             for key, row in rows.items()}
    graph = Graph(graph_id, nodes, links)
    if subgraph:
        declared = raw.get("inputs")
        if isinstance(declared, list) and declared:
            graph.inputs = [str(entry.get("name")) if isinstance(entry, dict) else "" for entry in declared]
        graph.output_links = {link.target_slot: link for link in links.values() if link.target == OUTPUT_NODE}
        graph.promoted = sorted({link.slot for link in links.values()
                                 if link.origin == INPUT_NODE and _feeds_widget(nodes.get(link.target), link)})
    return graph


def _feeds_widget(node: dict[str, Any] | None, link: Link) -> bool:
    inputs = (node or {}).get("inputs") or []
    return 0 <= link.target_slot < len(inputs) and bool(inputs[link.target_slot].get("widget"))


def read_graphs(workflow: dict[str, Any]) -> tuple[Graph, dict[str, Graph]]:
    """The root graph and the subgraph definitions by id, inner node ids made unique the editor's way.

    All graphs of a workflow share one space of node ids in the editor: loading it, a subgraph node
    whose id is already taken (by the root graph or an earlier subgraph) gets the next free number
    after the workflow's ``last_node_id``, and the prompt names it by that new id."""
    root = _graph("", workflow, subgraph=False)
    taken = set(root.nodes)
    state: dict[str, Any] = workflow["state"] if isinstance(workflow.get("state"), dict) else {}
    numbers = [n for n in (workflow.get("last_node_id"), state.get("lastNodeId"), *map(_number, taken))
               if isinstance(n, int) and not isinstance(n, bool)]
    last = max(numbers, default=0)
    definitions = {}
    for raw in (workflow.get("definitions") or {}).get("subgraphs") or []:
        renumbered: dict[str, str] = {}
        for node in raw.get("nodes") or []:
            node_id = str(node["id"])
            if node_id in taken:
                last += 1
                renumbered[node_id] = node_id = str(last)
            taken.add(node_id)
        definitions[str(raw["id"])] = _graph(str(raw["id"]), raw, subgraph=True, renumbered=renumbered)
    return root, definitions


def _number(node_id: str) -> int | None:
    return int(node_id) if node_id.isdigit() else None


def instance_input(instance: dict[str, Any], definition: Graph, slot: int) -> tuple[int, dict[str, Any]] | None:
    """The instance's input that feeds the definition's input ``slot``: by name, by position if unnamed."""
    inputs = instance.get("inputs") or []
    if definition.inputs is not None:
        if slot >= len(definition.inputs):
            return None
        name = definition.inputs[slot]
        for index, entry in enumerate(inputs):
            if entry.get("name") == name:
                return index, entry
        return None
    return (slot, inputs[slot]) if slot < len(inputs) else None


def promoted_value(instance: dict[str, Any], definition: Graph, slot: int) -> tuple[bool, Any]:
    """The value an instance's own widget holds for the definition's input ``slot``, if it has one.

    An instance draws a widget for every input of its subgraph that feeds an inner widget, and
    saves their values in its own ``widgets_values``, one each, in the definition's input order;
    an instance that saves none shows the inner widgets themselves (``proxyWidgets``)."""
    values = instance.get("widgets_values")
    if not isinstance(values, list) or not values or slot not in definition.promoted:
        return False, None
    index = definition.promoted.index(slot)
    return (True, values[index]) if index < len(values) else (False, None)


def too_large() -> Unprocessable:
    return Unprocessable(f"Its subgraphs expand to more than {MAX_FLAT_NODES} nodes.", code="subgraphs_too_large")


def too_deep() -> Unprocessable:
    return Unprocessable("Subgraphs are nested too deeply to flatten.", code="subgraphs_too_deep")

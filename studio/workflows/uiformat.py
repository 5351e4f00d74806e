"""Converts ComfyUI's UI-format workflow (what the editor saves) into the API format it runs.

Only ComfyUI's editor does this (``graphToPrompt``), with the node definitions from
``/object_info``, and Studio follows it step by step so that an imported workflow runs exactly as
it would from the editor: every node's widgets are rebuilt and given their saved values
(``widgets``); PrimitiveNodes first write their value into the widgets they feed; then every
input's link is followed to the node that really produces it, through reroutes, bypassed nodes
(the first input of a matching type stands in for the output) and subgraph boundaries
(``subgraphs``). Muted and bypassed nodes, frontend-only nodes and the inside of a muted or
bypassed instance of the root graph are left out (an instance nested in another is walked into
whatever its mode, as the editor does), and a link to a node that is left out is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import Unprocessable
from studio.workflows.subgraphs import (
    INPUT_NODE,
    MAX_DEPTH,
    MAX_FLAT_NODES,
    Graph,
    instance_input,
    promoted_value,
    read_graphs,
    too_deep,
    too_large,
)
from studio.workflows.widgets import Widget, load_widgets

MUTED, BYPASSED = 2, 4
# Nodes only the editor has (when /object_info does not list them): they never reach the prompt.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "Label (rgthree)"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Links followed from one input (reroutes, bypassed nodes, subgraph boundaries) before it is a loop.
MAX_HOPS = 256


def _loop() -> Unprocessable:
    return Unprocessable("The workflow's links go round in a loop (through reroutes or bypassed nodes).",
                         code="link_loop")


def is_widget(spec: list[Any]) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def valid_connection(a: Any, b: Any) -> bool:
    """The editor's type check: a wildcard or empty type fits anything, lists fit if they share one."""
    if not a or not b or a == "*" or b == "*":
        return True
    left, right = str(a).lower(), str(b).lower()
    if left == right:
        return True
    return bool(set(left.split(",")) & set(right.split(",")))


@dataclass
class Node:
    """One node of the walked graph: where it sits (``id`` is its execution id) and what it is."""

    id: str
    raw: dict[str, Any]
    graph: Graph
    path: str  # the execution id prefix of its graph ("" at the root, "12:" inside instance 12)
    parent: Node | None  # the subgraph instance holding it
    definition: Graph | None = None  # set when this node is a subgraph instance

    @property
    def mode(self) -> Any:
        return self.raw.get("mode", 0)

    def input(self, slot: int) -> dict[str, Any] | None:
        inputs = self.raw.get("inputs") or []
        return inputs[slot] if 0 <= slot < len(inputs) else None

    def output_type(self, slot: int) -> Any:
        outputs = self.raw.get("outputs") or []
        return outputs[slot].get("type") if 0 <= slot < len(outputs) else None


@dataclass(frozen=True)
class Value:
    """An input that resolves to a widget value rather than to another node's output."""

    value: Any


Resolved = tuple[str, int] | Value | None


class Converter:
    def __init__(self, workflow: dict[str, Any], object_info: dict[str, Any]) -> None:
        self.object_info = object_info
        self.root, self.definitions = read_graphs(workflow)
        self.nodes: dict[str, Node] = {}
        self.hops = 0
        self.overrides: dict[tuple[str, str], dict[str, Any]] = {}
        self.loaded: dict[str, list[Widget]] = {}

    def virtual(self, node: dict[str, Any]) -> bool:
        return node.get("type") not in self.object_info and node.get("type") in FRONTEND_ONLY

    # ------------------------------------------------------------------ the walk into subgraphs

    def expand(self, graph: Graph, path: str, parent: Node | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise too_deep()
        for node_id, raw in graph.nodes.items():
            node = Node(path + node_id, raw, graph, path, parent)
            self.nodes[node.id] = node
            if len(self.nodes) > MAX_FLAT_NODES:
                raise too_large()
            definition = self.definitions.get(str(raw.get("type")))
            if definition is not None:
                node.definition = definition
                # Only a muted or bypassed instance of the root graph hides its inside: the editor
                # walks into every instance nested in an expanded one, whatever its mode, and
                # sends each inner node its own mode lets through.
                if parent is not None or node.mode not in (MUTED, BYPASSED):
                    self.expand(definition, node.id + ":", node, depth + 1)

    def unknown(self) -> list[str]:
        """The node types that would run and that ComfyUI does not know (a node pack not installed)."""
        return sorted({str(n.raw.get("type")) for n in self.nodes.values()
                       if n.definition is None and n.raw.get("type") not in self.object_info
                       and not self.virtual(n.raw) and n.mode not in (MUTED, BYPASSED)})

    def check_known(self) -> None:
        unknown = self.unknown()
        if unknown:
            raise Unprocessable(f"ComfyUI does not know these nodes: {', '.join(unknown)}. Install them first.",
                                code="unknown_nodes", details={"nodes": unknown})

    # ------------------------------------------------------------------ following links

    def step(self) -> None:
        self.hops += 1
        if self.hops > MAX_HOPS:
            raise _loop()

    def resolve_input(self, node: Node, slot: int, wanted: Any = None) -> Resolved:
        """Where input ``slot`` of ``node`` really comes from; None when nothing (or nothing kept) feeds it."""
        self.step()
        entry = node.input(slot)
        if entry is None or entry.get("link") is None:
            return None
        link = node.graph.links.get(str(entry["link"]))
        if link is None:
            return None
        if link.origin == INPUT_NODE and node.parent is not None:
            instance = node.parent
            assert instance.definition is not None
            found = instance_input(instance.raw, instance.definition, link.slot)
            if found is None or found[1].get("link") is None:  # nothing feeds the instance's input
                return self.instance_widget(instance, link.slot)
            return self.resolve_input(instance, found[0])
        origin = self.nodes.get(node.path + link.origin)
        if origin is None:
            return None
        return self.resolve_output(origin, link.slot, wanted if wanted is not None else entry.get("type"))

    def resolve_output(self, node: Node, slot: int, wanted: Any) -> Resolved:
        self.step()
        if node.mode == BYPASSED:
            index = self.bypass_slot(node, slot, wanted)
            return None if index < 0 else self.resolve_input(node, index)
        if node.definition is not None:
            link = node.definition.output_links.get(slot)
            if link is None:
                return None
            if link.origin == INPUT_NODE:  # an input passed straight through
                found = instance_input(node.raw, node.definition, link.slot)
                return None if found is None else self.resolve_input(node, found[0], wanted)
            inner = self.nodes.get(f"{node.id}:{link.origin}")
            return None if inner is None else self.resolve_output(inner, link.slot, wanted)
        if self.virtual(node.raw):
            return self.resolve_input(node, slot, wanted) if node.input(slot) is not None else None
        return node.id, slot

    def instance_widget(self, instance: Node, slot: int) -> Value | None:
        """The value of the widget an instance shows for its subgraph's input ``slot``, if it shows one:
        its own saved value, or else that of the inner widget it stands for (``proxyWidgets``)."""
        assert instance.definition is not None
        has_value, value = promoted_value(instance.raw, instance.definition, slot)
        if has_value:
            return Value(value)
        for link in instance.definition.links.values():
            inner = self.nodes.get(f"{instance.id}:{link.target}")
            if link.origin != INPUT_NODE or link.slot != slot or inner is None or inner.definition is not None:
                continue
            entry = inner.input(link.target_slot) or {}
            name = (entry.get("widget") or {}).get("name")
            if name and inner.raw.get("type") in self.object_info:
                for widget in self.widgets(inner):
                    if widget.name == name:
                        return Value(widget.value)
        return None

    def bypass_slot(self, node: Node, slot: int, wanted: Any) -> int:
        """The input a bypassed node passes on for output ``slot``: the same slot if its type fits, else
        the first of exactly the wanted type, else the first that fits."""
        inputs = node.raw.get("inputs") or []
        if wanted in ("*", ""):
            return slot if len(inputs) > slot else 0
        produced = node.output_type(slot)
        same = node.input(slot)
        if same is not None and valid_connection(same.get("type"), produced) \
                and valid_connection(same.get("type"), wanted):
            return slot
        for index, entry in enumerate(inputs):
            if entry.get("type") == wanted:
                return index
        for index, entry in enumerate(inputs):
            if valid_connection(entry.get("type"), produced) and valid_connection(entry.get("type"), wanted):
                return index
        return -1

    # ------------------------------------------------------------------ the prompt

    def primitive_values(self) -> dict[tuple[str, str], dict[str, Any]]:
        """What PrimitiveNodes write into the widgets they feed before the prompt is made."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for graph in [self.root, *self.definitions.values()]:
            for node_id, raw in graph.nodes.items():
                if raw.get("type") != "PrimitiveNode" or not self.virtual(raw):
                    continue
                values = raw.get("widgets_values")
                if isinstance(values, dict):
                    values = list(values.values())
                if not values:
                    continue
                for link in graph.links.values():
                    if link.origin != node_id:
                        continue
                    target = graph.nodes.get(link.target)
                    inputs = (target or {}).get("inputs") or []
                    if not 0 <= link.target_slot < len(inputs):
                        continue
                    entry = inputs[link.target_slot]
                    name = (entry.get("widget") or {}).get("name") or entry.get("name")
                    found.setdefault((graph.id, link.target), {})[str(name)] = values[0]
        return found

    def widgets(self, node: Node) -> list[Widget]:
        """The node's widgets with their values (PrimitiveNodes' written in), loaded once per node."""
        if node.id not in self.loaded:
            widgets = load_widgets(str(node.raw["type"]), self.object_info[node.raw["type"]],
                                   node.raw.get("widgets_values"))
            given = self.overrides.get((node.graph.id, node.id[len(node.path):]), {})
            for widget in widgets:
                if widget.name in given:
                    widget.value = given[widget.name]
            self.loaded[node.id] = widgets
        return self.loaded[node.id]

    def prompt(self) -> dict[str, Any]:
        self.overrides = self.primitive_values()
        prompt: dict[str, Any] = {}
        for node in self.nodes.values():
            if node.definition is not None or self.virtual(node.raw) or node.mode in (MUTED, BYPASSED):
                continue
            info = self.object_info.get(node.raw["type"])
            inputs: dict[str, Any] = {}
            # A node ComfyUI does not know has no widget names to give its values: only its links go in.
            for widget in self.widgets(node) if info is not None else ():
                if widget.sent:
                    inputs[widget.name] = widget.serialised()
            for slot, entry in enumerate(node.raw.get("inputs") or []):
                self.hops = 0
                found = self.resolve_input(node, slot)
                if found is None:
                    continue
                name = entry.get("name")
                inputs[name] = ({"__value__": found.value} if isinstance(found.value, list) else found.value) \
                    if isinstance(found, Value) else [found[0], found[1]]
            title = node.raw.get("title") or (info or {}).get("display_name") or node.raw["type"]
            prompt[node.id] = {"class_type": node.raw["type"], "inputs": inputs, "_meta": {"title": title}}
        for entry in prompt.values():  # links to nodes that were left out go too
            inputs = entry["inputs"]
            for name in [n for n, v in inputs.items() if isinstance(v, list) and len(v) == 2 and v[0] not in prompt]:
                del inputs[name]
        return prompt


def convert(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    converter = Converter(workflow, object_info)
    converter.expand(converter.root, "", None, 0)
    converter.check_known()
    return converter.prompt()


def convert_partly(workflow: dict[str, Any], object_info: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The prompt as far as ComfyUI's nodes allow, and the node types it does not know: those nodes
    keep only their links (their widget values wait in the UI graph until their pack is installed)."""
    converter = Converter(workflow, object_info)
    converter.expand(converter.root, "", None, 0)
    return converter.prompt(), converter.unknown()

"""An API-format prompt read together with ComfyUI's ``/object_info``: what each input and output *is*.

Form detection asks typed questions ("is this input a multiline STRING widget?", "which of this
node's outputs is a CONDITIONING named ``negative``?") instead of matching class names, so nodes
added to ComfyUI after Studio was written are understood from their own declarations. A node whose
class ComfyUI does not describe (a custom node that is not installed) answers ``None`` to every
type question, and callers fall back to input names.
"""

from __future__ import annotations

from typing import Any

# Node types whose output is a number, a text or a choice that ComfyUI's own Primitive nodes hold.
PRIMITIVE_PREFIX = "Primitive"
# Nodes that pass on one of two inputs, chosen by a literal boolean ``switch``.
SWITCHES = {"ComfySwitchNode"}
# Switches and Primitives followed from one input before giving up (a loop, or a graph gone odd).
MAX_HOPS = 16


def link_of(value: Any) -> tuple[str, int] | None:
    """``(node id, output slot)`` when ``value`` is a link ``[id, slot]``."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int) \
            and isinstance(value[1], int) and not isinstance(value[1], bool):
        return str(value[0]), value[1]
    return None


class Graph:
    def __init__(self, prompt: dict[str, Any], object_info: dict[str, Any]) -> None:
        self.prompt = prompt
        self.object_info = object_info
        self._consumers: dict[tuple[str, int], list[tuple[str, str]]] | None = None

    def class_of(self, node_id: str) -> str:
        return str(self.prompt[node_id].get("class_type") or "")

    def inputs(self, node_id: str) -> dict[str, Any]:
        found = self.prompt[node_id].get("inputs")
        return found if isinstance(found, dict) else {}

    def info(self, node_id: str) -> dict[str, Any] | None:
        found = self.object_info.get(self.class_of(node_id))
        return found if isinstance(found, dict) else None

    def spec(self, node_id: str, field: str) -> list[Any] | None:
        info = (self.info(node_id) or {}).get("input") or {}
        for section in ("required", "optional"):
            found = (info.get(section) or {}).get(field)
            if isinstance(found, list | tuple) and found:
                return list(found)
        return None

    def options(self, node_id: str, field: str) -> dict[str, Any]:
        spec = self.spec(node_id, field)
        return spec[1] if spec and len(spec) > 1 and isinstance(spec[1], dict) else {}

    def kind(self, node_id: str, field: str) -> str | None:
        """``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``, ``COMBO`` or a socket type; None if undeclared."""
        spec = self.spec(node_id, field)
        if spec is None:
            return None
        return "COMBO" if isinstance(spec[0], list) else str(spec[0])

    def declared(self, node_id: str, section_types: set[str]) -> list[str]:
        """This node's declared inputs of the given types, in declaration order."""
        info = (self.info(node_id) or {}).get("input") or {}
        return [name for section in ("required", "optional") for name, spec in (info.get(section) or {}).items()
                if isinstance(spec, list | tuple) and spec and not isinstance(spec[0], list)
                and str(spec[0]) in section_types]

    def multiline(self, node_id: str, field: str) -> bool:
        return self.kind(node_id, field) == "STRING" and bool(self.options(node_id, field).get("multiline"))

    def outputs(self, node_id: str) -> list[str]:
        found = (self.info(node_id) or {}).get("output")
        return [str(kind) for kind in found] if isinstance(found, list) else []

    def output_name(self, node_id: str, slot: int) -> str:
        names = (self.info(node_id) or {}).get("output_name")
        if isinstance(names, list) and 0 <= slot < len(names):
            return str(names[slot])
        return ""

    def literal(self, node_id: str, field: str) -> bool:
        value = self.inputs(node_id).get(field)
        return value is not None and not (link_of(value) is not None and link_of(value)[0] in self.prompt)  # type: ignore[index]

    def link(self, node_id: str, field: str) -> tuple[str, int] | None:
        found = link_of(self.inputs(node_id).get(field))
        return found if found is not None and found[0] in self.prompt else None

    def title(self, node_id: str) -> str:
        return str((self.prompt[node_id].get("_meta") or {}).get("title") or "")

    def custom_title(self, node_id: str) -> str:
        """The title a person gave the node, or "" when it is the class's own name."""
        title = self.title(node_id).strip()
        class_type = self.class_of(node_id)
        display = str((self.info(node_id) or {}).get("display_name") or "")
        if title in ("", class_type, display) or title.startswith("CLIP Text Encode"):
            return ""
        return title

    def label(self, node_id: str) -> str:
        """What a person calls this node: its title, else ComfyUI's display name, else its class."""
        return self.title(node_id) or str((self.info(node_id) or {}).get("display_name") or "") \
            or self.class_of(node_id)

    def consumers(self, node_id: str, slot: int) -> list[tuple[str, str]]:
        """``(node id, input)`` pairs that read output ``slot`` of ``node_id``."""
        if self._consumers is None:
            self._consumers = {}
            for target in self.prompt:
                for field, value in self.inputs(target).items():
                    found = link_of(value)
                    if found is not None:
                        self._consumers.setdefault(found, []).append((target, field))
        return self._consumers.get((node_id, slot), [])

    def primitive_source(self, node_id: str, field: str) -> tuple[str, str] | None:
        """Where a linked input's value is really set: a Primitive node's literal ``value``, found
        through If/Else switches (the branch their literal ``switch`` picks) and chained Primitives."""
        for _ in range(MAX_HOPS):
            found = self.link(node_id, field)
            if found is None:
                return None
            source = found[0]
            class_type = self.class_of(source)
            if class_type.startswith(PRIMITIVE_PREFIX):
                if self.literal(source, "value"):
                    return source, "value"
                node_id, field = source, "value"
            elif class_type in SWITCHES and isinstance(chosen := self.switch_value(source), bool):
                node_id, field = source, "on_true" if chosen else "on_false"
            else:
                return None
        return None

    def switch_value(self, node_id: str) -> Any:
        """A switch's boolean: its literal, or the Primitive Boolean that sets it."""
        if self.literal(node_id, "switch"):
            return self.inputs(node_id).get("switch")
        found = self.link(node_id, "switch")
        if found is not None and self.class_of(found[0]).startswith(PRIMITIVE_PREFIX) \
                and self.literal(found[0], "value"):
            return self.inputs(found[0]).get("value")
        return None

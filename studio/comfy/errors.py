"""ComfyUI's failures, as a caller needs to tell them apart."""

from __future__ import annotations

from typing import Any


class ComfyError(Exception):
    """Base class: anything that went wrong talking to ComfyUI."""


class ComfyUnavailable(ComfyError):
    """ComfyUI could not be reached (refused, timed out, reset) or answered 5xx."""


class ComfyNotFound(ComfyError):
    """The thing asked for does not exist on this ComfyUI (a file, a model folder, a prompt)."""


class ComfyProtocolError(ComfyError):
    """ComfyUI answered something this library does not understand."""


class ComfyRejected(ComfyError):
    """``POST /prompt`` answered 400: the prompt failed validation.

    ``error`` is ComfyUI's top-level error object and ``node_errors`` its per-node map, kept as
    ComfyUI sent them; ``problems()`` turns them into lines a person can read.
    """

    def __init__(self, error: dict[str, Any], node_errors: dict[str, Any]) -> None:
        self.error = error
        self.node_errors = node_errors
        super().__init__(error.get("message") or "ComfyUI rejected the prompt")

    @property
    def type(self) -> str:
        return str(self.error.get("type", ""))

    def problems(self) -> list[dict[str, Any]]:
        """One entry per failing input: node id and class, input name, and a readable message."""
        found: list[dict[str, Any]] = []
        for node_id, node in self.node_errors.items():
            for err in node.get("errors", []):
                extra = err.get("extra_info") or {}
                found.append(
                    {
                        "node_id": node_id,
                        "class_type": node.get("class_type"),
                        "input": extra.get("input_name"),
                        "type": err.get("type"),
                        "message": f"{err.get('message', '')}: {err.get('details', '')}".rstrip(": "),
                    }
                )
        if not found:
            details = self.error.get("details") or ""
            found.append(
                {
                    "node_id": None,
                    "class_type": None,
                    "input": None,
                    "type": self.type,
                    "message": f"{self.error.get('message', '')} {details}".strip(),
                }
            )
        return found

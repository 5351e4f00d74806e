"""ComfyUI's failures, as a caller needs to tell them apart."""

from __future__ import annotations

from typing import Any


class ComfyError(Exception):
    """Base class: anything that went wrong talking to ComfyUI."""


class ComfyUnavailable(ComfyError):
    """ComfyUI could not be reached (refused, timed out, reset) or answered 5xx.

    ``status`` is the 5xx it answered, or None when nothing answered at all: a caller retries the
    two differently (ComfyUI away vs. one request it cannot handle).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ComfyUnsendable(ComfyError):
    """The request could not be written at all (a body that is not JSON, a name that is not text):
    nothing reached ComfyUI, and trying again will not help."""


class ComfyNotFound(ComfyError):
    """The thing asked for does not exist on this ComfyUI (a file, a model folder, a prompt)."""


class ComfyProtocolError(ComfyError):
    """ComfyUI answered something this library does not understand."""


class ComfyRejected(ComfyError):
    """``POST /prompt`` answered 400: the prompt failed validation.

    ``error`` is ComfyUI's top-level error object and ``node_errors`` its per-node map, kept as
    ComfyUI sent them; ``problems()`` turns them into lines a person can read.
    """

    def __init__(self, error: Any, node_errors: Any) -> None:
        # Kept as sent, but always as mappings: a server may answer {"error": "invalid json"}.
        self.error: dict[str, Any] = error if isinstance(error, dict) else {"message": str(error or "")}
        self.node_errors: dict[str, Any] = {
            str(key): value for key, value in node_errors.items() if isinstance(value, dict)
        } if isinstance(node_errors, dict) else {}
        super().__init__(str(self.error.get("message") or "ComfyUI rejected the prompt"))

    @property
    def type(self) -> str:
        return str(self.error.get("type", ""))

    def problems(self) -> list[dict[str, Any]]:
        """One entry per failing input: node id and class, input name, and a readable message."""
        found: list[dict[str, Any]] = []
        for node_id, node in self.node_errors.items():
            errors = node.get("errors")
            for err in errors if isinstance(errors, list) else []:
                if not isinstance(err, dict):
                    continue
                extra_info = err.get("extra_info")
                extra: dict[str, Any] = extra_info if isinstance(extra_info, dict) else {}
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

"""A workflow built in memory from a manifest's inputs and a prompt, for the tests that hand a form's
values straight to ``studio.workflows.params`` (what the jobs service does with a request body)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.workflows.library import Workflow
from studio.workflows.manifest import Manifest


def workflow(inputs: list[dict[str, Any]], prompt: dict[str, Any] | None = None, **manifest: Any) -> Workflow:
    return Workflow(manifest=Manifest.model_validate({"id": "form", "name": "Form", "inputs": inputs, **manifest}),
                    prompt=prompt if prompt is not None else {}, folder=Path("/nonexistent"), digest="0", bundled=False)

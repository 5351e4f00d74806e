"""Whether a workflow can run now, shared by the workflow routes and the presets that run workflows.

Both must agree to the letter: a preset that says "ready" on its card and then fails with the
workflow's own "not ready" would be the worst kind of surprise.
"""

from __future__ import annotations

import logging
from typing import Any

from studio.errors import StudioError
from studio.events import EventBus
from studio.workflows.comfyfacts import Facts
from studio.workflows.importer import WorkflowImporter
from studio.workflows.library import Workflow
from studio.workflows.readiness import readiness

log = logging.getLogger(__name__)


def readiness_of(workflow: Workflow, facts: Facts) -> dict[str, Any]:
    if facts.object_info is None:
        return {"ready": None, "problems": [f"ComfyUI cannot be asked: {facts.problem}"], "missing_nodes": [],
                "missing_models": [], "models": []}
    return readiness(workflow, facts.object_info, facts.model_index)


def current_workflow(importer: WorkflowImporter, bus: EventBus, workflow: Workflow, facts: Facts) -> Workflow:
    """The workflow as it runs now: one imported before ComfyUI had its nodes is converted again as
    soon as ComfyUI lists them (after a restart, a reconnect or a refresh), and open pages hear of it."""
    if not workflow.manifest.unconverted_nodes or facts.object_info is None:
        return workflow
    try:
        found = importer.complete(workflow, facts.object_info)
    except StudioError as err:  # readiness says it still waits; the log says why
        log.warning("workflow %s could not be converted again: %s", workflow.id, err.message)
        return workflow
    if found is not workflow and not found.manifest.unconverted_nodes:
        bus.publish("workflows/changed", {"id": found.id, "name": found.manifest.name, "bundled": False,
                                          "action": "converted", "actor": None})
    return found

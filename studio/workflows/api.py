"""``/api/workflows``: the library with readiness, one workflow's form, and running it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.auth.guard import allow_run_scope, current_identity
from studio.comfy import ComfyError
from studio.errors import Unprocessable
from studio.services import Services, services
from studio.web import parse_json
from studio.workflows.library import Workflow
from studio.workflows.manifest import PICKER_FOLDERS
from studio.workflows.params import choices_for
from studio.workflows.readiness import readiness

bp = Blueprint("workflows", __name__, url_prefix="/api/workflows")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    count: int = Field(1, ge=1, le=100)


def _readiness(studio: Services, workflow: Workflow) -> dict[str, Any]:
    try:
        object_info = studio.comfy.object_info()
    except ComfyError as err:
        return {"ready": None, "problems": [f"ComfyUI cannot be asked: {err}"], "missing_nodes": [],
                "missing_models": [], "models": []}
    return readiness(workflow, object_info)


def _summary(studio: Services, workflow: Workflow) -> dict[str, Any]:
    manifest = workflow.manifest
    return {"id": workflow.id, "name": manifest.name, "description": manifest.description,
            "category": manifest.category, "version": manifest.version, "bundled": workflow.bundled,
            "readiness": _readiness(studio, workflow)}


@bp.get("")
def list_workflows() -> Response:
    studio = services()
    items = [_summary(studio, workflow) for workflow in studio.library.all()]
    problems = [{"folder": p.folder, "message": p.message} for p in studio.library.problems]
    return jsonify({"items": items, "problems": problems})


@bp.get("/<workflow_id>")
@allow_run_scope
def get_workflow(workflow_id: str) -> Response:
    """The form: the manifest, plus what each picker may choose from on this ComfyUI."""
    studio = services()
    workflow = studio.library.get(workflow_id)
    try:
        object_info: dict[str, Any] | None = studio.comfy.object_info()
    except ComfyError:
        object_info = None
    choices = {}
    for spec in workflow.manifest.inputs:
        found = choices_for(spec, workflow.prompt, object_info) if spec.type in PICKER_FOLDERS else None
        if found is not None:
            choices[spec.id] = found
    return jsonify({**_summary(studio, workflow), "manifest": workflow.manifest.model_dump(mode="json"),
                    "choices": choices})


@bp.post("/<workflow_id>/run")
@allow_run_scope
def run(workflow_id: str) -> Response:
    body = parse_json(RunRequest)
    studio = services()
    workflow = studio.library.get(workflow_id)
    ready = _readiness(studio, workflow)
    if ready["ready"] is False:
        raise Unprocessable("This workflow cannot run yet: " + "; ".join(ready["problems"]) + ".",
                            code="workflow_not_ready", details={"readiness": ready})
    jobs = studio.jobs.submit(workflow_id, body.params, owner=current_identity(), count=body.count)
    response = jsonify({"items": jobs})
    response.status_code = 201
    return response

"""``/api/workflows``: the library with readiness, one workflow's form, and running it."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.apidocs.uploads import WorkflowUpload
from studio.auth.guard import allow_run_scope, current_identity, require_admin
from studio.downloads.civitai import CivitaiLookup
from studio.downloads.manager import size_in_bytes
from studio.errors import BadRequest, ServiceUnavailable, StudioError, Unprocessable
from studio.idempotency import idempotent
from studio.jobs.links import Accepted, accepted
from studio.services import Services, services
from studio.web import EmptyBody, parse_json, parse_query
from studio.workflows.comfyfacts import Facts, comfy_facts
from studio.workflows.library import Workflow
from studio.workflows.needs import Install, plan
from studio.workflows.params import choices_for, picker_folder
from studio.workflows.runnable import current_workflow, readiness_of

log = logging.getLogger(__name__)

bp = Blueprint("workflows", __name__, url_prefix="/api/workflows")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    count: int = Field(1, ge=1, le=100)


def _readiness(workflow: Workflow, facts: Facts) -> dict[str, Any]:
    return readiness_of(workflow, facts)


def _summary(workflow: Workflow, facts: Facts) -> dict[str, Any]:
    manifest = workflow.manifest
    return {"id": workflow.id, "name": manifest.name, "description": manifest.description,
            "category": manifest.category, "version": manifest.version, "bundled": workflow.bundled,
            "readiness": _readiness(workflow, facts)}


def _current(studio: Services, workflow: Workflow, facts: Facts) -> Workflow:
    return current_workflow(studio.importer, studio.bus, workflow, facts)


def _facts(studio: Services) -> Facts:
    """ComfyUI's nodes and models, asked once for the whole request (see ``comfyfacts``)."""
    return comfy_facts(studio.comfy)


@bp.get("")
@documented("The workflow library with readiness", tags=["workflows"])
@allow_run_scope  # scripts and agents pick what to run from it, as they read one workflow's form
def list_workflows() -> Response:
    studio = services()
    facts = _facts(studio)
    items = [_summary(_current(studio, workflow, facts), facts) for workflow in studio.library.all()]
    problems = [{"folder": p.folder, "message": p.message} for p in studio.library.problems]
    hidden = [{"id": w.id, "name": w.manifest.name} for w in studio.library.hidden()]
    return jsonify({"items": items, "problems": problems, "hidden": hidden})


@bp.get("/<workflow_id>")
@documented("One workflow's form: manifest, readiness and picker choices", tags=["workflows"])
@allow_run_scope
def get_workflow(workflow_id: str) -> Response:
    """The form: the manifest, plus what each picker may choose from on this ComfyUI."""
    studio = services()
    facts = _facts(studio)
    workflow = _current(studio, studio.library.get(workflow_id), facts)
    choices = {}
    for spec in workflow.manifest.inputs:
        found = choices_for(spec, workflow.prompt, facts.object_info) if picker_folder(spec) else None
        if found is not None:
            choices[spec.id] = found
    return jsonify({**_summary(workflow, facts), "manifest": workflow.manifest.model_dump(mode="json"),
                    "choices": choices})


class MappingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[dict[str, Any]] = Field(max_length=500)


@bp.post("")
@documented("Import a workflow (admin; multipart field file)",
            body=WorkflowUpload, answers={201: {}}, tags=["workflows"])
def import_workflow() -> Response:
    """Admin: a workflow JSON (API or UI format) or a PNG/WebP saved by ComfyUI, as multipart 'file'."""
    require_admin()
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("Send the workflow as multipart field 'file'.", fields={"file": "missing"})
    studio = services()
    facts = _facts(studio)
    if facts.object_info is None:
        raise ServiceUnavailable(f"ComfyUI is needed to read the workflow: {facts.problem}", code="comfy_unavailable")
    workflow = studio.importer.import_file(
        upload.read(), name=request.form.get("name") or None, workflow_id=request.form.get("id") or None,
        replace=request.form.get("replace") in ("1", "true", "on"), object_info=facts.object_info,
        file_name=upload.filename)
    _announce(studio, "imported", workflow)
    response = jsonify(_summary(workflow, facts))
    response.status_code = 201
    return response


@bp.delete("/<workflow_id>")
@documented("Delete a workflow, or hide a bundled one (admin)", body=EmptyBody, tags=["workflows"])
def delete_workflow(workflow_id: str) -> Response:
    """Admin: a user's workflow is deleted (folder and row), a bundled one hidden until restored.
    Jobs that ran it keep their history: each holds its own copy of the prompt it sent."""
    require_admin()
    parse_json(EmptyBody)
    studio = services()
    workflow = studio.library.delete(workflow_id)
    action = "hidden" if workflow.bundled else "deleted"
    _announce(studio, action, workflow)
    return jsonify({"id": workflow.id, "name": workflow.manifest.name, "bundled": workflow.bundled,
                    "action": action})


@bp.post("/<workflow_id>/restore")
@documented("Restore a hidden bundled workflow (admin)", body=EmptyBody, tags=["workflows"])
def restore_workflow(workflow_id: str) -> Response:
    """Admin: a hidden bundled workflow back in the library."""
    require_admin()
    parse_json(EmptyBody)
    studio = services()
    workflow = studio.library.restore(workflow_id)
    _announce(studio, "restored", workflow)
    return jsonify(_summary(workflow, _facts(studio)))


def _announce(studio: Services, action: str, workflow: Workflow) -> None:
    """Tells open pages the library changed (``workflows/changed``)."""
    studio.bus.publish("workflows/changed", {"id": workflow.id, "name": workflow.manifest.name,
                                             "bundled": workflow.bundled, "action": action,
                                             "actor": current_identity().username})


@bp.put("/<workflow_id>/mapping")
@documented("Save the mapping editor's result (admin)", body=MappingRequest, tags=["workflows"])
def save_mapping(workflow_id: str) -> Response:
    """Admin: the mapping editor's result (names, order, hidden, advanced, defaults, limits)."""
    require_admin()
    body = parse_json(MappingRequest)
    studio = services()
    studio.importer.save_mapping(workflow_id, body.inputs)
    workflow = studio.library.get(workflow_id)
    return jsonify({**_summary(workflow, _facts(studio)), "manifest": workflow.manifest.model_dump(mode="json")})


class MissingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    civitai: bool = Field(True, description="also ask CivitAI (by hash, then by name) for unknown models")


@bp.get("/<workflow_id>/missing")
@documented("What a workflow lacks and where to download it", query=MissingQuery, tags=["workflows"])
def missing_models(workflow_id: str) -> Response:
    """What this workflow lacks, and for each model where it can be downloaded from."""
    studio = services()
    lookup = parse_query(MissingQuery)
    return jsonify(_missing(studio, studio.library.get(workflow_id), civitai=lookup.civitai)[0])


@bp.post("/<workflow_id>/install-missing")
@documented("Queue downloads of every missing model found",
            body=EmptyBody, answers={200: {}, 201: {}}, tags=["workflows"])
def install_missing(workflow_id: str) -> Response:
    """Queues every missing model that can be found; says which ones could not.

    Anyone may queue what the catalogs list (as with ``POST /api/downloads``); a model found only in
    the workflow's own sources or on CivitAI is an arbitrary URL, which only an admin may fetch.
    """
    parse_json(EmptyBody)
    studio = services()
    answer, installs = _missing(studio, studio.library.get(workflow_id), civitai=True)
    identity = current_identity()
    queued, refused = [], []
    for item in installs:
        if item.via != "catalog" and not identity.is_admin:  # as POST /api/downloads: any URL is an admin's
            refused.append({"file": item.file, "code": "admin_only",
                            "message": "Only an admin can download a model from outside the catalogs."})
            continue
        try:
            queued.append(studio.downloads.enqueue(
                url=item.url, dest=item.dest, file_name=item.file, name=item.name, source=item.source,
                expected_sha256=item.sha256, expected_size=size_in_bytes(item.size_gb),
                requested_by=identity.user_id))
        except StudioError as err:
            refused.append({"file": item.file, "code": err.code, "message": err.message})
    response = jsonify({**answer, "queued": queued, "refused": refused})
    response.status_code = 201 if queued else 200
    return response


def _missing(studio: Services, workflow: Workflow, *, civitai: bool) -> tuple[dict[str, Any], list[Install]]:
    lookup = CivitaiLookup(studio.civitai) if civitai else None
    facts = _facts(studio)
    workflow = _current(studio, workflow, facts)
    return plan(_readiness(workflow, facts), workflow.manifest, studio.catalogs(), studio.downloads, lookup)


@bp.post("/<workflow_id>/run")
@documented("Queue jobs from a workflow's form values (202 with links to follow them)", body=RunRequest,
            answers={202: Accepted}, tags=["workflows", "jobs"])
@allow_run_scope
@idempotent
def run(workflow_id: str) -> Response:
    """Answers at once: the jobs are queued, not run. Send ``Idempotency-Key`` to retry safely."""
    body = parse_json(RunRequest)
    studio = services()
    facts = _facts(studio)
    workflow = _current(studio, studio.library.get(workflow_id), facts)
    ready = _readiness(workflow, facts)
    if ready["ready"] is False:
        raise Unprocessable("This workflow cannot run yet: " + "; ".join(ready["problems"]) + ".",
                            code="workflow_not_ready", details={"readiness": ready})
    jobs = studio.jobs.submit(workflow_id, body.params, owner=current_identity(), count=body.count,
                              object_info=facts.object_info)
    return accepted(jobs)

"""``/api/run/last``: the Run page's memory of each person's last workflow and values.

Always the caller's own: there is no user in the path, so nobody can read or write another's."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict

from studio.apidocs import documented
from studio.auth.guard import allow_run_scope, current_identity
from studio.runpage.service import MAX_DRAFT_BYTES, RunDrafts
from studio.services import services
from studio.web import parse_json

bp = Blueprint("runpage", __name__, url_prefix="/api/run")


@bp.record_once
def _attach(state: BlueprintSetupState) -> None:
    state.app.extensions["runpage"] = RunDrafts(state.app.extensions["studio"].engine)


def _drafts() -> RunDrafts:
    found: RunDrafts = current_app.extensions["runpage"]
    return found


class DraftBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    values: dict[str, Any]


@bp.get("/last")
@documented("The caller's newest Run page draft", tags=["run page"])
@allow_run_scope
def last() -> Response:
    known = {workflow.id for workflow in services().library.all()}
    return jsonify(_drafts().last(user_id=current_identity().user_id, known=known))


@bp.put("/last/<workflow_id>")
@documented("Save the Run page's values for one workflow", body=DraftBody, tags=["run page"])
@allow_run_scope
def save(workflow_id: str) -> Response:
    """Keeps what the form holds now; the workflow must exist (404 otherwise)."""
    body = parse_json(DraftBody, max_bytes=MAX_DRAFT_BYTES + 1024)
    workflow = services().library.get(workflow_id)
    inputs = {spec.id for spec in workflow.manifest.inputs}
    return jsonify(_drafts().save(user_id=current_identity().user_id, workflow_id=workflow.id,
                                  values=body.values, inputs=inputs))

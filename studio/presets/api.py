"""``/api/presets``: list, read, change, import/export and run presets.

Listing, reading and running are open to ``run``-scope tokens (scripts and bots run presets);
everything that changes a preset needs a full sign-in, and is its owner's or an admin's to do.
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify, request, send_file
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from werkzeug.routing import BaseConverter

from studio.apidocs import documented
from studio.auth.guard import allow_run_scope, current_identity
from studio.errors import BadRequest, NotFound, Unprocessable
from studio.idempotency import idempotent
from studio.jobs.links import Accepted, accepted
from studio.presets.portable import export_zip, import_upload
from studio.services import services
from studio.web import parse_json, parse_query

bp = Blueprint("presets", __name__, url_prefix="/api/presets")


class PresetIdConverter(BaseConverter):
    """``<preset:preset_id>``: a preset id and nothing else, so the words of the routes beside it
    (``export``, ``import``) never reach a preset's handler as an id."""

    regex = r"(?!(?:export|import)(?![A-Za-z0-9_-]))[A-Za-z0-9_-]{1,64}"

PresetId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# A name is one line a person reads on a card and in Telegram: no control characters.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120,
                                        pattern=r"^[^\x00-\x1f\x7f]+$")]
Description = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")]
SEED_MAX = 2**64 - 1


class PresetFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Description = ""
    private: bool = False
    workflow_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    params: dict[str, Any] = Field(default_factory=dict)
    seed_policy: Literal["fixed", "random"] | None = None
    overridable: list[ParamName] = Field(default_factory=list, max_length=200)


class PresetCreate(PresetFields):
    id: PresetId | None = None


class PresetChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Description | None = None
    private: bool | None = None
    workflow_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    params: dict[str, Any] | None = None
    seed_policy: Literal["fixed", "random"] | None = None
    overridable: list[ParamName] | None = Field(None, max_length=200)


class DuplicateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: PresetId | None = None
    name: Name | None = None


class PresetRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}$")], str | None] = Field(
        default_factory=dict, max_length=100)
    overrides: dict[ParamName, Any] = Field(default_factory=dict, max_length=200)
    seed: int | None = Field(None, ge=-1, le=SEED_MAX)
    count: int = Field(1, ge=1, le=100)
    image: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: Annotated[str, StringConstraints(max_length=4000)] | None = None


PRESET_SCHEMA: dict[str, Any] = {"type": "object", "required": ["id", "name", "workflow_id", "placeholders",
                                                                "runnable", "problems"]}
LIST_SCHEMA: dict[str, Any] = {"type": "object", "required": ["items", "problems"],
                               "properties": {"items": {"type": "array", "items": PRESET_SCHEMA},
                                              "problems": {"type": "array"}}}
IMPORT_SCHEMA: dict[str, Any] = {"type": "object", "required": ["imported", "problems"]}


def _changes(body: BaseModel) -> dict[str, Any]:
    """Only the fields the request sent: a PUT of ``{"name"}`` leaves the rest as it was."""
    return {key: getattr(body, key) for key in body.model_fields_set}


@bp.get("")
@documented("The presets the caller may see, with their questions and whether each can run",
            answers={200: LIST_SCHEMA}, tags=["presets"])
@allow_run_scope
def list_presets() -> Response:
    items, problems = services().presets.list(current_identity())
    return jsonify({"items": items, "problems": [problem.view() for problem in problems]})


@bp.post("")
@documented("Save a new preset (from the Run page's form)", body=PresetCreate, answers={201: PRESET_SCHEMA},
            tags=["presets"])
def create_preset() -> Response:
    body = parse_json(PresetCreate)
    made = services().presets.create(body.model_dump(), current_identity())
    response = jsonify(made)
    response.status_code = 201
    return response


@bp.get("/<preset:preset_id>")
@documented("One preset", answers={200: PRESET_SCHEMA}, tags=["presets"])
@allow_run_scope
def get_preset(preset_id: str) -> Response:
    return jsonify(services().presets.get(preset_id, current_identity()))


@bp.put("/<preset:preset_id>")
@documented("Change a preset: only the fields sent", body=PresetChange, answers={200: PRESET_SCHEMA},
            tags=["presets"])
def update_preset(preset_id: str) -> Response:
    body = parse_json(PresetChange)
    changes = {key: value for key, value in _changes(body).items() if value is not None or key == "seed_policy"}
    return jsonify(services().presets.update(preset_id, changes, current_identity()))


@bp.delete("/<preset:preset_id>")
@documented("Delete a preset", answers={204: {}}, tags=["presets"])
def delete_preset(preset_id: str) -> Response:
    services().presets.delete(preset_id, current_identity())
    return Response(status=204)


@bp.post("/<preset:preset_id>/duplicate")
@documented("Copy a preset; the copy is the caller's", body=DuplicateRequest, answers={201: PRESET_SCHEMA},
            tags=["presets"])
def duplicate_preset(preset_id: str) -> Response:
    body = parse_json(DuplicateRequest)
    made = services().presets.duplicate(preset_id, current_identity(), new_id=body.id, name=body.name)
    response = jsonify(made)
    response.status_code = 201
    return response


@bp.post("/<preset:preset_id>/run")
@documented("Run a preset: answers to its questions, overrides it allows, a seed; answers 202 at once",
            body=PresetRunRequest, answers={202: Accepted}, tags=["presets"])
@allow_run_scope
@idempotent
def run_preset(preset_id: str) -> Response:
    body = parse_json(PresetRunRequest)
    answers = {key: value for key, value in body.answers.items() if value is not None}
    jobs = services().presets.run(preset_id, current_identity(), answers=answers, overrides=body.overrides,
                                  seed=body.seed, count=body.count, image=body.image)
    return accepted(jobs)


@bp.get("/<preset:preset_id>/thumbnail")
@documented("The picture on a preset's card: its owner's last result, 256 px WebP",
            answers={200: {"content": {"image/webp": {}}}}, tags=["presets"])
@allow_run_scope
def preset_thumbnail(preset_id: str) -> Response:
    studio = services()
    studio.presets.document(preset_id, current_identity())  # 404 unless the caller may see it
    path = studio.presets.store.thumbnail_path(preset_id)
    if not path.is_file():
        raise NotFound("This preset has no picture yet.", code="no_thumbnail")
    response = send_file(io.BytesIO(path.read_bytes()), mimetype="image/webp", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


@bp.get("/<preset:preset_id>/export")
@documented("A preset as its JSON file, in the original Studio's format",
            answers={200: {"content": {"application/json": {}}}}, tags=["presets"])
def export_preset(preset_id: str) -> Response:
    doc = services().presets.document(preset_id, current_identity())
    data = jsonify(doc).get_data()
    return send_file(io.BytesIO(data), mimetype="application/json", as_attachment=True,
                     download_name=f"{preset_id}.json")


@bp.get("/export")
@documented("Several presets (all the caller sees, or ?ids=a,b) as one ZIP of JSON files", query=ExportQuery,
            answers={200: {"content": {"application/zip": {}}}}, tags=["presets"])
def export_presets() -> Response:
    query = parse_query(ExportQuery)
    wanted = [part for part in (query.ids or "").split(",") if part] or None
    data = export_zip(services().presets, current_identity(), wanted)
    return send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True,
                     download_name="presets.zip")


@bp.post("/import")
@documented("Import presets: multipart 'file', one .json or a .zip of them; 'replace' to overwrite your own",
            answers={200: IMPORT_SCHEMA}, tags=["presets"])
def import_presets() -> Response:
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("Send the preset file as multipart field 'file'.", fields={"file": "missing"})
    replace = request.form.get("replace") in ("1", "true", "on")
    imported, problems = import_upload(services().presets, current_identity(), upload.read(),
                                       upload.filename or "preset.json", replace=replace)
    if not imported:
        raise Unprocessable("Nothing in that file could be imported: " + "; ".join(
            f"{p['file']} {p['reason']}" for p in problems[:5]) + ".", code="nothing_imported",
            details={"problems": problems})
    return jsonify({"imported": imported, "problems": problems})


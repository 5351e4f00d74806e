"""``/api/civitai/import/…`` (an image → its plan, its missing models queued, a preset, a run),
``/api/civitai/lookup`` (a model, version or image by address or id) and ``/api/civitai/catalog``
(a CivitAI version into a catalog; an entry moved to the LoRA catalog).

Each import action takes the image again (a CivitAI address or id as JSON, or a dropped file as
multipart): nothing is kept between requests, so nobody can act on another person's import.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio.apidocs import documented
from studio.apidocs.decorator import Multipart
from studio.auth.guard import current_identity, require_admin
from studio.civitai.imports.catalog import add_entry, entry_from_version, move_to_loras, parse_ref, version_for
from studio.civitai.imports.plan import ImportService, Plan, Source, quick
from studio.errors import BadRequest, StudioError
from studio.models.catalog import find_entry
from studio.services import services
from studio.web import parse_json, parse_query

bp = Blueprint("civitai_imports", __name__, url_prefix="/api/civitai")

MAX_FILE_BYTES = 64 * 1024 * 1024
WORKFLOW_ID = r"^[A-Za-z0-9_\-]{1,128}$"
Name = Field(None, min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")


class ImportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow_id: str | None = Field(None, pattern=WORKFLOW_ID, description="run it on this workflow instead")
    name: str | None = Name
    private: bool = False
    as_workflow: bool = Field(True, description="an image with a ComfyUI graph: import the graph (admin)")


class ImportRequest(ImportOptions):
    image: str = Field(min_length=1, max_length=2000, description="a CivitAI image address or id")


class ImportUpload(Multipart):
    file: bytes = Field(description="a PNG, JPEG or WebP with generation metadata, or a ComfyUI workflow JSON")
    workflow_id: str | None = None
    name: str | None = None
    private: bool | None = None
    as_workflow: bool | None = None


def _act(action: str, source: Source, options: ImportOptions) -> Response:
    identity = current_identity()
    service = ImportService(services())
    plan: Plan = service.plan(source, identity, options.workflow_id)
    answer: dict[str, Any] = {"plan": plan.view()}
    status = 200
    if action == "download":
        answer.update(service.download_missing(plan, identity))
        status = 201 if answer["queued"] else 200
    elif action == "preset":
        answer.update(service.save_preset(plan, identity, name=options.name, private=options.private,
                                          as_workflow=options.as_workflow))
        answer["plan"] = plan.view()
        status = 201
    elif action == "run":
        answer["jobs"] = service.run_now(plan, identity)
        status = 202
    response = jsonify(answer)
    response.status_code = status
    return response


@bp.post("/import/<any(plan, download, preset, run):action>")
@documented("Import a CivitAI image: plan (what it needs), download (queue the missing), preset (save), run",
            body=ImportRequest, answers={200: {}, 201: {}, 202: {}}, tags=["civitai"])
def import_image(action: str) -> Response:
    """``plan`` changes nothing; ``download`` queues for the caller (new catalog entries: admins);
    ``preset`` saves the caller's own preset with the image as its ``source``; ``run`` queues one job."""
    body = parse_json(ImportRequest)
    return _act(action, Source(image_id=ImportService.image_id(body.image)), body)


@bp.post("/import/<any(plan, download, preset, run):action>/file")
@documented("The same for a dropped image file (multipart field file)", body=ImportUpload,
            answers={200: {}, 201: {}, 202: {}}, tags=["civitai"])
def import_file(action: str) -> Response:
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("Send the image as multipart field 'file'.", fields={"file": "missing"})
    data = upload.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise BadRequest(f"The file is larger than {MAX_FILE_BYTES // 1024 // 1024} MB.", fields={"file": "too large"})
    form = {k: v for k, v in request.form.items() if k in ImportOptions.model_fields}
    for key in ("private", "as_workflow"):
        if key in form:
            form[key] = form[key] in ("1", "true", "on")  # type: ignore[assignment]
    try:
        options = ImportOptions.model_validate(form)
    except ValidationError as err:
        fields = {".".join(str(p) for p in e["loc"]): e["msg"] for e in err.errors()}
        raise BadRequest(f"Invalid value for {', '.join(fields)}.", fields=fields) from None
    return _act(action, Source(data=data, file_name=upload.filename), options)


class LookupQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(min_length=1, max_length=2000, description="an address, or model:N, version:N, image:N")


def _version_view(version: dict[str, Any], files: dict[str, str], catalogs: Any) -> dict[str, Any]:
    try:
        kind, entry = entry_from_version(version)
    except StudioError as err:  # a version Studio has no folder for is still shown, with why
        return {"id": version.get("id"), "name": version.get("name"), "base_model": version.get("baseModel"),
                "problem": err.message}
    sha = entry.get("sha256")
    present = files.get(sha) if sha else None
    return {"id": entry["civitai_version_id"], "name": version.get("name"), "base_model": entry.get("base_model"),
            "file": entry["file"], "folder": entry["dest"], "catalog": kind,
            "size_bytes": int(entry["size_gb"] * 1024**3) if entry.get("size_gb") else None,
            "present": present, "in_catalog": find_entry(catalogs, entry["file"]) is not None,
            "trained_words": entry.get("trainedWords", [])}


@bp.get("/lookup")
@documented("Look up a CivitAI model, version or image by address or id", query=LookupQuery, tags=["civitai"])
def lookup() -> Response:
    """A model with its versions (each: file, folder, size, here or not, in a catalog or not), one
    version, or an image (then import it with ``/import/plan``)."""
    ref = parse_query(LookupQuery).ref
    studio = services()
    kind, number = parse_ref(ref)
    files = {f["sha256"]: f["path"] for f in studio.inventory.files() if f.get("sha256")}
    catalogs = studio.catalogs()
    if kind == "image":
        return jsonify({"kind": "image", "id": number})
    if kind == "model":
        model = quick(studio.civitai).model(number)
        versions = [v for v in model.get("modelVersions") or [] if isinstance(v, dict)][:50]
        shaped = {"name": model.get("name"), "type": model.get("type")}
        return jsonify({"kind": "model", "id": number, "name": model.get("name"), "type": model.get("type"),
                        "versions": [_version_view({**v, "model": shaped, "modelId": number}, files, catalogs)
                                     for v in versions]})
    version = quick(studio.civitai).version(number)
    return jsonify({"kind": "version", "id": number, "model_id": version.get("modelId"),
                    "name": (version.get("model") or {}).get("name") if isinstance(version.get("model"), dict)
                    else None, "versions": [_version_view(version, files, catalogs)]})


class CatalogAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(min_length=1, max_length=2000, description="a CivitAI model or version address, or its id")


@bp.post("/catalog")
@documented("Add a CivitAI model version to the catalogs (admin)", body=CatalogAdd, answers={201: {}},
            tags=["civitai", "models"])
def add_to_catalog() -> Response:
    """Admins: the version's primary file, in the folder its type says, with CivitAI's SHA-256 and size;
    LoRAs into the LoRA catalog. Adding it again replaces the entry (by file name)."""
    identity = require_admin()
    ref = parse_json(CatalogAdd).ref
    studio = services()
    kind, entry = entry_from_version(version_for(quick(studio.civitai), ref))
    result = add_entry(studio.data_dir.catalogs, kind, entry)
    studio.bus.publish("catalogs/changed", {"kind": kind, "action": "imported", "added": int(result["added"]),
                                            "replaced": int(not result["added"]), "actor": identity.username})
    response = jsonify(result)
    response.status_code = 201
    return response


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(min_length=1, max_length=255)


@bp.post("/catalog/move-to-loras")
@documented("Move a models-catalog entry to the LoRA catalog (admin)", body=MoveRequest, tags=["civitai", "models"])
def move_entry() -> Response:
    identity = require_admin()
    file_name = parse_json(MoveRequest).file
    studio = services()
    result = move_to_loras(studio.data_dir.catalogs, file_name)
    studio.bus.publish("catalogs/changed", {"kind": "loras", "action": "moved", "file": file_name,
                                            "actor": identity.username})
    return jsonify(result)

"""``/api/models`` (catalogs joined with the disk and the queue, disk usage, deleting a file),
``/api/loras/pairs`` and ``/api/catalogs`` (import a catalog JSON, remove an entry)."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import allow_run_scope, require_admin
from studio.errors import Unprocessable
from studio.models.catalog_store import import_catalog, remove_entry
from studio.models.listing import list_catalogs, pairs
from studio.models.uses import known_folders, readable, uses_by_folder
from studio.services import services
from studio.web import EmptyBody, parse_json, parse_query

bp = Blueprint("models", __name__, url_prefix="/api")

CatalogKind = Literal["models", "loras", "llm"]


class PairsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_model: str | None = Field(None, max_length=100)


class FileQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=1024)


class CatalogImport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalog: dict[str, Any]
    mode: Literal["merge", "replace"] = "merge"


def _listing(files: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    studio = services()
    queue = {item["path"]: item for item in studio.downloads.list()
             if item["status"] not in ("completed", "cancelled")}
    return list_catalogs(studio.catalogs(), studio.inventory.files() if files is None else files, queue)


@bp.get("/models")
@documented("Model catalogs, installed files and where each can be used", tags=["models"])
def models() -> Response:
    """Catalogs joined with the disk; files no catalog lists by name, folder and size; the workflows
    whose pickers can use a file of each folder ("Use in Run"); the folders a download may go to."""
    studio = services()
    files = studio.inventory.files()
    catalogs, unlisted = _listing(files)
    return jsonify({"root": str(studio.models_root.root), "disk": studio.models_root.disk(), "catalogs": catalogs,
                    "unlisted": [{**item, **readable(item["path"])} for item in unlisted],
                    "uses": uses_by_folder(studio.library.all()), "folders": known_folders(studio.catalogs(), files)})


@bp.get("/models/disk")
@documented("Free space and the largest model files", tags=["models"])
def disk() -> Response:
    """Free space, bytes per model folder and the largest files (the Home page's disk panel)."""
    return jsonify(services().inventory.disk_report())


@bp.delete("/models/files")
@documented("Delete one model file (admin)", query=FileQuery, tags=["models"])
def delete_file() -> Response:
    """Admins: deletes one model file in the models root (never in an extra folder)."""
    identity = require_admin()
    path = parse_query(FileQuery).path
    studio = services()
    path = studio.models_root.delete(path)  # never through a link, never outside the models root
    studio.bus.publish("system/notice", {"level": "info", "message": f"{identity.username} deleted {path}."})
    return jsonify({"deleted": path})


@bp.post("/models/rehash")
@documented("Look for new or changed model files now (admin)", body=EmptyBody, tags=["models"])
def rehash() -> Response:
    """Admins: look for new or changed files now instead of at the next round."""
    require_admin()
    parse_json(EmptyBody)
    services().inventory.wake()
    return jsonify({"started": True})


@bp.get("/loras/pairs")
@documented("LoRA pairs for a base model", query=PairsQuery, tags=["models"])
@allow_run_scope
def lora_pairs() -> Response:
    """LoRA pairs (high/low noise, or one file for both) for a base model: the lora_picker's choices."""
    base_model = parse_query(PairsQuery).base_model
    catalogs, _ = _listing()
    return jsonify({"items": pairs(catalogs["loras"]["entries"], base_model)})


@bp.post("/catalogs/<any(models, loras, llm):kind>")
@documented("Merge or replace a catalog (admin)", body=CatalogImport, tags=["models"])
def import_catalog_json(kind: CatalogKind) -> Response:
    """Admins: merges a catalog JSON into the user's copy (by file name), or replaces it."""
    identity = require_admin()
    body = parse_json(CatalogImport, max_bytes=32 * 1024 * 1024)  # a whole catalog, thousands of entries
    studio = services()
    result = import_catalog(studio.data_dir.catalogs, kind, body.catalog, body.mode)
    if not result["added"] and not result["replaced"]:
        raise Unprocessable("No entry in that catalog could be used: " + "; ".join(result["problems"][:5]),
                            code="catalog_empty", details=result)
    studio.bus.publish("catalogs/changed", {"kind": kind, "action": "imported", "added": result["added"],
                                            "replaced": result["replaced"], "actor": identity.username})
    return jsonify(result)


@bp.delete("/catalogs/<any(models, loras, llm):kind>/entries/<path:file_name>")
@documented("Remove a catalog entry (admin)", tags=["models"])
def remove_catalog_entry(kind: CatalogKind, file_name: str) -> Response:
    """Admins: removes an entry from the catalog (the file on disk, if any, stays)."""
    identity = require_admin()
    studio = services()
    removed = remove_entry(studio.data_dir.catalogs, kind, file_name)
    studio.bus.publish("catalogs/changed", {"kind": kind, "action": "entry_removed", "file": file_name,
                                            "actor": identity.username})
    return jsonify({"removed": removed})


"""``/api/models`` (catalogs, what is on disk, disk space) and ``/api/downloads`` (the queue)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.auth.guard import current_identity, require_admin
from studio.downloads.hub import hub_url
from studio.errors import BadRequest, NotFound
from studio.models.catalog import find_entry
from studio.services import services
from studio.web import EmptyBody, parse_json

bp = Blueprint("downloads", __name__, url_prefix="/api")


class DownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalog_file: str | None = Field(None, max_length=255, description="install a catalog entry by file name")
    url: str | None = Field(None, max_length=4096, pattern=r"^https?://")
    hf_repo: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")
    hf_file: str | None = Field(None, max_length=500)
    revision: str = Field("main", max_length=100, pattern=r"^[A-Za-z0-9._/-]+$")
    dest: str = Field("", max_length=255)
    file: str | None = Field(None, max_length=255)
    name: str | None = Field(None, max_length=255)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    allow_pickle: bool = False


@bp.get("/models")
def models() -> Response:
    studio = services()
    catalogs = studio.catalogs()
    queue = {item["path"]: item for item in studio.downloads.list()
             if item["status"] not in ("completed", "cancelled")}
    on_disk = {item["path"]: item for item in studio.models_root.scan()}
    answer: dict[str, Any] = {"root": str(studio.models_root.root), "disk": studio.models_root.disk(), "catalogs": {}}
    listed: set[str] = set()
    for kind, catalog in catalogs.items():
        entries = []
        for category, entry in catalog.entries:
            path = f"{entry.dest.strip('/')}/{entry.file}".lstrip("/")
            listed.add(path)
            download = queue.get(path)
            status = "present" if path in on_disk else (download["status"] if download else "missing")
            entries.append({"category": category, "name": entry.name, "file": entry.file, "dest": entry.dest,
                            "size_gb": entry.size_gb, "base_model": entry.base_model, "tags": entry.tags,
                            "pair_id": entry.pair_id, "pair_role": entry.pair_role, "status": status,
                            "download": download, "size": on_disk.get(path, {}).get("size")})
        answer["catalogs"][kind] = {"version": catalog.version, "problems": catalog.problems, "entries": entries}
    answer["unlisted"] = [item for path, item in sorted(on_disk.items()) if path not in listed]
    return jsonify(answer)


@bp.get("/downloads")
def list_downloads() -> Response:
    return jsonify({"items": services().downloads.list()})


@bp.post("/downloads")
def start_download() -> Response:
    body = parse_json(DownloadRequest)
    studio = services()
    identity = current_identity()
    if body.catalog_file:
        entry = find_entry(studio.catalogs(), body.catalog_file)
        if entry is None:
            raise NotFound(f"No catalog entry for {body.catalog_file}.", code="not_in_catalog")
        item = studio.downloads.enqueue_entry(entry, requested_by=identity.user_id,
                                              allow_pickle=body.allow_pickle and identity.is_admin)
    else:
        require_admin()  # any URL or repository: admins only
        url, source = body.url, "url"
        if body.hf_repo and body.hf_file:
            url, source = hub_url(studio.settings.hf_endpoint, body.hf_repo, body.hf_file, body.revision), "huggingface"
        file_name = body.file or (body.hf_file or "").rsplit("/", 1)[-1]
        if not url or not file_name:
            raise BadRequest("Give a catalog_file, a url and a file name, or hf_repo and hf_file.",
                             fields={"url": "missing"})
        item = studio.downloads.enqueue(url=url, dest=body.dest, file_name=file_name, name=body.name,
                                        source=source, expected_sha256=body.sha256, requested_by=identity.user_id,
                                        allow_pickle=body.allow_pickle)
    response = jsonify(item)
    response.status_code = 201
    return response


@bp.post("/downloads/<download_id>/<any(pause, resume, retry, cancel):action>")
def control(download_id: str, action: str) -> Response:
    parse_json(EmptyBody)
    return jsonify(getattr(services().downloads, action)(download_id))


@bp.post("/downloads/pause-all")
def pause_all() -> Response:
    parse_json(EmptyBody)
    return jsonify({"changed": services().downloads.set_all_paused(True)})


@bp.post("/downloads/resume-all")
def resume_all() -> Response:
    parse_json(EmptyBody)
    return jsonify({"changed": services().downloads.set_all_paused(False)})

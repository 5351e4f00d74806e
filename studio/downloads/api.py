"""``/api/downloads``: the queue; enqueue a catalog entry, a URL or a Hugging Face file."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, field_validator

from studio.apidocs import documented
from studio.auth.guard import current_identity, require_admin
from studio.downloads.hub import hub_url
from studio.errors import BadRequest, Conflict, NotFound, StudioError
from studio.models.catalog import REVISION, Catalog, companions, find_entry
from studio.safepath import SUFFIX_ROOM, check_relative
from studio.services import services
from studio.web import EmptyBody, parse_json

log = logging.getLogger(__name__)
bp = Blueprint("downloads", __name__, url_prefix="/api")


class DownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalog_file: str | None = Field(None, max_length=255, description="install a catalog entry by file name")
    url: str | None = Field(None, max_length=4096, pattern=r"^https?://")
    hf_repo: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")
    hf_file: str | None = Field(None, max_length=500)
    revision: str = Field("main", max_length=100, pattern=REVISION)
    dest: str = Field("", max_length=255)
    file: str | None = Field(None, max_length=255)
    name: str | None = Field(None, max_length=255)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    allow_pickle: bool = False

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        if any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError("must be a branch, tag or commit")
        return value


def _enqueue_catalog_file(catalogs: dict[str, Catalog], file_name: str, allow_pickle: bool) -> dict[str, Any]:
    """Anyone may install what a catalog lists; only an admin's pickle confirmation counts."""
    identity = current_identity()
    entry = find_entry(catalogs, file_name)
    if entry is None:
        raise NotFound(f"No catalog entry for {file_name}.", code="not_in_catalog")
    downloads = services().downloads
    item = downloads.enqueue_entry(entry, requested_by=identity.user_id,
                                   allow_pickle=allow_pickle and identity.is_admin)
    extra, _ = companions(entry)
    for companion in extra:  # a vision model's mmproj comes with it
        try:
            downloads.enqueue_entry(companion, requested_by=identity.user_id, allow_pickle=False)
        except Conflict as err:
            if err.code not in ("already_installed", "already_queued"):
                raise
    return item


@bp.get("/downloads")
@documented("Downloads: queued, running and finished", tags=["downloads"])
def list_downloads() -> Response:
    return jsonify({"items": services().downloads.list()})


@bp.post("/downloads")
@documented("Queue a model download (catalog entry, URL or Hugging Face file)",
            body=DownloadRequest, answers={200: {}, 201: {}}, tags=["downloads"])
def start_download() -> Response:
    body = parse_json(DownloadRequest)
    studio = services()
    identity = current_identity()
    if body.catalog_file:
        item = _enqueue_catalog_file(studio.catalogs(), body.catalog_file, body.allow_pickle)
    else:
        require_admin()  # any URL or repository: admins only
        url, source = body.url, "url"
        file_name = body.file
        if body.hf_repo and body.hf_file:
            # a path in the repository; its last part is the file name unless ``file`` names another
            hf_file = check_relative(body.hf_file, field="hf_file", reserve=0 if body.file is not None else SUFFIX_ROOM)
            url, source = hub_url(studio.settings.hf_endpoint, body.hf_repo, hf_file, body.revision), "huggingface"
            file_name = body.file if body.file is not None else hf_file.rsplit("/", 1)[-1]
        if not url:
            raise BadRequest("Give a catalog_file, a url (and a folder), or hf_repo and hf_file.",
                             fields={"url": "missing"})
        if not body.dest.strip("/"):
            raise BadRequest("Choose the model folder to save it in (checkpoints, loras, vae…): the models folder "
                             "itself is not one ComfyUI lists.", fields={"dest": "missing"})
        # no file name: the URL's own, else the one the server sends (studio/downloads/names.py)
        item = studio.downloads.enqueue(url=url, dest=body.dest, file_name=file_name, name=body.name,
                                        source=source, expected_sha256=body.sha256, requested_by=identity.user_id,
                                        allow_pickle=body.allow_pickle)
    response = jsonify(item)
    response.status_code = 201
    return response


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalog_files: list[str] = Field(min_length=1, max_length=500)
    allow_pickle: bool = False


@bp.post("/downloads/batch")
@documented("Queue several catalog entries (409 when none could be)", body=BatchRequest,
            answers={201: {}, 409: {"type": "object", "required": ["queued", "refused"], "description": "none queued"}},
            tags=["downloads"])
def start_batch() -> Response:
    """Queues several catalog entries; each one that cannot be queued is named with the reason."""
    body = parse_json(BatchRequest)
    catalogs = services().catalogs()
    queued, refused = [], []
    for file_name in dict.fromkeys(body.catalog_files):
        try:
            queued.append(_enqueue_catalog_file(catalogs, file_name, body.allow_pickle))
        except StudioError as err:
            refused.append({"file": file_name, "code": err.code, "message": err.message})
        except Exception:  # noqa: BLE001 - one entry that breaks never fails the others
            log.exception("batch download: %r could not be queued", file_name[:80])
            refused.append({"file": file_name, "code": "internal_error", "message": "It could not be queued."})
    response = jsonify({"queued": queued, "refused": refused})
    response.status_code = 201 if queued else 409
    return response


# Every control acts on the caller's own downloads (an admin's: anyone's); the rule itself is the
# service's (DownloadManager._owned), so no route can forget it.


@bp.post("/downloads/<download_id>/<any(pause, resume, retry, cancel):action>")
@documented("Pause, resume, retry or cancel one download", body=EmptyBody, tags=["downloads"])
def control(download_id: str, action: str) -> Response:
    parse_json(EmptyBody)
    return jsonify(getattr(services().downloads, action)(download_id, caller=current_identity()))


@bp.post("/downloads/pause-all")
@documented("Pause every download of the caller", body=EmptyBody, tags=["downloads"])
def pause_all() -> Response:
    parse_json(EmptyBody)
    return jsonify({"changed": services().downloads.set_all_paused(True, caller=current_identity())})


@bp.post("/downloads/cancel-all")
@documented("Cancel every download of the caller", body=EmptyBody, tags=["downloads"])
def cancel_all() -> Response:
    parse_json(EmptyBody)
    return jsonify({"changed": services().downloads.cancel_all(caller=current_identity())})


@bp.post("/downloads/retry-failed")
@documented("Retry every failed download of the caller", body=EmptyBody, tags=["downloads"])
def retry_failed() -> Response:
    parse_json(EmptyBody)
    return jsonify({"changed": services().downloads.retry_failed(caller=current_identity())})


@bp.post("/downloads/resume-all")
@documented("Resume every paused download of the caller", body=EmptyBody, tags=["downloads"])
def resume_all() -> Response:
    parse_json(EmptyBody)
    return jsonify({"changed": services().downloads.set_all_paused(False, caller=current_identity())})

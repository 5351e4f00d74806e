"""``/api/civitai``: what CivitAI said about the local model files (read from Studio's own table,
never waiting on CivitAI), their preview pictures, and an admin's "look them up again"."""

from __future__ import annotations

import threading

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import current_identity, require_admin
from studio.errors import NotFound
from studio.jobs.serving import send_inside
from studio.services import services
from studio.web import parse_json, parse_query

bp = Blueprint("civitai", __name__, url_prefix="/api/civitai")

PREVIEW_MAX_AGE = 7 * 24 * 3600


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = Field(True, description="ask about every file now, also those asked recently")


@bp.get("/metadata")
@documented("What CivitAI says about each local model file, by SHA-256", tags=["models", "civitai"])
def metadata() -> Response:
    """``{"items": {sha256: info}, "status"}``; a file not looked up yet is absent from ``items``."""
    studio = services()
    return jsonify({"items": studio.civitai_meta.listing(), "status": studio.civitai_meta.status()})


@bp.get("/trained-words")
@documented("The trained words of each local LoRA, by the name ComfyUI lists it under", tags=["models", "civitai"])
def trained_words() -> Response:
    """``{"items": {"styles/ink.safetensors": ["ink drawing", …]}}``: the Run form's chips for a chosen LoRA."""
    return jsonify({"items": services().civitai_meta.trained_words("loras")})


class ImagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(None, max_length=200, description="`next` of the previous page")


@bp.get("/models/<int:model_id>/images")
@documented("A CivitAI model's images, those above your NSFW level left out (and counted)", query=ImagesQuery,
            tags=["civitai", "gallery"])
def model_images(model_id: int) -> Response:
    """Each with its id, NSFW level, size, prompt and whether it is in your gallery already (save it with
    ``POST /api/gallery/civitai``)."""
    cursor = parse_query(ImagesQuery).cursor
    studio = services()
    return jsonify(studio.gallery.civitai_images(studio.civitai).model_images(current_identity(), model_id, cursor))


@bp.post("/metadata/refresh")
@documented("Look the local model files up on CivitAI again, in the background (admin)", body=RefreshRequest,
            answers={202: {}}, tags=["models", "civitai"])
def refresh() -> Response:
    """Answers at once; the lookup runs in the background and ends with a ``models/metadata`` event."""
    require_admin()
    body = parse_json(RefreshRequest)
    meta = services().civitai_meta
    if not meta.wake(0, force=body.force):  # no scheduler (Studio not serving in full): a thread of its own
        threading.Thread(target=meta.refresh, kwargs={"force": body.force}, name="civitai-metadata",
                         daemon=True).start()
    response = jsonify({"queued": True, "status": meta.status()})
    response.status_code = 202
    return response


@bp.get("/previews/<sha256>.webp")
@documented("A local model's preview picture, copied from CivitAI", answers={200: {"content": "image/webp"}},
            tags=["models", "civitai"])
def preview(sha256: str) -> Response:
    """Studio's own WebP copy; the browser never goes to CivitAI's image host for it."""
    studio = services()
    path = studio.civitai_meta.previews.path(sha256)
    if path is None:
        raise NotFound("This model has no preview.", code="no_preview")
    return send_inside(studio.civitai_meta.previews.folder, path, download_name=f"{sha256}.webp",
                       max_age=PREVIEW_MAX_AGE)

"""System routes: health (public), status, and freeing ComfyUI's memory."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict

from studio.auth.guard import require_admin
from studio.services import services
from studio.web import parse_json

bp = Blueprint("system", __name__, url_prefix="/api")


@bp.get("/health")
def health() -> Response:
    return jsonify(services().system.health())


@bp.get("/status")
def status() -> Response:
    return jsonify(services().system.status())


class FreeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    unload_models: bool = True
    free_memory: bool = True


@bp.post("/comfy/free")
def free_comfy_memory() -> Response:
    require_admin()  # unloading models stops everyone's next job from starting warm
    request = parse_json(FreeRequest)
    services().system.free_comfy_memory(unload_models=request.unload_models, free_memory=request.free_memory)
    return jsonify({"ok": True})

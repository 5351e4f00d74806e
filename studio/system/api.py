"""System routes: health (public), status, ComfyUI's model lists refreshed, and freeing its memory."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import require_admin
from studio.errors import BadRequest
from studio.services import services
from studio.web import parse_json

bp = Blueprint("system", __name__, url_prefix="/api")


@bp.get("/health")
@documented("Liveness: answers while the process serves (no sign-in)", tags=["system"])
def health() -> Response:
    return jsonify(services().system.health())


@bp.get("/status")
@documented("ComfyUI connection, queue and machine figures", tags=["system"])
def status() -> Response:
    return jsonify(services().system.status())


class FreeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    unload_models: bool = True
    free_memory: bool = True


@bp.post("/comfy/free")
@documented("Ask ComfyUI to free memory (admin)", body=FreeRequest, tags=["system"])
def free_comfy_memory() -> Response:
    require_admin()  # unloading models stops everyone's next job from starting warm
    request = parse_json(FreeRequest)
    services().system.free_comfy_memory(unload_models=request.unload_models, free_memory=request.free_memory)
    return jsonify({"ok": True})


class ModelsRefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # ComfyUI's folder keys (checkpoints, loras, diffusion_models…); none: every folder it has.
    folders: list[str] | None = Field(None, max_length=32)


FOLDER_KEY = re.compile(r"^[a-z0-9_]{1,64}$")


@bp.post("/comfy/models/refresh")
@documented("Ask ComfyUI to list its models again (admin)", body=ModelsRefreshRequest, tags=["system"])
def refresh_comfy_models() -> Response:
    """Any signed-in person: the lists are everyone's, and the service throttles what reaches ComfyUI."""
    request = parse_json(ModelsRefreshRequest)
    bad = [name for name in request.folders or [] if not FOLDER_KEY.match(name)]
    if bad:
        raise BadRequest("Model folders are ComfyUI's folder keys, such as checkpoints or loras.",
                         fields={"folders": f"not a folder key: {bad[0][:64]!r}"})
    return jsonify(services().system.refresh_models(request.folders))

"""``/api/settings``: admins read (secrets masked) and change Studio's settings."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from studio.apidocs import documented
from studio.auth.guard import require_admin
from studio.errors import BadRequest
from studio.preferences.probe import probe_comfyui
from studio.services import services
from studio.web import request_json

bp = Blueprint("preferences", __name__, url_prefix="/api/settings")


@bp.get("")
@documented("Studio's settings, secrets masked (admin)", tags=["settings"])
def read() -> Response:
    require_admin()
    return jsonify(services().preferences.public_view())


@bp.put("")
@documented("Change settings (admin): a JSON object of setting names to values", tags=["settings"])
def change() -> Response:
    actor = require_admin()
    body: Any = request_json()
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    preferences = services().preferences
    answer = preferences.update(body, actor=actor.username)
    if "comfyui_url" in body:  # saved whatever answers; the page says what did (probe.py)
        answer["comfyui_check"] = probe_comfyui(preferences.get("comfyui_url"))
    return jsonify(answer)

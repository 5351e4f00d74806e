"""``/api/settings``: admins read (secrets masked) and change Studio's settings."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from studio.auth.guard import require_admin
from studio.errors import BadRequest
from studio.services import services
from studio.web import request_json

bp = Blueprint("preferences", __name__, url_prefix="/api/settings")


@bp.get("")
def read() -> Response:
    require_admin()
    return jsonify(services().preferences.public_view())


@bp.put("")
def change() -> Response:
    actor = require_admin()
    body: Any = request_json()
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return jsonify(services().preferences.update(body, actor=actor.username))

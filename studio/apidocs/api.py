"""``/api/openapi.json``: the generated OpenAPI document (built once per app, then served)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from studio.apidocs.decorator import documented
from studio.apidocs.spec import build_document
from studio.auth.guard import PUBLIC, SETUP, allow_run_scope

bp = Blueprint("apidocs", __name__, url_prefix="/api")
DOCUMENT = "studio.openapi"


def document() -> dict[str, Any]:
    """The app's document; routes are all registered before the first request, so it never changes."""
    found: dict[str, Any] | None = current_app.extensions.get(DOCUMENT)
    if found is None:
        found = build_document(current_app, public_endpoints=PUBLIC | SETUP)
        current_app.extensions[DOCUMENT] = found
    return found


@bp.get("/openapi.json")
@documented("This document: every route, its input and its answers (OpenAPI 3.1)", tags=["api"],
            answers={200: {"type": "object", "required": ["openapi", "paths"]}})
@allow_run_scope
def openapi() -> Response:
    response = jsonify(document())
    response.headers["Cache-Control"] = "no-cache"
    return response

"""Request parsing and error responses shared by every blueprint.

Handlers stay thin: ``parse_json(Model)`` / ``parse_query(Model)`` turn input into a validated
pydantic model or a 400 naming each bad field; ``register_error_handlers`` makes every failure,
Werkzeug's own included, answer with the one error body from ``studio.errors``.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError
from werkzeug.exceptions import HTTPException

from studio.errors import HTTP_STATUS_CODES, BadRequest, StudioError, error_body

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def _fields(err: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for problem in err.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "body"
        fields.setdefault(name, problem["msg"])
    return fields


def parse_json(model: type[M]) -> M:
    raw = request.get_data(cache=True)
    if not raw.strip():
        data: Any = {}
    else:
        data = request.get_json(force=True, silent=True)
        if data is None:
            raise BadRequest("The request body is not valid JSON.", code="invalid_json")
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        fields = _fields(err)
        raise BadRequest(f"Invalid value for {', '.join(fields)}.", fields=fields) from err


class EmptyBody(BaseModel):
    """For actions that take no input: anything sent anyway must be an empty JSON object."""

    model_config = ConfigDict(extra="forbid")


def parse_query(model: type[M]) -> M:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as err:
        fields = _fields(err)
        raise BadRequest(f"Invalid query parameter {', '.join(fields)}.", fields=fields) from err


def _respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(StudioError)
    def _studio_error(err: StudioError) -> Response:
        return _respond(err.status, err.body(), err.headers)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        code, message = HTTP_STATUS_CODES.get(status, ("http_error", err.name))
        details = None
        headers: dict[str, str] = {}
        if status == 405:
            allowed = sorted(err.valid_methods or []) if hasattr(err, "valid_methods") else []
            details = {"allowed": allowed}
            headers["Allow"] = ", ".join(allowed)
        if status == 400 and request.path == "/ws":
            message = "This address only accepts WebSocket connections."
        return _respond(status, error_body(code, message, details), headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        code, message = HTTP_STATUS_CODES[500]
        return _respond(500, error_body(code, message))

"""Request parsing and error responses shared by every blueprint.

Handlers stay thin: ``parse_json(Model)`` / ``parse_query(Model)`` turn input into a validated
pydantic model or a 400 naming each bad field; ``register_error_handlers`` makes every failure,
Werkzeug's own included, answer with the one error body from ``studio.errors``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from studio import jsonio
from studio.errors import HTTP_STATUS_CODES, BadRequest, PayloadTooLarge, StudioError, error_body

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def _fields(err: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for problem in err.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "body"
        fields.setdefault(name, problem["msg"])
    return fields


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, made strict: refuses NaN/huge numbers/deep nesting in, never writes NaN out."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return jsonio.loads(s)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return jsonio.dumps(obj, **kwargs)


# Most bodies are a form's worth of fields; the few routes that take more (a catalog) say so.
DEFAULT_JSON_BYTES = 2 * 1024 * 1024


def request_json(max_bytes: int = DEFAULT_JSON_BYTES) -> Any:
    """The request body as JSON ({} when empty), parsed by the one strict parser, else a 400.

    The size is checked before a byte is parsed: parsing costs many times the body's size in
    memory, so an anonymous 64 MiB sign-in body must never get that far.
    """
    if (request.content_length or 0) > max_bytes:
        raise PayloadTooLarge(f"This request body may be at most {max_bytes // 1024} KiB.")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"This request body may be at most {max_bytes // 1024} KiB.")
    if not raw.strip():
        return {}
    try:
        return jsonio.loads(raw)
    except jsonio.JSONRefused as err:
        raise BadRequest(f"The request body is not usable JSON: {err}.", code="invalid_json") from err


def parse_json(model: type[M], *, max_bytes: int = DEFAULT_JSON_BYTES) -> M:
    data = request_json(max_bytes)
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        fields = _fields(err)
        raise BadRequest(f"Invalid value for {', '.join(fields)}.", fields=fields) from err


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        return value
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise ValueError("is not a time Studio can use") from err


# A moment in time from a request: without a time zone it is UTC; always answered in UTC. A value
# whose conversion would overflow (year 1 at +14:00, 9999 at -23:59) is a 400, not a 500.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class EmptyBody(BaseModel):
    """For actions that take no input: anything sent anyway must be an empty JSON object."""

    model_config = ConfigDict(extra="forbid")


MAX_QUERY_VALUE = 4096


def parse_query(model: type[M]) -> M:
    args = request.args.to_dict()
    for key, value in args.items():
        if len(value) > MAX_QUERY_VALUE or "\x00" in value:
            raise BadRequest(f"Invalid query parameter {key[:40]}.", fields={key[:40]: "too long or contains NUL"})
    try:
        parsed = model.model_validate(args)
    except ValidationError as err:
        fields = _fields(err)
        raise BadRequest(f"Invalid query parameter {', '.join(fields)}.", fields=fields) from err
    for name in type(parsed).model_fields:
        value = getattr(parsed, name)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > DB_INT_MAX:
            raise BadRequest(f"Invalid query parameter {name}.", fields={name: "number too large"})
    return parsed


# The largest integer a database column holds (SQLite and PostgreSQL BIGINT): ids, cursors, limits.
DB_INT_MAX = 2**63 - 1


class BoundedIntConverter(IntegerConverter):
    """``<int:id>`` in a route, refusing (404) a number no row can have instead of overflowing."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", DB_INT_MAX)
        super().__init__(map, *args, **kwargs)


def _respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


# Every /api answer, JSON or file: never sniffed into HTML, never allowed to run a script or load
# anything when opened directly in a tab. Pages set their own, looser policy.
API_CONTENT_SECURITY_POLICY = "sandbox; default-src 'none'; frame-ancestors 'none'"


def protect_api_answers(app: Flask) -> None:
    @app.after_request
    def _api_headers(response: Response) -> Response:
        if request.path.startswith("/api/"):
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
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

"""Studio's error classes and the one JSON error body.

Every failure a client sees has the shape ``{"error": {"code", "message", "details"}}``. Services
raise these classes and never think about HTTP; the app's error handler turns them into responses.
This is the only module that knows the body's shape.
"""

from __future__ import annotations

from typing import Any


class StudioError(Exception):
    """A failure meant for the person or program that made the request."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


class BadRequest(StudioError):
    """Input that cannot be used: ``details.fields`` names each offending field."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code, details={"fields": fields} if fields else None)
        self.fields = fields or {}


class Unauthorized(StudioError):
    status = 401
    code = "unauthorized"


class Forbidden(StudioError):
    status = 403
    code = "forbidden"


class NotFound(StudioError):
    status = 404
    code = "not_found"


class MethodNotAllowed(StudioError):
    status = 405
    code = "method_not_allowed"


class Conflict(StudioError):
    status = 409
    code = "conflict"


class MisdirectedRequest(StudioError):
    """A request for a host name Studio does not serve (DNS rebinding, a wrong proxy)."""

    status = 421
    code = "host_not_allowed"


class PayloadTooLarge(StudioError):
    status = 413
    code = "payload_too_large"


class Unprocessable(StudioError):
    """Well-formed input that cannot be acted on as things stand (a workflow missing a model...)."""

    status = 422
    code = "unprocessable"


class TooManyRequests(StudioError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(
            message,
            code=code,
            details={"retry_after_s": retry_after_s},
            headers={"Retry-After": str(retry_after_s)},
        )


class InsufficientStorage(StudioError):
    """The disk cannot hold what was asked for (a download bigger than the free space)."""

    status = 507
    code = "not_enough_space"


class ServiceUnavailable(StudioError):
    """Something Studio depends on (ComfyUI, the database) cannot be reached right now."""

    status = 503
    code = "service_unavailable"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


# HTTP statuses Werkzeug raises on its own, mapped to Studio codes and plain messages.
HTTP_STATUS_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorized", "Sign in first."),
    403: ("forbidden", "You are not allowed to do that."),
    404: ("not_found", "Nothing here."),
    405: ("method_not_allowed", "This address does not accept that method."),
    409: ("conflict", "That conflicts with the current state."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send JSON with Content-Type: application/json."),
    422: ("unprocessable", "The request cannot be processed."),
    429: ("rate_limited", "Too many requests; slow down."),
    500: ("internal_error", "Something went wrong inside Studio. The log has the details."),
    503: ("service_unavailable", "A service Studio needs is not available."),
}

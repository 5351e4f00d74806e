"""Every route answers failures with the one error body, the right status, and no stack trace."""

import re
from collections import defaultdict

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio import errors
from tests.conftest import signed_in_admin

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def assert_error_shape(response, status: int, code: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


CONVERTED = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


def concrete_path(rule) -> str:  # type: ignore[no-untyped-def]
    """A real path for a URL rule: 1 for ints, the first choice for any(...), x otherwise."""

    def value(match: re.Match) -> str:
        converter, arguments = match.group(1), match.group(2)
        if converter == "int":
            return "1"
        if converter == "any":
            return arguments.split(",")[0].strip().strip("'\"")
        return "x/y" if converter == "path" else "x"

    return CONVERTED.sub(value, rule.rule)


def methods_by_path(app: Flask) -> dict[str, set[str]]:
    paths: dict[str, set[str]] = defaultdict(set)
    for rule in app.url_map.iter_rules():
        paths[concrete_path(rule)] |= set(rule.methods or ())
    return paths


def test_every_route_refuses_methods_it_does_not_take(app: Flask, client: FlaskClient) -> None:
    checked = 0
    for path, methods in methods_by_path(app).items():
        for method in sorted(HTTP_METHODS - methods):
            response = client.open(path, method=method)
            error = assert_error_shape(response, 405, "method_not_allowed")
            assert set(error["details"]["allowed"]) >= (methods - {"OPTIONS"})
            checked += 1
    assert checked > 30


OPEN_BODIES = {"/api/llm/v1/chat/completions"}


def test_every_json_route_names_bad_input(app: Flask, client: FlaskClient) -> None:
    # /api/auth/setup is closed (409) once set up (test_auth_guard checks its input before that);
    # /api/inputs, /api/workflows, /api/presets/import and /api/civitai/import/*/file take multipart uploads (test_jobs,
    # test_workflow_import, test_presets check them).
    writes = [(concrete_path(r), method) for r in app.url_map.iter_rules()
              if r.rule.startswith("/api/") and r.rule not in ("/api/auth/setup", "/api/inputs", "/api/workflows",
                                                                           "/api/presets/import")
              # A CivitAI import of a dropped image file is a multipart upload (test_civitai_import checks it).
              and not (r.rule.startswith("/api/civitai/import/") and r.rule.endswith("/file"))
              for method in ("POST", "PATCH", "PUT") if method in (r.methods or ())]
    assert len(writes) > 8
    for path, method in writes:
        sent = client.open(path, method=method, data="{not json", content_type="application/json")
        assert sent.get_json()["error"]["code"] == "invalid_json", (method, path)
        assert_error_shape(sent, 400, "invalid_json")
        assert_error_shape(client.open(path, method=method, json=["a", "list"]), 400, "invalid_json")
        error = assert_error_shape(client.open(path, method=method, json={"no_such_field": 1}), 400, "bad_request")
        if path in OPEN_BODIES:
            continue  # forwards OpenAI's open-ended request body: unknown fields are the model server's
        assert "no_such_field" in error["details"]["fields"], path


def test_bad_query_parameters_are_named(client: FlaskClient) -> None:
    error = assert_error_shape(client.get("/api/events?limit=abc"), 400, "bad_request")
    assert list(error["details"]["fields"]) == ["limit"]
    error = assert_error_shape(client.get("/api/events?limit=100000"), 400)
    assert "limit" in error["details"]["fields"]


def test_unknown_routes_and_websocket_misuse(client: FlaskClient) -> None:
    assert_error_shape(client.delete("/api/users/999"), 404, "not_found")
    assert_error_shape(client.get("/api/nope"), 404, "not_found")
    assert_error_shape(client.get("/assets/../pyproject.toml"), 404)
    assert_error_shape(client.get("/ws"), 400, "bad_request")


def test_oversized_bodies_get_413(settings, services) -> None:  # type: ignore[no-untyped-def]
    from studio.app import create_app

    small = create_app(settings.model_copy(update={"studio_max_body_mb": 1}), services).test_client()
    assert_error_shape(small.post("/api/auth/setup", data=b"x" * (2 * 1024 * 1024),
                                  content_type="application/json"), 413, "payload_too_large")


def test_comfyui_down_is_503_with_a_reason(client: FlaskClient, comfy_server) -> None:  # type: ignore[no-untyped-def]
    comfy_server.stop()
    error = assert_error_shape(client.post("/api/comfy/free", json={}), 503, "comfy_unavailable")
    assert "cannot be reached" in error["message"]


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (errors.BadRequest("bad", fields={"width": "too big"}), 400, "bad_request"),
        (errors.Unauthorized("sign in"), 401, "unauthorized"),
        (errors.Forbidden("no"), 403, "forbidden"),
        (errors.NotFound("gone"), 404, "not_found"),
        (errors.Conflict("busy"), 409, "conflict"),
        (errors.PayloadTooLarge("big"), 413, "payload_too_large"),
        (errors.Unprocessable("missing model"), 422, "unprocessable"),
        (errors.TooManyRequests("slow", retry_after_s=7), 429, "rate_limited"),
        (errors.ServiceUnavailable("down"), 503, "service_unavailable"),
        (RuntimeError("secret internals /etc/passwd"), 500, "internal_error"),
    ],
)
def test_each_error_class_maps_to_its_status(app: Flask, raised: Exception, status: int, code: str) -> None:
    @app.get(f"/api/_raise_{status}")
    def _raise() -> None:
        raise raised

    response = signed_in_admin(app).get(f"/api/_raise_{status}")
    error = assert_error_shape(response, status, code)
    if status == 500:
        assert "secret internals" not in response.get_data(as_text=True)
    if status == 429:
        assert response.headers["Retry-After"] == "7"
    if status == 400:
        assert error["details"] == {"fields": {"width": "too big"}}

"""The OpenAPI document: generated from the app, so every route is described and nothing else is."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from studio.apidocs.spec import EXCLUDED, IGNORED_METHODS
from studio.jobs.api import JobQuery
from studio.workflows.api import RunRequest
from tests.auth_helpers import Script, make_token


def _document(client: FlaskClient) -> dict[str, Any]:
    answer = client.get("/api/openapi.json")
    assert answer.status_code == 200
    assert answer.is_json
    return dict(answer.get_json())


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", rule)


def test_every_route_is_described_and_nothing_else(app: Flask, client: FlaskClient) -> None:
    document = _document(client)
    assert document["openapi"] == "3.1.0"
    served = {(method.lower(), _openapi_path(rule.rule)) for rule in app.url_map.iter_rules()
              if rule.endpoint not in EXCLUDED for method in (rule.methods or set()) - IGNORED_METHODS}
    described = {(method, path) for path, item in document["paths"].items() for method in item}

    assert served - described == set(), "routes the document does not describe"
    assert described - served == set(), "the document describes routes that do not exist"
    missing = sorted(f"{m.upper()} {p}" for p, item in document["paths"].items() for m, op in item.items()
                     if op.get("x-undocumented") or not op.get("summary"))
    assert missing == [], "routes without @documented"
    assert set(EXCLUDED) == {"events.live"}  # only the WebSocket, which OpenAPI cannot describe
    assert "/ws" in document["info"]["description"]  # and the document says so


def test_operation_ids_are_unique_and_each_operation_has_a_tag(client: FlaskClient) -> None:
    operations = [op for item in _document(client)["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert all(op["tags"] for op in operations)


def test_bodies_and_queries_come_from_the_models_the_routes_validate_with(client: FlaskClient) -> None:
    document = _document(client)
    schemas = document["components"]["schemas"]
    run = document["paths"]["/api/workflows/{workflow_id}/run"]["post"]
    ref = run["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/RunRequest"
    assert schemas["RunRequest"]["properties"].keys() == RunRequest.model_json_schema()["properties"].keys()
    assert schemas["RunRequest"]["properties"]["count"]["maximum"] == RunRequest.model_fields["count"].metadata[1].le
    assert schemas["RunRequest"]["additionalProperties"] is False  # extra="forbid" shows
    assert "202" in run["responses"]
    assert run["responses"]["202"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Accepted"
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in run["parameters"])

    listing = document["paths"]["/api/jobs"]["get"]
    names = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert names == set(JobQuery.model_fields)
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 200)
    assert not any("$defs" in str(schema) for schema in schemas.values()), "nested $defs must be components"
    refs = set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", str(document)))
    assert refs <= set(schemas), "every $ref resolves"


def test_path_parameters_follow_the_url_converters(client: FlaskClient) -> None:
    paths = _document(client)["paths"]
    output = paths["/api/jobs/{job_id}/outputs/{output_id}"]["get"]["parameters"]
    by_name = {p["name"]: p for p in output}
    assert by_name["output_id"]["schema"]["type"] == "integer"
    assert by_name["output_id"]["schema"]["maximum"] == 2**63 - 1
    assert by_name["job_id"]["schema"]["type"] == "string"
    action = paths["/api/downloads/{download_id}/{action}"]["post"]["parameters"]
    assert next(p for p in action if p["name"] == "action")["schema"]["enum"] == ["cancel", "pause", "resume", "retry"]


def test_errors_share_one_schema_and_security_is_described(client: FlaskClient) -> None:
    document = _document(client)
    components = document["components"]
    error = components["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = components["schemas"]["ErrorDetail"]
    assert {"code", "message"} <= set(detail["required"])
    own_bodies = set()  # error statuses whose route documents another body on purpose
    for item in document["paths"].values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if status == "default" or int(status) >= 400:
                    if "$ref" in answer:
                        assert answer["$ref"] == "#/components/responses/Error", (operation["operationId"], status)
                    else:
                        own_bodies.add((operation["operationId"], status))
    assert own_bodies == {("downloads_start_batch", "409")}  # "none queued": the 201 body, each refusal named
    schemes = components["securitySchemes"]
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie", "name": "studio_session"}
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKey"]["name"] == "X-API-Key"
    assert document["paths"]["/api/health"]["get"]["security"] == [{}]  # public
    assert "security" not in document["paths"]["/api/jobs"]["get"]  # the default: signed in


def test_the_document_needs_a_sign_in_and_a_run_token_may_read_it(app: Flask, client: FlaskClient) -> None:
    assert app.test_client().get("/api/openapi.json").status_code == 401
    script = Script(app, make_token(client, scope="run")["token"])
    assert script.get("/api/openapi.json").status_code == 200


def test_the_documented_answer_of_a_run_is_what_it_answers(client: FlaskClient) -> None:
    """202 with one link set per job, each pointing at routes the document describes."""
    from tests.jobs_helpers import upload_image

    paths = _document(client)["paths"]
    answer = client.post("/api/workflows/image-resize/run", json={"params": {"image": upload_image(client)},
                                                                  "count": 2})
    assert answer.status_code == 202
    body = answer.get_json()
    assert [link["job_id"] for link in body["links"]] == [job["id"] for job in body["items"]]
    assert answer.headers["Location"] == f"/api/jobs/{body['items'][0]['id']}"
    for link in body["links"]:
        assert client.get(link["job"]).status_code == 200
        assert "/api/jobs/{job_id}/events" in paths
        assert link["events"].endswith("/events")
        assert link["wait"] == f"/api/jobs/{link['job_id']}?wait=30"

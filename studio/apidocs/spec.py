"""Builds the OpenAPI 3.1 document from the app itself.

Paths and methods come from Flask's url_map (so a route cannot exist undescribed), path
parameters from each rule's converters, request bodies and query parameters from the pydantic
models the handlers validate with (``model_json_schema`` through ``models_json_schema``, whose
``$defs`` become ``components/schemas``), and the words from ``@documented``. Every error answer
refers to the one ``Error`` schema, the body ``studio.errors`` writes.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import AnyConverter, BaseConverter, IntegerConverter, PathConverter, Rule

from studio import __version__
from studio.apidocs.decorator import Multipart, RouteDoc, doc_of
from studio.idempotency import HEADER as IDEMPOTENCY_HEADER
from studio.idempotency import MAX_KEY_LENGTH, is_idempotent

# Routes the document leaves out, each with the reason. Nothing else may be missing.
EXCLUDED: dict[str, str] = {
    "events.live": "/ws is a WebSocket (an HTTP upgrade); OpenAPI cannot describe it. docs/events.md does.",
}
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"<(?:[^:<>]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_DESCRIPTIONS = {
    400: "The input cannot be used; details.fields names each bad field.",
    401: "Not signed in, or the token is invalid.",
    403: "Not allowed: wrong role, token scope or CSRF token.",
    404: "Nothing here, or not yours.",
    422: "Well-formed, but cannot be acted on as things stand.",
    "default": "Any other error, in the same shape.",
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(title="ErrorDetail")
    code: str = Field(description="a stable machine-readable code, e.g. job_not_found")
    message: str = Field(description="what went wrong, in words for a person")
    details: Any = Field(None, description="more facts: fields (per bad field), allowed methods, retry_after_s…")


class Error(BaseModel):
    """The one error body: every failure answers it (``studio.errors``)."""

    error: ErrorDetail


def _path_and_params(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    converters: dict[str, BaseConverter] = getattr(rule, "_converters", {})
    params: list[dict[str, Any]] = []
    for name in _PARAM.findall(rule.rule):
        converter = converters.get(name)
        schema: dict[str, Any]
        if isinstance(converter, IntegerConverter):
            schema = {"type": "integer", "minimum": 0}
            if getattr(converter, "max", None) is not None:
                schema["maximum"] = converter.max
        elif isinstance(converter, AnyConverter):
            schema = {"type": "string", "enum": sorted(converter.items)}
        elif isinstance(converter, PathConverter):
            schema = {"type": "string", "minLength": 1}
        else:
            schema = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", rule.rule), params


class _Schemas:
    """Every model the document names, rendered together so shared ``$defs`` get one name each."""

    def __init__(self, models: list[tuple[type[BaseModel], JsonSchemaMode]]) -> None:
        unique = list(dict.fromkeys(models))
        keys, defs = models_json_schema(unique, ref_template=REF) if unique else ({}, {})
        self.refs: dict[tuple[Any, str], dict[str, Any]] = {(key[0], str(key[1])): value for key, value in keys.items()}
        self.components: dict[str, Any] = dict(defs.get("$defs", {}))

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def inline(self, model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
        ref = self.refs[(model, mode)].get("$ref", "")
        found: dict[str, Any] = self.components.get(ref.rsplit("/", 1)[-1], {})
        return found


def _models_of(doc: RouteDoc) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    if doc.body is not None:
        found.append((doc.body, "validation"))
    if doc.query is not None:
        found.append((doc.query, "validation"))
    for answer in doc.answers.values():
        if isinstance(answer, type) and issubclass(answer, BaseModel):
            found.append((answer, "serialization"))
    return found


def _query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query value is text or absent, never JSON null: ``X | None = None`` is documented as an
    optional X (absent), not as a value that may be null."""
    prop = {key: value for key, value in prop.items() if key != "title"}
    options = prop.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(options):
            del prop["anyOf"]
            prop = {**kept[0], **prop}
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def _query_params(schemas: _Schemas, model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = schemas.inline(model)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _query_schema(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if prop.get("description"):
            param["description"] = prop["description"]
        params.append(param)
    return params


def _body(schemas: _Schemas, model: type[BaseModel]) -> dict[str, Any]:
    required = bool(schemas.inline(model).get("required"))
    media = "multipart/form-data" if issubclass(model, Multipart) else "application/json"
    return {"required": required, "content": {media: {"schema": schemas.ref(model)}}}


def _answer(schemas: _Schemas, status: int, answer: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(answer, type) and issubclass(answer, BaseModel):
        description = (answer.__doc__ or "").strip().split("\n")[0] or "OK"
        return {"description": description, "content": {"application/json": {"schema": schemas.ref(answer,
                                                                                                       "serialization")}}}
    spec = dict(answer)
    description = str(spec.pop("description", "OK" if status < 300 else "See the status"))
    if spec.pop("empty", False) or status in (204, 304):
        return {"description": description}
    media = spec.pop("content", None)
    if isinstance(media, str):
        media = {media: {}}
    if isinstance(media, dict):
        content = {}
        for name, given in media.items():
            schema = given.get("schema") if isinstance(given, dict) else None
            if schema is None:
                schema = {} if "json" in name else {"type": "string"} if name.startswith("text/") else {
                    "type": "string", "format": "binary"}
            content[name] = {"schema": schema}
        return {"description": description, "content": content}
    return {"description": description, "content": {"application/json": {"schema": spec}}}


def _operation(schemas: _Schemas, endpoint: str, method: str, doc: RouteDoc | None, view: Any,
               path_params: list[dict[str, Any]], public: bool, unique_id: str) -> dict[str, Any]:
    tag = endpoint.split(".", 1)[0]
    if doc is None:
        return {"operationId": unique_id, "summary": "(not documented)", "tags": [tag], "x-undocumented": True,
                "responses": {"default": {"$ref": "#/components/responses/Error"}}}
    operation: dict[str, Any] = {"operationId": unique_id, "summary": doc.summary, "tags": doc.tags or [tag]}
    if doc.description:
        operation["description"] = doc.description
    params = list(path_params)
    if doc.query is not None:
        params += _query_params(schemas, doc.query)
    if is_idempotent(view):
        params.append({"name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                       "description": "retry safely: the first answer to this key is kept 24 h and replayed",
                       "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
                                  "pattern": "^[ -~]+$"}})
    if params:
        operation["parameters"] = params
    if doc.body is not None:
        operation["requestBody"] = _body(schemas, doc.body)
    responses: dict[str, Any] = {}
    for status, answer in sorted(doc.answers.items()):
        responses[str(status)] = _answer(schemas, status, answer)
    if not any(200 <= status < 400 for status in doc.answers):
        responses["200"] = {"description": "OK", "content": {"application/json": {"schema": {}}}}
    errors = [401, 403, 404] if not public else [404]
    if params or doc.body is not None:
        errors.insert(0, 400)
    if doc.body is not None or is_idempotent(view):
        errors.append(422)
    for status in errors:
        responses.setdefault(str(status), {"$ref": "#/components/responses/Error",
                                           "description": _DESCRIPTIONS[status]})
    responses["default"] = {"$ref": "#/components/responses/Error"}
    operation["responses"] = responses
    if public:
        operation["security"] = [{}]
    return operation


def _rules(app: Flask) -> list[Rule]:
    return sorted((rule for rule in app.url_map.iter_rules() if rule.endpoint not in EXCLUDED),
                  key=lambda rule: rule.rule)


def build_document(app: Flask, *, public_endpoints: frozenset[str] = frozenset()) -> dict[str, Any]:
    rules = _rules(app)
    docs = {rule.endpoint: doc_of(app.view_functions.get(rule.endpoint)) for rule in rules}
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Error, "serialization")]
    for doc in docs.values():
        if doc is not None:
            models += _models_of(doc)
    schemas = _Schemas(models)
    paths: dict[str, dict[str, Any]] = {}
    tags: set[str] = set()
    used_ids: set[str] = set()
    for rule in rules:
        path, path_params = _path_and_params(rule)
        view = app.view_functions.get(rule.endpoint)
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            base = rule.endpoint.replace(".", "_")
            unique_id = base if base not in used_ids else f"{base}_{method.lower()}"
            counter = 2
            while unique_id in used_ids:
                unique_id, counter = f"{base}_{method.lower()}_{counter}", counter + 1
            used_ids.add(unique_id)
            operation = _operation(schemas, rule.endpoint, method, docs[rule.endpoint], view, path_params,
                                   rule.endpoint in public_endpoints, unique_id)
            tags.update(operation["tags"])
            paths.setdefault(path, {})[method.lower()] = operation
    components_schemas = dict(sorted(schemas.components.items()))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ComfyUI Studio API",
            "version": __version__,
            "description": "Every route Studio serves. Errors answer {\"error\": {\"code\", \"message\", "
                           "\"details\"}}. Runs are asynchronous: they answer 202 with links to follow each job "
                           "(GET /api/jobs/{id}?wait=30, or the server-sent events at /api/jobs/{id}/events). "
                           "Not described here: " + "; ".join(EXCLUDED.values()),
        },
        "tags": [{"name": tag} for tag in sorted(tags)],
        "paths": paths,
        "components": {
            "schemas": components_schemas,
            "responses": {"Error": {"description": "An error, in Studio's one error body.",
                                    "content": {"application/json": {"schema": schemas.ref(Error, "serialization")}}}},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "studio_session",
                            "description": "The web page's session cookie. Writes also need the X-CSRF-Token header "
                                           "that sign-in answers."},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API token (Account → API tokens): Authorization: Bearer sst_…"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "The same API token, in X-API-Key instead."},
            },
        },
        "security": [{"session": []}, {"bearer": []}, {"apiKey": []}],
    }


def undocumented(document: dict[str, Any]) -> list[str]:
    """``METHOD path`` of every operation without ``@documented`` (the coverage test wants none)."""
    return sorted(f"{method.upper()} {path}" for path, item in document["paths"].items()
                  for method, operation in item.items() if operation.get("x-undocumented"))

"""``/api/llm``: the server (admins start, stop and read its log) and an OpenAI-compatible
pass-through for chats, from the browser or a script with an API token.

The pass-through forwards the request body as it came and the answer as it comes, chunk by chunk
for ``stream: true`` (server-sent events ending with ``data: [DONE]``). Closing the connection stops
the generation: the upstream connection is closed with it, and llama-server stops on its side.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
from flask import Blueprint, Response, jsonify, request, stream_with_context
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import allow_run_scope, current_identity, require_admin
from studio.errors import BadRequest, Conflict, ServiceUnavailable
from studio.llm import process, vision
from studio.llm.server import LaunchConfig
from studio.services import services
from studio.web import EmptyBody, parse_json, request_json

bp = Blueprint("llm", __name__, url_prefix="/api/llm")

CHAT_BYTES = 25 * 1024 * 1024  # a few images for a vision model, base64-encoded
MAX_MESSAGES = 1000
ANSWER_TIMEOUT_S = 600


class LogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: int = Field(200, ge=1, le=5000)


@bp.get("/server")
@documented("The LLM server's state (admins also get its process, port, build and local models)", tags=["llm"])
def server_status() -> Response:
    identity = current_identity()
    studio = services()
    # resume_model: a job pushed that model out; the next chat loads it again (so the page lets one send).
    return jsonify({**studio.llm.status(full=identity.is_admin), **studio.arbiter.chat_view()})


@bp.post("/server/start")
@documented("Start llama-server with a model (a running one is stopped first; admin)", body=LaunchConfig,
            answers={202: {}}, tags=["llm"])
def server_start() -> tuple[Response, int]:
    require_admin()
    config = parse_json(LaunchConfig)
    return jsonify(services().arbiter.start(config)), 202


@bp.post("/server/stop")
@documented("Stop llama-server (admin)", body=EmptyBody, tags=["llm"])
def server_stop() -> Response:
    require_admin()
    parse_json(EmptyBody)
    return jsonify(services().arbiter.stop())


@bp.get("/arbiter")
@documented("Who holds the GPU: the policy, the GPUs' memory, and what ComfyUI and the LLM take of it", tags=["llm"])
def arbiter_view() -> Response:
    current_identity()
    return jsonify(services().arbiter.view())


@bp.get("/server/logs")
@documented("The last lines of llama-server's log (admin)", query=LogQuery, tags=["llm"])
def server_logs() -> Response:
    require_admin()
    try:
        query = LogQuery.model_validate(request.args.to_dict())
    except ValueError as err:
        raise BadRequest("lines must be a whole number from 1 to 5000.", fields={"lines": "1–5000"}) from err
    llm = services().llm
    return jsonify({"lines": process.log_tail(llm.logs_dir, query.lines), "file": str(llm.logs_dir / process.LOG_NAME)})


def _chat_body() -> dict[str, Any]:
    body = request_json(CHAT_BYTES)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
        raise BadRequest(f"messages must be a list of 1 to {MAX_MESSAGES} messages.", fields={"messages": "required"})
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("Each message must be an object with a role and content.", fields={"messages": "bad item"})
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest("stream must be true or false.", fields={"stream": "must be a boolean"})
    return body


# The last event of an answer the server stopped giving (stopped for a job, or crashed): the reader
# gets a reason instead of a broken connection.
CUT_EVENT = (b'data: {"error": {"code": "llm_stopped", "message": "The answer was cut off: the LLM server '
             b'stopped (to give the GPU to a ComfyUI job, or it crashed)."}}\n\n')


def _relay(upstream: requests.Response) -> Iterator[bytes]:
    try:
        yield from upstream.iter_content(chunk_size=None)
    except requests.RequestException:
        yield CUT_EVENT
    finally:
        upstream.close()  # the reader went away (or the answer ended): llama-server stops generating


def ask_upstream(http: requests.Session, method: str, url: str, body: dict[str, Any] | None, headers: dict[str, str],
                 *, stream: bool) -> requests.Response:
    """One request to llama-server, tried a second time when the connection failed before any answer
    (a kept-alive connection the server had closed, e.g. just after a restart)."""
    try:
        return http.request(method, url, json=body, headers=headers, stream=stream, timeout=(5, ANSWER_TIMEOUT_S))
    except requests.ConnectionError:
        return http.request(method, url, json=body, headers=headers, stream=stream, timeout=(5, ANSWER_TIMEOUT_S))


def _forward(method: str, path: str, body: dict[str, Any] | None = None, *, chat: bool = False) -> Response:
    studio = services()
    llm, arbiter = studio.llm, studio.arbiter
    if chat:
        arbiter.ready_for_chat()  # refused, or the model a job pushed out is loaded again
    base, headers = llm.upstream()
    stream = bool(body and body.get("stream"))
    arbiter.chat_started()  # a job that wants the GPU waits for this answer (within its limit)
    try:
        upstream = ask_upstream(llm.http, method, f"{base}{path}", body, headers, stream=stream)
    except requests.RequestException as err:
        raise ServiceUnavailable(f"The LLM server did not answer: {type(err).__name__}.", code="llm_unreachable") \
            from err
    finally:
        arbiter.chat_ended()
    kind = upstream.headers.get("Content-Type", "application/json")
    if stream and upstream.status_code == 200:
        return Response(stream_with_context(arbiter.chatting(_relay(upstream))), status=200,
                        content_type=kind, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return Response(upstream.content, status=upstream.status_code, content_type=kind)


@bp.post("/v1/chat/completions")
@documented("OpenAI-compatible chat completion through the running model (stream: true for SSE)", tags=["llm"])
@allow_run_scope
def chat_completions() -> Response:
    current_identity()
    return _forward("POST", "/v1/chat/completions", with_pictures_checked(_chat_body()), chat=True)


def with_pictures_checked(body: dict[str, Any]) -> dict[str, Any]:
    """Pictures scaled down before they reach the model; a model that cannot see refuses them in words."""
    studio = services()
    messages, pictures = vision.prepare(body["messages"], studio.settings.llm_image_max_side)
    if pictures:
        config = studio.llm.config or studio.arbiter.resume
        if config is not None and not config.mmproj:
            raise Conflict(f"The model {config.model} cannot see pictures: it was started without a vision projector "
                           "(mmproj). Start a vision model with its mmproj on the LLM page, or send text only.",
                           code="llm_no_vision")
    return {**body, "messages": messages}


@bp.get("/v1/models")
@documented("OpenAI-compatible list of the running model(s)", tags=["llm"])
@allow_run_scope
def models() -> Response:
    current_identity()
    return _forward("GET", "/v1/models")

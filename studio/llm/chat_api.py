"""``/api/llm/conversations``: each person's stored chats. Sending a message streams the answer
(server-sent events, as the pass-through does) and stores it when it ends, or when the person
closes the connection (Stop): then what had arrived is kept, marked stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import requests
from flask import Blueprint, Response, jsonify, stream_with_context
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import current_identity
from studio.errors import ServiceUnavailable
from studio.llm import vision
from studio.llm.api import CHAT_BYTES, CUT_EVENT, ask_upstream, with_pictures_checked
from studio.llm.conversations import MAX_CONTENT, MAX_SYSTEM, MAX_TITLE
from studio.services import services
from studio.web import EmptyBody, parse_json

bp = Blueprint("llm_chats", __name__, url_prefix="/api/llm/conversations")


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    title: str | None = Field(None, min_length=1, max_length=MAX_TITLE)
    system_prompt: str | None = Field(None, max_length=MAX_SYSTEM)


class NewMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    content: str = Field(min_length=1, max_length=MAX_CONTENT)
    # Pictures for a vision model, as data: URLs; sent with this message only (the text is what is kept).
    images: list[str] = Field(default_factory=list, max_length=vision.MAX_IMAGES)
    temperature: float = Field(0.7, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1, le=131_072)


@bp.get("")
@documented("Your stored LLM conversations, newest first", tags=["llm"])
def list_conversations() -> Response:
    return jsonify({"items": services().conversations.list(current_identity())})


@bp.post("")
@documented("Start a conversation (a title and a system prompt, both optional)", body=NewConversation,
            answers={201: {}}, tags=["llm"])
def create_conversation() -> tuple[Response, int]:
    body = parse_json(NewConversation)
    made = services().conversations.create(current_identity(), title=body.title, system_prompt=body.system_prompt)
    return jsonify(made), 201


@bp.get("/<conversation_id>")
@documented("One of your conversations with its messages", tags=["llm"])
def get_conversation(conversation_id: str) -> Response:
    return jsonify(services().conversations.get(conversation_id, current_identity()))


@bp.patch("/<conversation_id>")
@documented("Rename a conversation or change its system prompt", body=NewConversation, tags=["llm"])
def change_conversation(conversation_id: str) -> Response:
    body = parse_json(NewConversation)
    return jsonify(services().conversations.change(conversation_id, current_identity(), title=body.title,
                                                   system_prompt=body.system_prompt))


@bp.delete("/<conversation_id>")
@documented("Delete a conversation and its messages", body=EmptyBody, answers={204: {}}, tags=["llm"])
def delete_conversation(conversation_id: str) -> tuple[str, int]:
    services().conversations.delete(conversation_id, current_identity())
    return "", 204


def _relay_and_keep(conversation_id: str, upstream: requests.Response, model: str | None,
                    started: float) -> Iterator[bytes]:
    """Forwards the answer as it comes and keeps it: on the end, or on Stop (GeneratorExit)."""
    pieces: list[str] = []
    usage: dict[str, Any] = {}
    first: float | None = None
    finished = False
    buffered = b""
    try:
        for chunk in upstream.iter_content(chunk_size=None):
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                    finished = finished or line.strip() == b"data: [DONE]"
                    continue
                try:
                    event = json.loads(line[6:])
                except ValueError:
                    continue
                if isinstance(event.get("usage"), dict):
                    usage = event["usage"]
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if isinstance(piece, str) and piece:
                        first = first or time.perf_counter()
                        pieces.append(piece)
            yield chunk
    except requests.RequestException:
        yield CUT_EVENT  # kept as far as it came, marked stopped
    finally:
        upstream.close()
        now = time.perf_counter()
        services().conversations.add_answer(
            conversation_id, content="".join(pieces), stopped=not finished, model=model, usage=usage,
            first_token_ms=round((first - started) * 1000, 1) if first else None,
            total_ms=round((now - started) * 1000, 1))


@bp.post("/<conversation_id>/messages")
@documented("Send a message: the answer streams as server-sent events and is stored", body=NewMessage,
            tags=["llm"])
def send_message(conversation_id: str) -> Response:
    body = parse_json(NewMessage, max_bytes=CHAT_BYTES)
    studio = services()
    pictures = with_pictures_checked({"messages": [{"role": "user", "content": vision.user_content(
        body.content, body.images)}]})["messages"][0]["content"] if body.images else None
    studio.arbiter.ready_for_chat()  # refused while jobs run (llm_never), or the model loaded again
    base, headers = studio.llm.upstream()  # a 503 in words before anything is stored
    chat = studio.conversations.add_user_message(conversation_id, current_identity(), body.content)
    if pictures is not None:
        chat[-1] = {"role": "user", "content": pictures}
    request_body: dict[str, Any] = {"messages": chat, "stream": True, "temperature": body.temperature,
                                    "stream_options": {"include_usage": True}}
    if body.max_tokens:
        request_body["max_tokens"] = body.max_tokens
    started = time.perf_counter()
    studio.arbiter.chat_started()
    try:
        upstream = ask_upstream(studio.llm.http, "POST", f"{base}/v1/chat/completions", request_body, headers,
                                stream=True)
    except requests.RequestException as err:
        raise ServiceUnavailable(f"The LLM server did not answer: {type(err).__name__}.",
                                 code="llm_unreachable") from err
    finally:
        studio.arbiter.chat_ended()
    if upstream.status_code != 200:
        return Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type", "application/json"))
    model = studio.llm.config.model if studio.llm.config else None
    return Response(stream_with_context(studio.arbiter.chatting(
        _relay_and_keep(conversation_id, upstream, model, started))),
                    content_type="text/event-stream", headers={"Cache-Control": "no-cache",
                                                              "X-Accel-Buffering": "no"})

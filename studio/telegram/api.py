"""``/api/telegram``: Settings → Telegram (admins): the bot's status, the allow-list, approvals; and
the one-time links to results too large for Telegram (the random token in the link is the proof)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, send_file
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from studio.apidocs import documented
from studio.auth.guard import require_admin
from studio.errors import NotFound
from studio.jobs import thumbnails
from studio.jobs.models import JobOutput
from studio.services import services
from studio.telegram.chats import aware
from studio.telegram.models import TelegramLink
from studio.web import EmptyBody, parse_json

bp = Blueprint("telegram", __name__, url_prefix="/api/telegram")


class Approve(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    user_id: int = Field(ge=1, le=2**31, description="the Studio user this chat acts as")


def _overview() -> Response:
    studio = services()
    return jsonify({"status": studio.telegram.status(), "chats": studio.telegram.chats.listing(),
                    "group_policy": studio.preferences.get("telegram_groups"),
                    "users": [{"id": u["id"], "username": u["username"]} for u in studio.users.list_users()
                              if not u["disabled"]]})


@bp.get("")
@documented("The bot's status and every chat that wrote to it (admin)", tags=["telegram"])
def overview() -> Response:
    require_admin()
    return _overview()


@bp.post("/chats/<int(signed=True):chat_id>/approve")
@documented("Allow a chat, linked to the Studio user whose jobs and presets it gets (admin)", body=Approve,
            tags=["telegram"])
def approve(chat_id: int) -> Response:
    require_admin()
    body = parse_json(Approve)
    services().telegram.chats.approve(chat_id, body.user_id)
    return _overview()


@bp.post("/chats/<int(signed=True):chat_id>/deny")
@documented("Deny or revoke a chat: it gets no more answers (admin)", body=EmptyBody, tags=["telegram"])
def deny(chat_id: int) -> Response:
    require_admin()
    parse_json(EmptyBody)
    services().telegram.chats.change(chat_id, status="denied")
    return _overview()


@bp.get("/files/<token>")
@documented("A result too large for Telegram, served once through the link the bot sent", tags=["telegram"])
def one_time_file(token: str) -> Response:
    studio = services()
    digest = hashlib.sha256(token[:200].encode()).hexdigest()
    with Session(studio.engine) as session:
        link = session.get(TelegramLink, digest)
        expires = aware(link.expires_at) if link else None
        if link is None or link.used_at is not None or expires is None or expires < datetime.now(UTC):
            raise NotFound("This link was used already or has expired.", code="link_gone")
        output = session.get(JobOutput, link.output_id)
        job_id, relative, filename = link.job_id, output.path if output else "", output.filename if output else ""
        link.used_at = datetime.now(UTC)  # spent before it is served: a second request finds it gone
        session.add(link)
        session.commit()
    path = thumbnails.output_file(studio.data_dir.outputs, job_id, relative) if relative else None
    if path is None or not path.is_file():
        raise NotFound("This file is gone.", code="link_gone")
    return send_file(path, as_attachment=True, download_name=filename)

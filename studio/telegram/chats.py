"""The allow-list and the bot's stored state: who may talk to the bot, as which Studio user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.auth.models import User
from studio.auth.service import Identity
from studio.db import write_with_retry
from studio.errors import BadRequest, NotFound
from studio.telegram.models import TelegramChat, TelegramState

STATUSES = ("pending", "allowed", "denied")


def aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def chat_view(chat: TelegramChat, usernames: dict[int, str]) -> dict[str, Any]:
    first = aware(chat.first_message_at)
    return {"chat_id": chat.chat_id, "status": chat.status, "is_group": chat.is_group, "title": chat.title,
            "username": chat.username, "user_id": chat.user_id,
            "user": usernames.get(chat.user_id) if chat.user_id is not None else None,
            "notify": chat.notify, "notify_downloads": chat.notify_downloads, "notify_start": chat.notify_start,
            "first_message_at": first.isoformat() if first else None}


class ChatDirectory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def seen(self, chat_id: int, *, is_group: bool, title: str, username: str) -> TelegramChat:
        """The chat's row, made ``pending`` on its first message."""
        def work(session: Session) -> TelegramChat:
            chat = session.get(TelegramChat, chat_id)
            if chat is None:
                chat = TelegramChat(chat_id=chat_id, is_group=is_group, title=title[:256], username=username[:64])
                session.add(chat)
                session.flush()
            session.expunge(chat)
            return chat

        return write_with_retry(self.engine, work)

    def get(self, chat_id: int) -> TelegramChat | None:
        with Session(self.engine) as session:
            return session.get(TelegramChat, chat_id)

    def change(self, chat_id: int, **values: Any) -> TelegramChat:
        def work(session: Session) -> TelegramChat:
            chat = session.get(TelegramChat, chat_id)
            if chat is None:
                raise NotFound("No such chat.", code="chat_not_found")
            for key, value in values.items():
                setattr(chat, key, value)
            chat.updated_at = datetime.now(UTC)
            session.add(chat)
            session.flush()
            session.expunge(chat)
            return chat

        return write_with_retry(self.engine, work)

    def approve(self, chat_id: int, user_id: int) -> TelegramChat:
        with Session(self.engine) as session:
            user = session.get(User, user_id)
        if user is None or user.disabled:
            raise BadRequest("Choose an existing, enabled Studio user to link this chat to.",
                             fields={"user_id": "no such user"})
        return self.change(chat_id, status="allowed", user_id=user_id)

    def identity(self, chat: TelegramChat) -> Identity | None:
        """Who the chat acts as: its linked user, while that user exists and is enabled."""
        if chat.status != "allowed" or chat.user_id is None:
            return None
        with Session(self.engine) as session:
            user = session.get(User, chat.user_id)
        if user is None or user.disabled or user.id is None:
            return None
        return Identity(user_id=user.id, username=user.username, role=user.role, via="telegram")

    def listing(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            chats = session.exec(select(TelegramChat).order_by(col(TelegramChat.first_message_at))).all()
            usernames = {int(u.id): u.username for u in session.exec(select(User)) if u.id is not None}
        return [chat_view(chat, usernames) for chat in chats]

    def chats_of(self, user_id: int) -> list[TelegramChat]:
        with Session(self.engine) as session:
            return list(session.exec(select(TelegramChat).where(TelegramChat.user_id == user_id)
                                     .where(TelegramChat.status == "allowed")))

    # -- the update offset ---------------------------------------------------------------------------

    def offset(self) -> int:
        with Session(self.engine) as session:
            row = session.get(TelegramState, "offset")
            return int(row.value) if row else 0

    def set_offset(self, update_id: int) -> None:
        def work(session: Session) -> None:
            row = session.get(TelegramState, "offset") or TelegramState(key="offset", value=0)
            row.value = max(int(row.value), update_id)
            session.add(row)

        write_with_retry(self.engine, work)

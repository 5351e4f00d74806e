"""The bot's tables: which chats may talk to it, where each chat is in a run, and the poll offset.

A chat starts ``pending`` on its first message; only an admin makes it ``allowed`` (linked to a
Studio user, whose presets, permissions and fair share apply) or ``denied``. The update offset is
stored after each update is handled, so a restart neither repeats nor loses one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class TelegramChat(SQLModel, table=True):
    __tablename__ = "telegram_chat"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    status: str = Field(default="pending", max_length=16)  # "pending" | "allowed" | "denied"
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True, ondelete="SET NULL")
    is_group: bool = False
    title: str = Field(default="", max_length=256)
    username: str = Field(default="", max_length=64)
    notify: bool = False  # every finished job of its user (the jobs this chat started are always told)
    notify_downloads: bool = False
    notify_start: bool = False
    first_message_at: datetime = Field(default_factory=utcnow)
    # The one "not authorised yet" answer was sent: a stranger is never answered twice.
    refused_at: datetime | None = None
    last_result_job: str | None = Field(default=None, max_length=36)
    updated_at: datetime = Field(default_factory=utcnow)


class TelegramConversation(SQLModel, table=True):
    """Where one chat is in a run: the preset, the answers so far, what is asked next."""

    __tablename__ = "telegram_conversation"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    preset_id: str = Field(max_length=128)
    step: str = Field(max_length=16)  # "question" | "image" | "confirm"
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    image: str | None = Field(default=None, max_length=255)
    # Each summary gets a fresh nonce; its Run button carries it, so a re-delivered tap runs nothing twice.
    nonce: str = Field(max_length=32)
    updated_at: datetime = Field(default_factory=utcnow)


class TelegramJob(SQLModel, table=True):
    """A job a chat started, and the message that shows its progress."""

    __tablename__ = "telegram_job"

    job_id: str = Field(primary_key=True, max_length=36)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    nonce: str = Field(max_length=32, index=True)
    progress_message_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    delivered: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class TelegramLink(SQLModel, table=True):
    """A one-time link to an output too large for Telegram: a random token, served once, then gone."""

    __tablename__ = "telegram_link"

    token_hash: str = Field(primary_key=True, max_length=64)
    job_id: str = Field(max_length=36)
    output_id: int
    expires_at: datetime
    used_at: datetime | None = None


class TelegramState(SQLModel, table=True):
    __tablename__ = "telegram_state"

    key: str = Field(primary_key=True, max_length=32)
    value: int = Field(sa_column=Column(BigInteger, nullable=False))

"""Chats kept: each person's conversations with their title, model, system prompt, messages, token
counts and timings. A conversation is its owner's alone (admins included: a chat is private).

An answer is stored when it ends, also when it was stopped (marked so, with what had arrived), so
reopening a conversation shows what the person saw.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from studio.auth.service import Identity
from studio.db import write_with_retry
from studio.db.models import utcnow
from studio.errors import BadRequest, NotFound

MAX_TITLE = 200
MAX_SYSTEM = 8000
MAX_CONTENT = 100_000
MAX_MESSAGES = 2000
DEFAULT_SYSTEM = "You are a helpful assistant. Answer briefly and clearly."


class LlmConversation(SQLModel, table=True):
    __tablename__ = "llm_conversation"
    __table_args__ = (Index("ix_llm_conversation_owner_updated", "owner_id", "updated_at"),)

    id: str = Field(primary_key=True, max_length=36)
    owner_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    title: str = Field(default="New chat", max_length=MAX_TITLE)
    model: str | None = Field(default=None, max_length=1024)
    system_prompt: str = Field(default=DEFAULT_SYSTEM, sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LlmMessage(SQLModel, table=True):
    __tablename__ = "llm_message"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="llm_conversation.id", index=True, max_length=36, ondelete="CASCADE")
    role: str = Field(max_length=16)  # "user" | "assistant"
    content: str = Field(sa_column=Column(Text, nullable=False))
    stopped: bool = False  # the person pressed Stop: the content is what had arrived
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_ms: float | None = None
    total_ms: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


def _text(value: Any, name: str, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise BadRequest(f"{name} must be text.", fields={name: "required"})
    if len(value) > limit:
        raise BadRequest(f"{name} may be at most {limit} characters.", fields={name: f"at most {limit}"})
    return value


def conversation_view(row: LlmConversation) -> dict[str, Any]:
    return {"id": row.id, "title": row.title, "model": row.model, "system_prompt": row.system_prompt,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def message_view(row: LlmMessage) -> dict[str, Any]:
    return {"id": row.id, "role": row.role, "content": row.content, "stopped": row.stopped,
            "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
            "first_token_ms": row.first_token_ms, "total_ms": row.total_ms, "created_at": row.created_at.isoformat()}


class Conversations:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _own(self, session: Session, conversation_id: str, owner: Identity) -> LlmConversation:
        row = session.get(LlmConversation, conversation_id[:36])
        if row is None or row.owner_id != owner.user_id:
            raise NotFound("No such conversation.", code="conversation_not_found")  # another's looks absent
        return row

    def list(self, owner: Identity, limit: int = 200) -> builtins.list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.exec(select(LlmConversation).where(LlmConversation.owner_id == owner.user_id)
                                .order_by(col(LlmConversation.updated_at).desc()).limit(limit)).all()
            return [conversation_view(row) for row in rows]

    def create(self, owner: Identity, *, title: Any = None, system_prompt: Any = None) -> dict[str, Any]:
        row = LlmConversation(id=str(uuid.uuid4()), owner_id=owner.user_id,
                              title=_text(title, "title", MAX_TITLE) if title is not None else "New chat",
                              system_prompt=_text(system_prompt, "system_prompt", MAX_SYSTEM, empty=True)
                              if system_prompt is not None else DEFAULT_SYSTEM)

        def work(session: Session) -> dict[str, Any]:
            session.add(row)
            session.flush()
            return conversation_view(row)

        return write_with_retry(self.engine, work)

    def get(self, conversation_id: str, owner: Identity) -> dict[str, Any]:
        with Session(self.engine) as session:
            row = self._own(session, conversation_id, owner)
            messages = session.exec(select(LlmMessage).where(LlmMessage.conversation_id == row.id)
                                    .order_by(col(LlmMessage.id))).all()
            return {**conversation_view(row), "messages": [message_view(m) for m in messages]}

    def change(self, conversation_id: str, owner: Identity, *, title: Any = None,
               system_prompt: Any = None) -> dict[str, Any]:
        def work(session: Session) -> dict[str, Any]:
            row = self._own(session, conversation_id, owner)
            if title is not None:
                row.title = _text(title, "title", MAX_TITLE)
            if system_prompt is not None:
                row.system_prompt = _text(system_prompt, "system_prompt", MAX_SYSTEM, empty=True)
            row.updated_at = utcnow()
            session.add(row)
            session.flush()
            return conversation_view(row)

        return write_with_retry(self.engine, work)

    def delete(self, conversation_id: str, owner: Identity) -> None:
        def work(session: Session) -> None:
            row = self._own(session, conversation_id, owner)
            for message in session.exec(select(LlmMessage).where(LlmMessage.conversation_id == row.id)):
                session.delete(message)
            session.delete(row)

        write_with_retry(self.engine, work)

    def add_user_message(self, conversation_id: str, owner: Identity, content: Any) -> builtins.list[dict[str, str]]:
        """Stores the person's message; returns the whole chat as the model is sent it."""
        text = _text(content, "content", MAX_CONTENT)

        def work(session: Session) -> builtins.list[dict[str, str]]:
            row = self._own(session, conversation_id, owner)
            messages = builtins.list(session.exec(select(LlmMessage).where(LlmMessage.conversation_id == row.id)
                                         .order_by(col(LlmMessage.id))))
            if len(messages) >= MAX_MESSAGES:
                raise BadRequest(f"This conversation has {MAX_MESSAGES} messages: start a new one.",
                                 code="conversation_full")
            session.add(LlmMessage(conversation_id=row.id, role="user", content=text))
            if not messages and row.title == "New chat":
                row.title = " ".join(text.split())[:60] or "New chat"  # named after its first question
            row.updated_at = utcnow()
            session.add(row)
            chat = [{"role": "system", "content": row.system_prompt}] if row.system_prompt.strip() else []
            return chat + [{"role": m.role, "content": m.content} for m in messages] + [{"role": "user",
                                                                                        "content": text}]

        return write_with_retry(self.engine, work)

    def add_answer(self, conversation_id: str, *, content: str, stopped: bool, model: str | None,
                   usage: dict[str, Any], first_token_ms: float | None, total_ms: float) -> None:
        def count(key: str) -> int | None:
            value = usage.get(key)
            return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

        def work(session: Session) -> None:
            row = session.get(LlmConversation, conversation_id)
            if row is None:
                return  # deleted while it answered
            session.add(LlmMessage(conversation_id=row.id, role="assistant", content=content[:MAX_CONTENT],
                                   stopped=stopped, prompt_tokens=count("prompt_tokens"),
                                   completion_tokens=count("completion_tokens"), first_token_ms=first_token_ms,
                                   total_ms=total_ms))
            row.model = model or row.model
            row.updated_at = utcnow()
            session.add(row)

        write_with_retry(self.engine, work)

"""The idempotency table: the first answer to each (user, method, path, Idempotency-Key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class IdempotencyRecord(SQLModel, table=True):
    """One key's first answer. ``status`` is None while the first request is still being handled:
    the unique constraint lets exactly one request hold a key, so duplicates sent at the same
    moment wait for (or are told about) that one instead of queueing a second job."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("user_id", "method", "path", "key", name="uq_idempotency_request"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    method: str = Field(max_length=8)
    path: str = Field(max_length=1024)
    key: str = Field(max_length=255)
    # SHA-256 of the request (query and body, JSON made canonical): the same key with another body is refused.
    fingerprint: str = Field(max_length=64)
    status: int | None = None
    body: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)

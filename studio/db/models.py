"""Tables that belong to the foundation. Feature packages keep their own models next to their code;
all of them must be imported by ``studio.db.metadata`` so migrations see every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class ActivityEvent(SQLModel, table=True):
    """A recent event kept for the activity panel: bounded, trimmed by age and count."""

    __tablename__ = "activity_event"
    __table_args__ = (Index("ix_activity_event_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=64, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    # For events about one person's things: only they and admins see them in the activity list.
    user_id: int | None = Field(default=None, index=True)

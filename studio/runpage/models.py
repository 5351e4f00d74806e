from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class RunDraft(SQLModel, table=True):
    """What one person last had in one workflow's form: kept on the server so it follows them from
    their desktop to their phone. The newest row per person is the workflow Run opens on."""

    __tablename__ = "run_draft"

    user_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    workflow_id: str = Field(primary_key=True, max_length=128)
    values: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, index=True)

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class WorkflowRecord(SQLModel, table=True):
    """The database's copy of a workflow's manifest, kept in step with the files."""

    __tablename__ = "workflow"

    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=255)
    digest: str = Field(max_length=64)
    manifest: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    folder: str = Field(max_length=1024)
    updated_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None

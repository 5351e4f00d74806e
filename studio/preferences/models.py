from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class StoredSetting(SQLModel, table=True):
    """One value set on the Settings page; it wins over the environment and settings.toml."""

    __tablename__ = "stored_setting"

    key: str = Field(primary_key=True, max_length=64)
    value: Any = Field(sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str | None = Field(default=None, max_length=64)

"""One row per schedule: whose it is, what it runs, when, and what happened the last time.

APScheduler keeps its own job per schedule (``schedule-<id>`` in its SQLAlchemy job store, on the
same database); this row is the truth it is rebuilt from at every start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class PresetSchedule(SQLModel, table=True):
    __tablename__ = "preset_schedule"

    id: int | None = Field(default=None, primary_key=True)
    # Kept when the owner is deleted (NULL): the schedule then disables itself, saying why.
    owner_id: int | None = Field(default=None, foreign_key="user.id", index=True, ondelete="SET NULL")
    preset_id: str = Field(max_length=128, index=True)
    cron: str = Field(max_length=120)
    timezone: str = Field(default="UTC", max_length=64)
    enabled: bool = True
    missed_policy: str = Field(default="skip", max_length=16)  # "skip" | "run_once"
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    overrides: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The next time it is due (UTC); what a restart compares with the clock to find missed runs.
    next_due_at: datetime | None = None
    # The scheduled time it last fired for, and when that really happened.
    last_fired_at: datetime | None = None
    last_run_at: datetime | None = None
    last_jobs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    last_error: str | None = Field(default=None, max_length=500)
    disabled_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

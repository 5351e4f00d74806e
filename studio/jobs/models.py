from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


IN_FLIGHT = (JobStatus.SUBMITTED, JobStatus.RUNNING)
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_status_position", "status", "position"),
        # History pages: newest first, within a status, a workflow or one person's jobs.
        Index("ix_job_status_created", "status", "created_at"),
        Index("ix_job_workflow_created", "workflow_id", "created_at"),
        Index("ix_job_owner_created", "owner_id", "created_at"),
    )

    # A UUID, also ComfyUI's prompt_id, so the job can be found in /queue and /history after a crash.
    id: str = Field(primary_key=True, max_length=36)
    workflow_id: str = Field(max_length=128, index=True)
    workflow_name: str = Field(max_length=255)
    owner_id: int | None = Field(default=None, foreign_key="user.id", index=True, ondelete="SET NULL")
    status: JobStatus = Field(default=JobStatus.QUEUED, max_length=16, index=True)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prompt: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prompt_text: str = Field(default="", max_length=20000)
    position: float = 0.0
    priority: int = 0
    retry_of: str | None = Field(default=None, max_length=36)
    comfy_client_id: str | None = Field(default=None, max_length=64)
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Every state change with its time and, where there is one, the reason: the Job page's timeline.
    timeline: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobOutput(SQLModel, table=True):
    __tablename__ = "job_output"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, ondelete="CASCADE", max_length=36)
    node_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # image | video | gif | audio
    filename: str = Field(max_length=255)
    # Relative to STUDIO_DIR/assets/output, e.g. studio/<job id>/image_00001_.png
    path: str = Field(max_length=1024)
    size: int = 0
    width: int | None = None
    height: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # Marked by its owner in History, to find the keepers among many tries.
    starred: bool = Field(default=False)
    # studio.jobs.thumbnails: None = not made yet (made on first request), "made", or "none" when the
    # file is not an image Pillow can safely read (a video, a bomb, a truncated file).
    thumb_state: str | None = Field(default=None, max_length=8)

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class DownloadStatus(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (DownloadStatus.QUEUED, DownloadStatus.DOWNLOADING, DownloadStatus.VERIFYING)


class Download(SQLModel, table=True):
    __tablename__ = "download"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    # Where the file goes, relative to the models folder; only its folder, ending in ``/``, while the
    # server has yet to name the file (a URL download given no file name, see ``names.py``).
    path: str = Field(max_length=1024, index=True)
    # Never holds a token: credentials are added per host when the request is made.
    url: str = Field(max_length=4096)
    source: str = Field(default="url", max_length=16)
    expected_size: int | None = None
    expected_sha256: str | None = Field(default=None, max_length=64)
    status: DownloadStatus = Field(default=DownloadStatus.QUEUED, max_length=16, index=True)
    bytes_done: int = 0
    total_bytes: int | None = None
    sha256: str | None = Field(default=None, max_length=64)
    # The Hugging Face commit the file came from (X-Repo-Commit), so a model can be traced back.
    source_revision: str | None = Field(default=None, max_length=64)
    # What the response that started the partial file said about its version (a strong ETag, else
    # Last-Modified): sent as If-Range on resume, so a file changed on the server starts over.
    validator: str | None = Field(default=None, max_length=512)
    error: str | None = Field(default=None, max_length=2000)
    # An admin confirmed a pickle file (.ckpt, .pt…): checked again when the server names the file.
    allow_pickle: bool = False
    attempts: int = 0
    retry_at: datetime | None = None
    requested_by: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None

"""What CivitAI said about each local model file, by the file's SHA-256.

One row per hash, not per path: the same file in two folders is one CivitAI version. A hash CivitAI
does not know is kept too (``status = "not_found"``), so it is not asked again at every lookup but
only after a long while (a creator may upload it later).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class CivitaiFileInfo(SQLModel, table=True):
    __tablename__ = "civitai_file_info"

    sha256: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16, index=True)  # "found" | "not_found"
    model_id: int | None = Field(default=None, sa_type=BigInteger, index=True)
    version_id: int | None = Field(default=None, sa_type=BigInteger)
    model_name: str | None = Field(default=None, max_length=255)
    version_name: str | None = Field(default=None, max_length=255)
    model_type: str | None = Field(default=None, max_length=40)
    base_model: str | None = Field(default=None, max_length=80)
    trained_words: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    nsfw: bool = False
    # Where CivitAI keeps the preview, and the name of Studio's own copy in the previews folder.
    preview_url: str | None = Field(default=None, max_length=2048)
    preview_file: str | None = Field(default=None, max_length=80)
    # The model's newest version, from /api/v1/models/{id}; ``update_available`` when it is not this one.
    latest_version_id: int | None = Field(default=None, sa_type=BigInteger)
    latest_version_name: str | None = Field(default=None, max_length=255)
    update_available: bool = False
    checked_at: datetime = Field(default_factory=utcnow)

"""The gallery's tables: one row per file, the LoRAs it was made with, boards and what is on them.

The full-text index over these rows (``gallery_fts``) is an FTS5 virtual table, which SQLModel cannot
describe: it lives in ``studio.gallery.fts`` and is created by the migration (and by ``create_all``
through a DDL event on ``gallery_item``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from studio.db.models import utcnow
from studio.gallery import fts, history_fts
from studio.jobs.models import Job


class GalleryItem(SQLModel, table=True):
    __tablename__ = "gallery_item"
    __table_args__ = (
        # Grid pages go by id (the order items were added: see studio.gallery.query), within a filter.
        Index("ix_gallery_item_owner_id", "owner_id", "id"),
        Index("ix_gallery_item_workflow_id", "workflow_id", "id"),
        Index("ix_gallery_item_model_id", "model", "id"),
        Index("ix_gallery_item_rating_id", "rating", "id"),
        Index("ix_gallery_item_created", "created_at"),
        Index("ix_gallery_item_civitai", "owner_id", "civitai_image_id"),  # "saved already?"
        # AUTOINCREMENT: an id is never given to another file, so a thumbnail URL never names other content.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    # Relative to STUDIO_DIR/assets/output (``studio/<job id>/image_00001_.png`` for Studio's own).
    path: str = Field(max_length=1024, unique=True)
    source: str = Field(default="job", max_length=16)  # job | disk (found in the output folder)
    job_id: str | None = Field(default=None, max_length=36, index=True)
    # The job's output row: deleting the job or the output in History drops the gallery item with it.
    output_id: int | None = Field(default=None, foreign_key="job_output.id", ondelete="CASCADE", index=True)
    owner_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    kind: str = Field(max_length=16)  # image | gif | video
    filename: str = Field(max_length=255)
    workflow_id: str | None = Field(default=None, max_length=128)
    workflow_name: str | None = Field(default=None, max_length=255)
    # The text columns ``gallery_fts`` indexes (external content: the FTS table reads them from here).
    prompt: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    negative: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    model: str | None = Field(default=None, max_length=255)
    loras: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    tags: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    lora_list: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    seed: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    width: int | None = None
    height: int | None = None
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # What the file was when indexed: another size or time on disk means it was replaced.
    mtime_ns: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Bumped when the file is replaced: part of the thumbnail URLs, so cached copies are not reused.
    rev: int = 0
    starred: bool = Field(default=False, index=True)
    rating: int = 0  # 0 (none) to 5
    thumb_state: str | None = Field(default=None, max_length=8)  # None: not made yet; made; none
    created_at: datetime = Field(default_factory=utcnow)
    # CivitAI's level for a saved CivitAI image (1 PG, 2 PG-13, 4 R, 8 X, 16 XXX); 0 for everything else,
    # which is never hidden. Shown only to a person whose GalleryViewer level reaches it.
    nsfw_level: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    civitai_image_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class GalleryViewer(SQLModel, table=True):
    """One person's gallery settings: up to which CivitAI NSFW level they see images (1: PG only, the default)."""

    __tablename__ = "gallery_viewer"

    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", primary_key=True)
    nsfw_level: int = Field(default=1)
    updated_at: datetime = Field(default_factory=utcnow)


class GalleryLora(SQLModel, table=True):
    """One LoRA of one item, for the exact "made with this LoRA" filter (full-text would match parts of names)."""

    __tablename__ = "gallery_lora"

    item_id: int = Field(foreign_key="gallery_item.id", ondelete="CASCADE", primary_key=True)
    name: str = Field(max_length=255, primary_key=True, index=True)


class GalleryBoard(SQLModel, table=True):
    """A named collection of one person's items."""

    __tablename__ = "gallery_board"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_gallery_board_owner_name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow)


class GalleryBoardItem(SQLModel, table=True):
    __tablename__ = "gallery_board_item"

    board_id: int = Field(foreign_key="gallery_board.id", ondelete="CASCADE", primary_key=True)
    item_id: int = Field(foreign_key="gallery_item.id", ondelete="CASCADE", primary_key=True, index=True)


fts.install(GalleryItem.__table__)  # type: ignore[attr-defined]
history_fts.install(Job.__table__)  # type: ignore[attr-defined]  # History's search index (history_fts)

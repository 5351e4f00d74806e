"""Finding gallery items: filters, full-text search, sort and keyset pagination, and how one is shown.

Pages are keyset pages (``cursor`` names where the last page ended: its sort value and id), so page
500 costs what page 1 costs and an item added meanwhile never shifts the next page by one. The cursor
is opaque to clients but hostile like any input: anything that does not parse is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy import column, literal, or_, table, text, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from studio.auth.service import Identity
from studio.errors import BadRequest
from studio.gallery import fts, thumbs
from studio.gallery.models import GalleryBoardItem, GalleryItem, GalleryLora

Sort = Literal["newest", "oldest", "rating"]


@dataclass
class Filters:
    q: str | None = None
    workflow: str | None = None
    model: str | None = None
    lora: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    rating: int | None = None  # at least
    starred: bool = False
    board: int | None = None
    kind: Literal["image", "video"] | None = None
    source: Literal["job", "disk", "civitai"] | None = None
    # The highest CivitAI NSFW level shown (the person's own setting, studio.gallery.civitai_images).
    max_nsfw: int = 1
    sort: Sort = "newest"
    cursor: str | None = None
    limit: int = 60


def visible_to(actor: Identity) -> list[ColumnElement[bool]]:
    """People see their own items; admins see everyone's and what was found on disk."""
    return [] if actor.is_admin else [col(GalleryItem.owner_id) == actor.user_id]


def _match_query(engine: Engine, raw: str | None) -> str | None:
    return fts.match_query(raw) if raw and engine.dialect.name == "sqlite" else None


def _text_match(engine: Engine, raw: str) -> ColumnElement[bool] | None:
    """The text filter as a condition on the item (the rating sort, and databases without FTS5)."""
    if fts.match_query(raw) is None:
        return None
    if engine.dialect.name != "sqlite":  # no FTS5 elsewhere: a plain scan of the prompt and tags
        like = f"%{raw.strip()[:200]}%"
        return or_(col(GalleryItem.prompt).ilike(like), col(GalleryItem.tags).ilike(like))
    matches = text(f"SELECT rowid FROM {fts.TABLE} WHERE {fts.TABLE} MATCH :match").bindparams(
        match=fts.match_query(raw))
    return col(GalleryItem.id).in_(matches.columns(column("rowid")))


def encode_cursor(item: GalleryItem, sort: Sort) -> str:
    values: list[Any] = [item.rating, item.id] if sort == "rating" else [item.id]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_cursor(raw: str, sort: Sort) -> list[int]:
    bad = BadRequest("That page cursor is not one Studio gave out.", fields={"cursor": "not a cursor"})
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as err:
        raise bad from err
    if (not isinstance(values, list) or len(values) != (2 if sort == "rating" else 1)
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 for v in values)):
        raise bad
    return values


def conditions(engine: Engine, actor: Identity, filters: Filters, *,
               with_text: bool = True) -> list[ColumnElement[bool]]:
    where = visible_to(actor)
    if filters.workflow:
        where.append(col(GalleryItem.workflow_id) == filters.workflow)
    if filters.model:
        where.append(col(GalleryItem.model) == filters.model)
    if filters.lora:
        where.append(col(GalleryItem.id).in_(select(GalleryLora.item_id).where(GalleryLora.name == filters.lora)))
    if filters.since:
        where.append(col(GalleryItem.created_at) >= filters.since)
    if filters.until:
        where.append(col(GalleryItem.created_at) < filters.until)
    if filters.rating:
        where.append(col(GalleryItem.rating) >= filters.rating)
    if filters.starred:
        where.append(col(GalleryItem.starred).is_(True))
    if filters.board is not None:
        where.append(col(GalleryItem.id).in_(
            select(GalleryBoardItem.item_id).where(GalleryBoardItem.board_id == filters.board)))
    if filters.kind == "image":
        where.append(col(GalleryItem.kind).in_(("image", "gif")))
    elif filters.kind == "video":
        where.append(col(GalleryItem.kind) == "video")
    if filters.source:
        where.append(col(GalleryItem.source) == filters.source)
    if filters.max_nsfw < 16:
        where.append(col(GalleryItem.nsfw_level) <= filters.max_nsfw)
    if filters.q and with_text:
        match = _text_match(engine, filters.q)
        if match is not None:
            where.append(match)
    return where


def page(engine: Engine, actor: Identity, filters: Filters) -> tuple[list[GalleryItem], str | None]:
    """One page of items and the cursor of the next (None on the last page).

    "Newest" is the order items joined the gallery (their id: a job's outputs when it finished, files
    found on disk in the order of their times), which is what makes a text search fast at any size:
    the FTS5 index walks its matches in rowid order and stops after one page, where sorting matches by
    a date would first collect every one of them (84 ms for a common word at 100,000 items, 4 ms so).
    """
    item_id: Any = col(GalleryItem.id)
    rating: Any = col(GalleryItem.rating)
    cursor = _decode_cursor(filters.cursor, filters.sort) if filters.cursor else None
    # A LoRA or a board is a small set: fastest found first, then checked against the text's matches.
    driven = filters.sort != "rating" and not filters.lora and filters.board is None
    match = _match_query(engine, filters.q) if driven else None
    if match is not None:  # the index drives: FROM gallery_fts JOIN gallery_item, in rowid order
        index = table(fts.TABLE, column("rowid"))
        key: Any = index.c.rowid
        statement = (select(GalleryItem).select_from(index).join(GalleryItem, item_id == key)
                     .where(text(f"{fts.TABLE} MATCH :match").bindparams(match=match),
                            *conditions(engine, actor, filters, with_text=False)))
    else:
        key = item_id
        statement = select(GalleryItem).where(*conditions(engine, actor, filters))
    if filters.sort == "rating":
        statement = statement.order_by(rating.desc(), item_id.desc())
        if cursor:
            statement = statement.where(tuple_(rating, item_id) < tuple_(literal(cursor[0]), literal(cursor[1])))
    elif filters.sort == "oldest":
        statement = statement.order_by(key.asc()).where(key > cursor[0]) if cursor else statement.order_by(key.asc())
    else:
        statement = statement.order_by(key.desc()).where(key < cursor[0]) if cursor else statement.order_by(key.desc())
    with Session(engine) as session:
        rows = list(session.exec(statement.limit(filters.limit + 1)))
    more = len(rows) > filters.limit
    rows = rows[:filters.limit]
    return rows, encode_cursor(rows[-1], filters.sort) if more and rows else None


def view(item: GalleryItem, boards: list[int] | None = None) -> dict[str, Any]:
    """An item as the API shows it."""
    reuse = (f"/run/{quote(item.workflow_id, safe='')}?from_job={item.job_id}"
             if item.job_id and item.workflow_id and item.source == "job" else None)
    return {
        "id": item.id, "kind": item.kind, "filename": item.filename, "source": item.source,
        "url": f"/api/gallery/items/{item.id}/file?v={item.rev}", "thumbs": thumbs.thumbs_of(item),
        "width": item.width, "height": item.height, "size": item.size,
        "created_at": item.created_at.isoformat(), "workflow_id": item.workflow_id,
        "workflow_name": item.workflow_name, "job_id": item.job_id, "owner_id": item.owner_id,
        "prompt": item.prompt or None, "negative": item.negative or None, "model": item.model,
        "loras": item.lora_list, "seed": item.seed, "params": item.params,
        "tags": [t for t in item.tags.split("\n") if t], "starred": item.starred, "rating": item.rating,
        "boards": boards if boards is not None else [], "reuse_url": reuse,
        "nsfw_level": item.nsfw_level, "civitai_image_id": item.civitai_image_id,
    }

"""The gallery as people use it: their items (admins: everyone's), marked, sorted into boards,
deleted, downloaded, used again. Every change answers "whose is this?" first: an item someone may not
see is a 404 to them, and a request naming several items changes none of them when one is not theirs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio import safepath
from studio.auth.service import Identity
from studio.civitai.client import CivitaiClient
from studio.db import write_with_retry
from studio.errors import BadRequest, Conflict, NotFound
from studio.events import EventBus
from studio.gallery import query
from studio.gallery.civitai_images import CivitaiImages
from studio.gallery.index import GalleryIndex
from studio.gallery.models import GalleryBoard, GalleryBoardItem, GalleryItem, GalleryLora
from studio.gallery.thumbs import GalleryThumbs
from studio.jobs import results
from studio.jobs.inputs import InputStore
from studio.jobs.service import JobService

log = logging.getLogger(__name__)

RECONCILE_S = 600.0
MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_BOARDS = 200


class GalleryService:
    def __init__(self, engine: Engine, bus: EventBus, jobs: JobService, inputs: InputStore,
                 thumbs: GalleryThumbs, reconcile_s: Callable[[], float] = lambda: RECONCILE_S) -> None:
        self.engine = engine
        self.bus = bus
        self.jobs = jobs
        self.inputs = inputs
        self.thumbs = thumbs
        self.outputs_root = thumbs.outputs_root
        self.index = GalleryIndex(engine, self.outputs_root, on_disk_item=self._thumb_later)
        self.index.attach(bus)
        self.reconcile_s = reconcile_s
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def _thumb_later(self, item_id: int) -> None:
        self.index.submit(lambda: self.thumbs.make(item_id))

    # -- background ------------------------------------------------------------------------------

    def start(self) -> None:
        """Reconciles now (in the worker) and then every ``reconcile_s`` seconds."""
        self._stop.clear()
        self.index.submit(self.index.reconcile)
        self._timer = threading.Thread(target=self._every, name="gallery-reconcile", daemon=True)
        self._timer.start()

    def _every(self) -> None:
        while not self._stop.wait(self.reconcile_s()):
            self.index.submit(self.index.reconcile)

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(5)

    # -- reading ---------------------------------------------------------------------------------

    def search(self, actor: Identity, filters: query.Filters) -> dict[str, Any]:
        if filters.board is not None:
            self._board(actor, filters.board)
        filters.max_nsfw = self.civitai_images(None).level(actor)  # the person's own NSFW setting
        rows, cursor = query.page(self.engine, actor, filters)
        return {"items": [query.view(row) for row in rows], "next": cursor}

    def item(self, item_id: int, actor: Identity) -> GalleryItem:
        with Session(self.engine) as session:
            row = session.get(GalleryItem, item_id)
        if row is None or not (actor.is_admin or row.owner_id == actor.user_id):
            raise NotFound("No such gallery item.")
        return row

    def get(self, item_id: int, actor: Identity) -> dict[str, Any]:
        row = self.item(item_id, actor)
        with Session(self.engine) as session:
            boards = list(session.exec(select(GalleryBoardItem.board_id).join(GalleryBoard).where(
                GalleryBoardItem.item_id == item_id, GalleryBoard.owner_id == actor.user_id)))
        return query.view(row, boards)

    def facets(self, actor: Identity) -> dict[str, Any]:
        """What the filters can choose from, among the items this person sees."""
        where = query.visible_to(actor)
        with Session(self.engine) as session:
            workflows = session.exec(select(GalleryItem.workflow_id, func.max(GalleryItem.workflow_name)).where(
                *where, col(GalleryItem.workflow_id).is_not(None)).group_by(GalleryItem.workflow_id)).all()
            models = session.exec(select(col(GalleryItem.model)).distinct().where(
                *where, col(GalleryItem.model).is_not(None)).order_by(GalleryItem.model)).all()
            loras = session.exec(select(col(GalleryLora.name)).distinct().join(GalleryItem).where(*where)
                                 .order_by(GalleryLora.name).limit(500)).all()
        return {"workflows": [{"id": w, "name": n or w} for w, n in workflows], "models": list(models)[:500],
                "loras": list(loras), "boards": self.boards(actor)}

    def civitai_images(self, client: CivitaiClient | None) -> CivitaiImages:
        """CivitAI images into this gallery (``client``: the app's one CivitAI client; None to read levels)."""
        return CivitaiImages(self.engine, self.outputs_root, client, on_added=self._thumb_later)

    # -- changing --------------------------------------------------------------------------------

    def update(self, item_id: int, actor: Identity, *, starred: bool | None = None, rating: int | None = None,
               tags: list[str] | None = None) -> dict[str, Any]:
        self.item(item_id, actor)
        cleaned = None if tags is None else _tags(tags)

        def work(session: Session) -> None:
            row = session.get(GalleryItem, item_id)
            if row is None:
                raise NotFound("No such gallery item.")
            if starred is not None:
                row.starred = starred
            if rating is not None:
                row.rating = rating
            if cleaned is not None:
                row.tags = "\n".join(cleaned)
            session.add(row)

        write_with_retry(self.engine, work)
        return self.get(item_id, actor)

    def _owned_all(self, ids: list[int], actor: Identity) -> list[GalleryItem]:
        """Every item named, or a 404 naming none of them when one is not this person's (or gone)."""
        unique = sorted(set(ids))
        with Session(self.engine) as session:
            rows = list(session.exec(select(GalleryItem).where(col(GalleryItem.id).in_(unique),
                                                               *query.visible_to(actor))))
        if len(rows) != len(unique):
            raise NotFound("Some of these gallery items do not exist (or are not yours); nothing was changed.")
        return rows

    def delete(self, ids: list[int], actor: Identity) -> dict[str, Any]:
        rows = self._owned_all(ids, actor)
        for row in rows:
            assert row.id is not None
            if row.job_id and row.output_id is not None:
                # History's own delete: the output's row, file and thumbnails; the item goes with the row
                with suppress(NotFound):  # deleted there meanwhile
                    results.delete_output(self.jobs, row.job_id, row.output_id, actor=actor)
            self._remove(row)
        self.bus.publish("gallery/changed", {"ids": [row.id for row in rows], "change": "deleted"},
                         user_id=None if actor.is_admin else actor.user_id)
        return {"deleted": len(rows)}

    def _remove(self, row: GalleryItem) -> None:
        assert row.id is not None
        try:
            safepath.unlink_inside(self.outputs_root, self.outputs_root / row.path)
        except OSError as err:
            log.warning("gallery item %s: its file was not removed (%s)", row.id, err.strerror or err)
        self.thumbs.forget(row.id)
        write_with_retry(self.engine, lambda s: s.execute(delete(GalleryItem).where(
            col(GalleryItem.id) == row.id)))

    def files(self, ids: list[int], actor: Identity) -> list[tuple[str, Path, Path]]:
        """(name in the ZIP, the folder it stays inside, the file) for each item, names made unique."""
        taken: set[str] = set()
        found = []
        for row in sorted(self._owned_all(ids, actor), key=lambda r: r.id or 0):
            name = row.filename
            stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
            counter = 2
            while name.casefold() in taken:
                name, counter = f"{stem} ({counter}){dot}{ext}", counter + 1
            taken.add(name.casefold())
            found.append((name, self.outputs_root, self.outputs_root / row.path))
        return found

    def manifest(self, ids: list[int], actor: Identity) -> dict[str, Any]:
        return {"items": [query.view(row) for row in sorted(self._owned_all(ids, actor), key=lambda r: r.id or 0)]}

    def use_as_input(self, item_id: int, actor: Identity) -> dict[str, object]:
        """The item's image as an input image (deduplicated like any upload), for a workflow's image field."""
        row = self.item(item_id, actor)
        if row.kind not in ("image", "gif"):
            raise BadRequest("Only an image can be used as an input.", code="not_an_image")
        try:
            with safepath.open_inside(self.outputs_root, self.outputs_root / row.path, "rb") as handle:
                data = handle.read(64 * 1024 * 1024 + 1)
        except OSError as err:
            raise NotFound("The file is gone.", code="output_missing") from err
        return self.inputs.save(data)

    # -- boards ----------------------------------------------------------------------------------

    def boards(self, actor: Identity) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.exec(select(GalleryBoard, func.count(col(GalleryBoardItem.item_id)))
                                .join(GalleryBoardItem, isouter=True).where(GalleryBoard.owner_id == actor.user_id)
                                .group_by(col(GalleryBoard.id)).order_by(GalleryBoard.name)).all()
        return [{"id": board.id, "name": board.name, "count": count} for board, count in rows]

    def _board(self, actor: Identity, board_id: int) -> GalleryBoard:
        with Session(self.engine) as session:
            board = session.get(GalleryBoard, board_id)
        if board is None or board.owner_id != actor.user_id:
            raise NotFound("No such board.")
        return board

    def create_board(self, actor: Identity, name: str) -> dict[str, Any]:
        clean = " ".join(name.split())[:80]
        if not clean:
            raise BadRequest("A board needs a name.", fields={"name": "empty"})

        def work(session: Session) -> GalleryBoard:
            mine = session.exec(select(GalleryBoard).where(GalleryBoard.owner_id == actor.user_id)).all()
            if any(b.name.casefold() == clean.casefold() for b in mine):
                raise Conflict(f"You already have a board named {clean!r}.", code="board_exists")
            if len(mine) >= MAX_BOARDS:
                raise Conflict(f"{MAX_BOARDS} boards is the most one person can have.", code="too_many_boards")
            board = GalleryBoard(owner_id=actor.user_id, name=clean)
            session.add(board)
            session.flush()
            return board

        board = write_with_retry(self.engine, work)
        return {"id": board.id, "name": board.name, "count": 0}

    def delete_board(self, actor: Identity, board_id: int) -> None:
        self._board(actor, board_id)
        write_with_retry(self.engine, lambda s: s.execute(delete(GalleryBoard).where(col(GalleryBoard.id) == board_id)))

    def board_items(self, actor: Identity, board_id: int, ids: list[int], *, add: bool) -> dict[str, Any]:
        self._board(actor, board_id)
        rows = self._owned_all(ids, actor)

        def work(session: Session) -> None:
            have = set(session.exec(select(GalleryBoardItem.item_id).where(GalleryBoardItem.board_id == board_id)))
            for row in rows:
                if add and row.id not in have:
                    session.add(GalleryBoardItem(board_id=board_id, item_id=row.id or 0))
                elif not add and row.id in have:
                    session.execute(delete(GalleryBoardItem).where(col(GalleryBoardItem.board_id) == board_id,
                                                                   col(GalleryBoardItem.item_id) == row.id))

        write_with_retry(self.engine, work)
        return next(b for b in self.boards(actor) if b["id"] == board_id)


def _tags(raw: list[str]) -> list[str]:
    found: list[str] = []
    for tag in raw[:MAX_TAGS]:
        clean = " ".join(str(tag).split())[:MAX_TAG_CHARS]
        if clean and clean.casefold() not in {t.casefold() for t in found}:
            found.append(clean)
    return found

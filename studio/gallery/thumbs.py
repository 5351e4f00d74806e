"""Thumbnails of gallery items: two WebP sizes, made once, lazily, by the gallery's worker.

A job's output already has them (``studio.jobs.thumbnails`` makes them when the job completes, in the
job's own ``.thumbs`` folder), so an item that is still its job's untouched output is served from
there. Files found in the output folder, and job outputs replaced on disk since, get their own, made
by the same ``render`` (the same formats, the same pixel limit, the same quality) into
``STUDIO_DIR/gallery/thumbs/``; their name carries the item's revision, so a replaced file never
shows its old picture.

A video gets thumbnails of its poster frame (``studio.gallery.posters``: PyAV, else ffmpeg) where this
machine has either; elsewhere it keeps the grid's placeholder. Its job has none to share, so a video
always gets the gallery's own.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from studio import safepath
from studio.db import write_with_retry
from studio.gallery import posters
from studio.gallery.models import GalleryItem
from studio.jobs import thumbnails
from studio.jobs.models import JobOutput

log = logging.getLogger(__name__)

SIZES = thumbnails.SIZES
THUMBED = thumbnails.THUMBED_KINDS
MADE, NONE = thumbnails.MADE, thumbnails.NONE


def thumbed(item: GalleryItem) -> bool:
    """Whether this kind of item gets thumbnails here: pictures always, videos where a decoder is."""
    return item.kind in THUMBED or (item.kind == "video" and posters.decoder() is not None)


def uses_job_thumbs(item: GalleryItem) -> bool:
    return item.output_id is not None and item.rev == 0 and item.kind != "video"


def url(item: GalleryItem, size: int) -> str:
    return f"/api/gallery/items/{item.id}/thumb/{size}.webp?v={thumbnails.VERSION}.{item.rev}"


def thumbs_of(item: GalleryItem) -> dict[str, str] | None:
    if not thumbed(item) or item.thumb_state == NONE or item.id is None:
        return None
    return {str(size): url(item, size) for size in SIZES}


class GalleryThumbs:
    def __init__(self, engine: Engine, outputs_root: Path, root: Path, jobs_maker: thumbnails.Thumbnails) -> None:
        self.engine = engine
        self.outputs_root = outputs_root
        self.root = root
        self.jobs_maker = jobs_maker
        self._lock = threading.Lock()
        self._busy: dict[int, threading.Lock] = {}
        self.made_count = 0
        self.made_seconds = 0.0  # time spent rendering and writing: the bench reads both

    def path_of(self, item_id: int, rev: int, size: int) -> Path:
        return self.root / f"{item_id}-r{rev}-{size}.v{thumbnails.VERSION}.webp"

    def file(self, item: GalleryItem, size: int) -> tuple[Path, Path] | None:
        """(the folder it stays inside, the thumbnail), made now if it was not; None when there is none."""
        if size not in SIZES or item.id is None or not thumbed(item) or item.thumb_state == NONE:
            return None
        if uses_job_thumbs(item):
            with Session(self.engine) as session:
                output = session.get(JobOutput, item.output_id)
            found = self.jobs_maker.file(output, size) if output is not None else None
            return (self.outputs_root, found) if found is not None else None
        return (self.root, self.path_of(item.id, item.rev, size)) if self.ensure(item) else None

    def ensure(self, item: GalleryItem) -> bool:
        if item.id is None or not thumbed(item) or item.thumb_state == NONE:
            return False
        with self._lock:
            busy = self._busy.setdefault(item.id, threading.Lock())
        with busy:
            try:
                return self._ensure(item)
            finally:
                with self._lock:
                    self._busy.pop(item.id, None)

    def _ensure(self, item: GalleryItem) -> bool:
        assert item.id is not None
        wanted = [self.path_of(item.id, item.rev, size) for size in SIZES]
        if all(safepath.is_file_inside(self.root, path) for path in wanted):
            return True
        started = time.perf_counter()
        try:
            made = (self._from_poster(item) if item.kind == "video"
                    else thumbnails.render(self.outputs_root / item.path, self.outputs_root))
        except (thumbnails.NoThumbnail, posters.NoPoster) as err:
            log.info("gallery item %s has no thumbnail: %s", item.id, err)
            self._record(item.id, NONE)
            return False
        safepath.makedirs_durable(self.root)
        for size, data in made.items():
            safepath.write_atomic(self.root, self.path_of(item.id, item.rev, size), data)
        for old in self.root.glob(f"{item.id}-r*-*.webp"):
            if old not in wanted:
                safepath.unlink_inside(self.root, old)
        self._record(item.id, MADE)
        self.made_count += 1
        self.made_seconds += time.perf_counter() - started
        return True

    def _from_poster(self, item: GalleryItem) -> dict[int, bytes]:
        """The video's first frame, through a PNG beside the thumbnails (removed after), then the usual sizes."""
        source = self.outputs_root / item.path
        if not safepath.is_file_inside(self.outputs_root, source):
            raise thumbnails.NoThumbnail("the file is gone (or is a link)")
        frame = posters.poster_png(source)
        safepath.makedirs_durable(self.root)
        scratch = self.root / f".poster-{item.id}.png"
        safepath.write_atomic(self.root, scratch, frame)
        try:
            return thumbnails.render(scratch, self.root)
        finally:
            safepath.unlink_inside(self.root, scratch)

    def make(self, item_id: int) -> None:
        """For the worker: this item's thumbnails, unless they are its job's."""
        with Session(self.engine) as session:
            item = session.get(GalleryItem, item_id)
        if item is not None and not uses_job_thumbs(item) and item.thumb_state is None:
            self.ensure(item)

    def forget(self, item_id: int) -> None:
        for old in self.root.glob(f"{item_id}-r*-*.webp") if self.root.is_dir() else []:
            safepath.unlink_inside(self.root, old)

    def _record(self, item_id: int, state: str) -> None:
        def work(session: Session) -> None:
            row = session.get(GalleryItem, item_id)
            if row is not None:
                row.thumb_state = state
                session.add(row)

        write_with_retry(self.engine, work)

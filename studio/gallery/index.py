"""Keeping the gallery's index true: a row for every output a finished job kept, and for every file
that appears in the output folder; no row for a file that is gone.

Jobs are indexed by a worker thread when ``jobs/finished`` says one completed (the bus's publisher
never waits on the gallery). ``reconcile`` walks ``assets/output`` at start and on a schedule: a file
deleted outside Studio loses its row, a new file gets one with what its PNG text chunks say, and a
file replaced in place (another size or time) is read again and its thumbnails are made anew.
Links are never followed and hidden folders (``.thumbs``) are not indexed.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.db import write_with_retry
from studio.events import Event, EventBus
from studio.gallery import extract
from studio.gallery.models import GalleryItem, GalleryLora
from studio.jobs.models import Job, JobOutput, JobStatus
from studio.jobs.outputs import KINDS

log = logging.getLogger(__name__)

INDEXED_KINDS = ("image", "gif", "video")
IDLE_S = 30.0
MAX_WALK = 1_000_000  # files looked at in one reconcile: a runaway folder cannot keep it going forever


def kind_of(name: str) -> str | None:
    found = KINDS.get(name.rpartition(".")[2].lower()) if "." in name else None
    return found if found in INDEXED_KINDS else None


def _apply(row: GalleryItem, facts: extract.Facts) -> None:
    row.prompt, row.negative, row.model = facts.prompt, facts.negative, facts.model
    row.lora_list = facts.loras
    row.loras = "\n".join(facts.lora_names())
    row.seed, row.width, row.height, row.params = facts.seed, facts.width, facts.height, facts.params


def _set_loras(session: Session, item_id: int, names: list[str]) -> None:
    session.execute(delete(GalleryLora).where(GalleryLora.item_id == item_id))  # type: ignore[arg-type]
    for name in names:
        session.add(GalleryLora(item_id=item_id, name=name))


class GalleryIndex:
    """The index's writer: one per Studio process."""

    def __init__(self, engine: Engine, outputs_root: Path, on_disk_item: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.outputs_root = outputs_root
        self.on_disk_item = on_disk_item  # a file found on disk: its thumbnails are made after
        self._queue: queue.Queue[Callable[[], Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    # -- the worker ------------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> Callable[[], None]:
        def on_event(event: Event) -> None:
            if event.type == "jobs/finished" and event.payload.get("status") == "completed":
                job_id = str(event.payload.get("id"))
                self.submit(lambda: self._index_and_tell(bus, job_id, event.user_id))

        return bus.subscribe(on_event)

    def submit(self, work: Callable[[], Any]) -> None:
        self._queue.put(work)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="gallery", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            try:
                work = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            try:
                work()
            except Exception:  # noqa: BLE001 - one job's or file's trouble must not stop the index
                log.exception("gallery indexing failed")
            finally:
                self._queue.task_done()

    def wait_idle(self, timeout: float) -> bool:
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: not self._queue.unfinished_tasks, timeout)

    # -- jobs ------------------------------------------------------------------------------------

    def _index_and_tell(self, bus: EventBus, job_id: str, owner_id: int | None) -> None:
        ids = self.index_job(job_id)
        if ids:
            bus.publish("gallery/changed", {"ids": ids, "change": "added"}, user_id=owner_id)

    def index_job(self, job_id: str) -> list[int]:
        """Adds (or refreshes) a row for each image and video the job kept; returns their ids."""
        def work(session: Session) -> list[int]:
            job = session.get(Job, job_id)
            if job is None or job.status is not JobStatus.COMPLETED:
                return []
            outputs = session.exec(select(JobOutput).where(JobOutput.job_id == job_id)).all()
            known = {row.path: row for row in session.exec(select(GalleryItem).where(GalleryItem.job_id == job_id))}
            ids: list[int] = []
            for output in outputs:
                if output.kind not in INDEXED_KINDS:
                    continue
                row = known.get(output.path) or GalleryItem(path=output.path, kind=output.kind,
                                                            filename=output.filename)
                if row.source != "job" and row.id is not None:  # found while the job ran, maybe half written:
                    row.thumb_state, row.rev = None, row.rev + 1  # new thumbnails, at new URLs
                row.source, row.job_id, row.output_id, row.owner_id = "job", job.id, output.id, job.owner_id
                row.kind, row.workflow_id, row.workflow_name = output.kind, job.workflow_id, job.workflow_name
                row.starred = row.starred or bool(output.starred)
                row.size, row.mtime_ns = output.size, self._mtime(output.path)
                row.created_at = output.created_at or job.finished_at or datetime.now(UTC)
                _apply(row, extract.from_job(job, output))
                session.add(row)
                session.flush()
                assert row.id is not None
                _set_loras(session, row.id, [line for line in row.loras.split("\n") if line])
                ids.append(row.id)
            return ids

        return write_with_retry(self.engine, work)

    def _mtime(self, relative: str) -> int:
        try:
            return os.lstat(self.outputs_root / relative).st_mtime_ns
        except OSError:
            return 0

    # -- the files on disk -----------------------------------------------------------------------

    def walk(self) -> dict[str, os.stat_result]:
        """Every media file below the output folder (relative path → lstat), links and hidden folders skipped."""
        found: dict[str, os.stat_result] = {}
        stack = [self.outputs_root]
        while stack and len(found) < MAX_WALK:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and kind_of(entry.name):
                    relative = Path(entry.path).relative_to(self.outputs_root).as_posix()
                    found[relative] = entry.stat(follow_symlinks=False)
        return found

    def reconcile(self) -> dict[str, int]:
        """Brings the index in line with the folder; returns how many rows were dropped, added, replaced."""
        if not self.outputs_root.is_dir():
            return {"dropped": 0, "added": 0, "replaced": 0}
        on_disk = self.walk()
        with Session(self.engine) as session:
            indexed: dict[str, tuple[int, int, int]] = {
                path: (item_id or 0, size, mtime) for item_id, path, size, mtime in session.exec(
                    select(GalleryItem.id, GalleryItem.path, GalleryItem.size, GalleryItem.mtime_ns))}
        gone = [item_id for path, (item_id, _, _) in indexed.items() if path not in on_disk]
        # oldest first: ids are the gallery's "newest" order, so files found together keep their times' order
        new = sorted((path for path in on_disk if path not in indexed), key=lambda path: on_disk[path].st_mtime_ns)
        changed = [(indexed[path][0], path) for path, facts in on_disk.items() if path in indexed
                   and (facts.st_size, facts.st_mtime_ns) != indexed[path][1:] and indexed[path][2]]
        for start in range(0, len(gone), 500):
            self._drop(gone[start:start + 500])
        # Outputs of jobs that finished before the gallery existed (or while it was not listening) are
        # indexed as their job's, with its parameters; only what is left is a file found on disk.
        jobs = {path.split("/")[1] for path in new if path.startswith("studio/") and path.count("/") == 2}
        backfilled = {path for job_id in sorted(jobs) for path in self._paths_of(self.index_job(job_id))}
        for path in new:
            if path not in backfilled:
                self._add_file(path, on_disk[path])
        for item_id, path in changed:
            self._replace_file(item_id, path, on_disk[path])
        if gone or new or changed:
            log.info("gallery reconciled: %d dropped, %d added, %d replaced", len(gone), len(new), len(changed))
        return {"dropped": len(gone), "added": len(new), "replaced": len(changed)}

    def _paths_of(self, ids: list[int]) -> set[str]:
        if not ids:
            return set()
        with Session(self.engine) as session:
            return set(session.exec(select(GalleryItem.path).where(col(GalleryItem.id).in_(ids))))

    def _drop(self, ids: list[int]) -> None:
        def work(session: Session) -> None:
            session.execute(delete(GalleryItem).where(col(GalleryItem.id).in_(ids)))

        write_with_retry(self.engine, work)

    def _owner_and_job(self, session: Session, relative: str) -> tuple[int | None, Job | None]:
        parts = relative.split("/")
        if len(parts) == 3 and parts[0] == "studio":
            job = session.get(Job, parts[1])
            if job is not None:
                return job.owner_id, job
        return None, None  # not Studio's: only admins see it

    def _add_file(self, relative: str, facts: os.stat_result) -> None:
        kind = kind_of(relative)
        if kind is None:
            return
        read = (extract.from_file(self.outputs_root, self.outputs_root / relative) if kind != "video"
                else extract.Facts())

        def work(session: Session) -> int | None:
            if session.exec(select(GalleryItem.id).where(GalleryItem.path == relative)).first() is not None:
                return None
            owner, job = self._owner_and_job(session, relative)
            row = GalleryItem(path=relative, source="disk", kind=kind, filename=relative.rsplit("/", 1)[-1][:255],
                              owner_id=owner, job_id=job.id if job else None,
                              workflow_id=job.workflow_id if job else None,
                              workflow_name=job.workflow_name if job else None, size=facts.st_size,
                              mtime_ns=facts.st_mtime_ns,
                              created_at=datetime.fromtimestamp(facts.st_mtime, UTC))
            _apply(row, read)
            session.add(row)
            session.flush()
            assert row.id is not None
            _set_loras(session, row.id, read.lora_names())
            return row.id

        item_id = write_with_retry(self.engine, work)
        if item_id is not None and self.on_disk_item is not None:
            self.on_disk_item(item_id)

    def _replace_file(self, item_id: int, relative: str, facts: os.stat_result) -> None:
        kind = kind_of(relative) or "image"
        read = extract.from_file(self.outputs_root, self.outputs_root / relative) if kind != "video" else None

        def work(session: Session) -> bool:
            row = session.get(GalleryItem, item_id)
            if row is None:
                return False
            row.size, row.mtime_ns, row.rev, row.thumb_state = facts.st_size, facts.st_mtime_ns, row.rev + 1, None
            if row.source == "disk" and read is not None:  # a job's own facts are its job's; the file's are not
                _apply(row, read)
                _set_loras(session, item_id, read.lora_names())
            elif read is not None:
                row.width, row.height = read.width, read.height
            session.add(row)
            return True

        if write_with_retry(self.engine, work) and self.on_disk_item is not None:
            self.on_disk_item(item_id)

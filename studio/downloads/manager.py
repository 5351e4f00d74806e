"""The download queue: rows in the database, pumped by APScheduler into a small pool of workers.

State survives a restart: anything that was downloading goes back to the queue and resumes from
its ``.part`` file. Failures worth retrying wait with exponential backoff and jitter; the rest fail
with a sentence a person can act on.
"""

from __future__ import annotations

import logging
import random
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.db import transition, write_with_retry
from studio.downloads.civitai import resolve_civitai_file, version_url
from studio.downloads.hub import hub_url, resolve_hub_file
from studio.downloads.models import ACTIVE, Download, DownloadStatus
from studio.downloads.transfer import (
    DiskFull,
    FatalTransferError,
    Progress,
    Stall,
    Stopped,
    TransferError,
    fetch,
)
from studio.errors import BadRequest, Conflict, InsufficientStorage, NotFound
from studio.events import EventBus
from studio.models.catalog import CatalogEntry
from studio.models.storage import PICKLE_SUFFIXES, ModelsRoot

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# A worker owns the row in these states; whatever ends its attempt moves it on from either.
WORKING = (DownloadStatus.DOWNLOADING, DownloadStatus.VERIFYING)
SPACE_MARGIN = 256 * 1024 * 1024


def view(item: Download, speed: float = 0.0) -> dict[str, Any]:
    remaining = (item.total_bytes - item.bytes_done) if item.total_bytes else None
    return {"id": item.id, "name": item.name, "path": item.path, "source": item.source,
            "status": item.status.value, "bytes_done": item.bytes_done, "total_bytes": item.total_bytes,
            "speed": round(speed), "eta_s": round(remaining / speed) if remaining and speed > 0 else None,
            "error": item.error, "attempts": item.attempts, "sha256": item.sha256,
            # compared with a hash known beforehand (catalog, Hugging Face LFS, CivitAI), not just computed
            "revision": item.source_revision,
            "verified": bool(item.sha256 and item.expected_sha256 and item.sha256 == item.expected_sha256.lower())}


class DownloadManager:
    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        root: ModelsRoot,
        *,
        concurrency: Callable[[], int],
        tokens: Callable[[], dict[str, str]],
        hf_token: Callable[[], str | None] = lambda: None,
        hf_endpoint: str = "https://huggingface.co",
        civitai_endpoint: str = "https://civitai.com",
        margin: int = SPACE_MARGIN,
        on_completed: Callable[[Path, str], None] | None = None,
        stall: Stall | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.root = root
        self.concurrency = concurrency
        self.tokens = tokens
        self.hf_token = hf_token
        self.hf_endpoint = hf_endpoint
        self.civitai_endpoint = civitai_endpoint
        self.margin = margin
        self.on_completed = on_completed
        self.stall = stall or Stall()
        self.session = requests.Session()
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="download")
        self._scheduler: BackgroundScheduler | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        def work(session: Session) -> None:  # whatever was in flight when Studio stopped resumes
            session.execute(update(Download).where(col(Download.status).in_(
                [DownloadStatus.DOWNLOADING, DownloadStatus.VERIFYING])).values(status=DownloadStatus.QUEUED))

        write_with_retry(self.engine, work)
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(self.pump, "interval", seconds=1, id="downloads-pump", replace_existing=True,
                                max_instances=1, coalesce=True)
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        with self._lock:
            for flag in self._running.values():
                flag.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- queueing -------------------------------------------------------------------------------

    def enqueue(self, *, url: str, dest: str, file_name: str, name: str | None = None, source: str = "url",
                expected_sha256: str | None = None, expected_size: int | None = None,
                requested_by: int | None = None, allow_pickle: bool = False) -> dict[str, Any]:
        target = self.root.target(dest, file_name)
        if target.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise Conflict(f"{file_name} is a pickle file, which can run code when loaded: "
                           "an admin must confirm it.", code="pickle_needs_confirmation")
        if target.is_file():
            raise Conflict(f"{file_name} is already in the models folder.", code="already_installed")
        relative = self.root.relative(target)
        if expected_size:
            self._check_space(file_name, expected_size)
        item = Download(id=str(uuid.uuid4()), name=name or file_name, path=relative, url=url, source=source,
                        expected_sha256=expected_sha256, expected_size=expected_size, requested_by=requested_by)

        def work(session: Session) -> Download:
            waiting = [*ACTIVE, DownloadStatus.PAUSED]
            busy = session.exec(select(Download).where(Download.path == relative,
                                                       col(Download.status).in_(waiting))).first()
            if busy is not None:
                raise Conflict(f"{file_name} is already in the download queue.", code="already_queued")
            session.add(item)
            return item

        write_with_retry(self.engine, work)
        self._publish(item)
        threading.Thread(target=self.pump, daemon=True).start()
        return view(item)

    def _check_space(self, file_name: str, size: int) -> None:
        """Refuses up front what cannot fit next to everything already waiting to download."""
        with Session(self.engine) as session:
            waiting = session.exec(select(Download).where(
                col(Download.status).in_([*ACTIVE, DownloadStatus.PAUSED]))).all()
        promised = sum(max(0, (d.total_bytes or d.expected_size or 0) - d.bytes_done) for d in waiting)
        free = shutil.disk_usage(self.root.root if self.root.root.exists() else self.root.root.parent).free
        if size + promised + self.margin > free:
            gb = 1024**3
            raise InsufficientStorage(
                f"Not enough disk space for {file_name}: it needs {size / gb:.1f} GB, "
                f"{free / gb:.1f} GB are free and {promised / gb:.1f} GB are already promised to queued downloads.")

    def source_url(self, entry: CatalogEntry) -> str | None:
        """Where a catalog entry downloads from; None when it names no source."""
        if entry.source == "huggingface" and entry.hf_repo and entry.hf_file:
            return hub_url(self.hf_endpoint, entry.hf_repo, entry.hf_file, entry.revision or "main")
        if entry.source == "civitai" and entry.civitai_version_id:
            return version_url(self.civitai_endpoint, entry.civitai_version_id)
        return str(entry.url) if entry.url else None

    def enqueue_entry(self, entry: CatalogEntry, *, requested_by: int | None,
                      allow_pickle: bool = False) -> dict[str, Any]:
        url = self.source_url(entry)
        if url is None:
            raise BadRequest(f"The catalog entry {entry.name} says nowhere to download it from.",
                             fields={"catalog_file": "no source"})
        return self.enqueue(url=url, dest=entry.dest, file_name=entry.file, name=entry.name, source=entry.source,
                            expected_sha256=entry.sha256, expected_size=int(entry.size_gb * 1024**3) or None,
                            requested_by=requested_by, allow_pickle=allow_pickle)

    def list(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.exec(select(Download).order_by(col(Download.created_at).desc()).limit(500))
            return [view(item) for item in rows]

    def get(self, download_id: str) -> Download:
        with Session(self.engine) as session:
            item = session.get(Download, download_id)
        if item is None:
            raise NotFound("No such download.")
        return item

    def _set(self, download_id: str, status: DownloadStatus, allowed: tuple[DownloadStatus, ...],
             **changes: Any) -> Download | None:
        values = {"status": status, "updated_at": datetime.now(UTC), **changes}
        item: Download | None = write_with_retry(
            self.engine, lambda session: transition(session, Download, download_id, allowed, values))
        if item is not None:
            self._publish(item)
        return item

    def pause(self, download_id: str) -> dict[str, Any]:
        item = self._set(download_id, DownloadStatus.PAUSED, (DownloadStatus.QUEUED, DownloadStatus.DOWNLOADING,
                                                             DownloadStatus.VERIFYING))
        self._signal(download_id)
        return view(item or self.get(download_id))

    def resume(self, download_id: str) -> dict[str, Any]:
        item = self._set(download_id, DownloadStatus.QUEUED, (DownloadStatus.PAUSED, DownloadStatus.FAILED),
                         retry_at=None, error=None)
        threading.Thread(target=self.pump, daemon=True).start()
        return view(item or self.get(download_id))

    retry = resume

    def cancel(self, download_id: str) -> dict[str, Any]:
        item = self._set(download_id, DownloadStatus.CANCELLED,
                         (*ACTIVE, DownloadStatus.PAUSED, DownloadStatus.FAILED), finished_at=datetime.now(UTC))
        self._signal(download_id)
        found = item or self.get(download_id)
        if item is not None and download_id not in self._running:
            self._discard_part(found)
        return view(found)

    def set_all_paused(self, paused: bool) -> int:
        with Session(self.engine) as session:
            wanted = (DownloadStatus.QUEUED, DownloadStatus.DOWNLOADING) if paused else (DownloadStatus.PAUSED,)
            ids = list(session.exec(select(Download.id).where(col(Download.status).in_(wanted))))
        for download_id in ids:
            self.pause(download_id) if paused else self.resume(download_id)
        return len(ids)

    def cancel_all(self) -> int:
        """Cancels everything not finished yet (queued, running, paused, failed)."""
        with Session(self.engine) as session:
            ids = list(session.exec(select(Download.id).where(col(Download.status).in_(
                [*ACTIVE, DownloadStatus.PAUSED, DownloadStatus.FAILED]))))
        for download_id in ids:
            self.cancel(download_id)
        return len(ids)

    def retry_failed(self) -> int:
        with Session(self.engine) as session:
            ids = list(session.exec(select(Download.id).where(Download.status == DownloadStatus.FAILED)))
        for download_id in ids:
            self.retry(download_id)
        return len(ids)

    def _signal(self, download_id: str) -> None:
        with self._lock:
            flag = self._running.get(download_id)
        if flag is not None:
            flag.set()

    def _discard_part(self, item: Download) -> None:
        part = self.root.root / (item.path + ".part")
        part.unlink(missing_ok=True)

    # -- working --------------------------------------------------------------------------------

    def pump(self) -> None:
        """Starts queued downloads while fewer than the cap are running."""
        while True:
            with self._lock:
                if len(self._running) >= max(1, self.concurrency()):
                    return
            item = self._claim()
            if item is None:
                return
            flag = threading.Event()
            with self._lock:
                self._running[item.id] = flag
            try:
                self._pool.submit(self._run, item, flag)
            except RuntimeError:  # shutting down
                return

    def _claim(self) -> Download | None:
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            candidate = session.exec(select(Download).where(
                Download.status == DownloadStatus.QUEUED,
                or_(col(Download.retry_at).is_(None), col(Download.retry_at) <= now))
                .order_by(col(Download.created_at))).first()
        if candidate is None:
            return None
        return self._set(candidate.id, DownloadStatus.DOWNLOADING, (DownloadStatus.QUEUED,),
                         attempts=candidate.attempts + 1)

    def _run(self, item: Download, stop: threading.Event) -> None:
        target = self.root.root / item.path
        part = target.with_name(target.name + ".part")
        kept_before = part.stat().st_size if part.is_file() else 0
        item.bytes_done = kept_before

        def report(progress: Progress) -> None:
            item.bytes_done, item.total_bytes = progress.bytes_done, progress.total
            write_with_retry(self.engine, lambda s: s.execute(update(Download).where(col(Download.id) == item.id)
                             .values(bytes_done=progress.bytes_done, total_bytes=progress.total,
                                     updated_at=datetime.now(UTC))))
            self._publish(item, progress.speed)

        def verifying(started: bool) -> None:
            if started:
                self._set(item.id, DownloadStatus.VERIFYING, (DownloadStatus.DOWNLOADING,))
            else:
                self._set(item.id, DownloadStatus.DOWNLOADING, (DownloadStatus.VERIFYING,))

        try:
            url, expected, revision = item.url, item.expected_sha256, None
            if item.source == "huggingface":  # signed storage URLs expire: resolve again on every attempt
                url, expected, revision = resolve_hub_file(item.url, self.hf_token(), expected)
            elif item.source == "civitai":
                version_id = int(item.url.rstrip("/").rsplit("/", 1)[-1])
                url, expected = resolve_civitai_file(self.session, self.civitai_endpoint, version_id,
                                                     self.tokens(), expected)
            digest = fetch(self.session, url, target, tokens=self.tokens(), expected_sha256=expected,
                           should_stop=stop.is_set, report=report,
                           free_bytes=lambda: shutil.disk_usage(self.root.root).free, margin=self.margin,
                           stall=self.stall, verifying=verifying)
        except Stopped:
            with Session(self.engine) as session:
                current = session.get(Download, item.id)
            if current is not None and current.status is DownloadStatus.CANCELLED:
                self._discard_part(current)
        except DiskFull as err:
            self._set(item.id, DownloadStatus.PAUSED, WORKING, error=str(err))
        except FatalTransferError as err:
            self._fail(item, str(err))
        except TransferError as err:
            # An attempt that moved the file forward does not count towards giving up: a 20 GB
            # download through a flaky CDN may need many reconnects, each of them worth it.
            attempts = 0 if item.bytes_done > kept_before else item.attempts
            if attempts >= MAX_ATTEMPTS:
                self._fail(item, f"Gave up after {attempts} attempts: {err}")
            else:
                delay = min(300.0, 2.0 ** attempts) * random.uniform(0.5, 1.0)
                log.info("download %s: %s; retrying in %.0fs", item.name, err, delay)
                self._set(item.id, DownloadStatus.QUEUED, WORKING, attempts=attempts,
                          retry_at=datetime.now(UTC) + timedelta(seconds=delay), error=str(err))
        except OSError as err:  # the disk or the folder, not the network (transfer.py sorts those out)
            self._fail(item, f"Writing the file failed: {err.strerror or type(err).__name__}")
        else:
            done = self._set(item.id, DownloadStatus.COMPLETED, WORKING, sha256=digest, expected_sha256=expected,
                             source_revision=revision,
                             error=None, finished_at=datetime.now(UTC), bytes_done=target.stat().st_size,
                             total_bytes=target.stat().st_size)
            if done is not None:
                if self.on_completed is not None:
                    self.on_completed(target, digest)
                self.bus.publish("downloads/finished", {"id": done.id, "name": done.name, "status": "completed"})
        finally:
            with self._lock:
                self._running.pop(item.id, None)
            threading.Thread(target=self.pump, daemon=True).start()

    def _fail(self, item: Download, message: str) -> None:
        failed = self._set(item.id, DownloadStatus.FAILED, WORKING, error=message,
                           finished_at=datetime.now(UTC))
        if failed is not None:
            self.bus.publish("downloads/finished", {"id": failed.id, "name": failed.name, "status": "failed",
                                                    "error": message})

    def _publish(self, item: Download, speed: float = 0.0) -> None:
        self.bus.publish("downloads/update", view(item, speed), key=item.id)

"""The download queue: rows in the database, pumped by APScheduler into a small pool of workers.

This module owns the queue and who may steer which row; what a worker does with the row it is
handed (one attempt: fetch, then completed, failed, paused or queued again) is ``attempt.py``.

State survives a restart: anything that was downloading goes back to the queue and resumes from
its ``.part`` file. Failures worth retrying wait with exponential backoff and jitter; the rest fail
with a sentence a person can act on.
"""

from __future__ import annotations

import builtins
import logging
import math
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import requests
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.db import transition, write_with_retry
from studio.downloads import names
from studio.downloads.attempt import WORKING, attempt, fail
from studio.downloads.civitai import version_url
from studio.downloads.hub import hub_url
from studio.downloads.models import ACTIVE, Download, DownloadStatus
from studio.downloads.transfer import FatalTransferError, Stall, Stopped
from studio.errors import BadRequest, Conflict, InsufficientStorage, NotFound, StudioError
from studio.events import EventBus
from studio.models.catalog import CatalogEntry, text_problem
from studio.models.storage import PICKLE_SUFFIXES, ModelsRoot
from studio.safepath import check_relative, lexists_inside, unlink_inside

log = logging.getLogger(__name__)

# Rows that may still own their path's ``.part`` file: a paused or failed download keeps it for a
# resume or retry. While one exists, nobody else queues that path, and no other row removes the file.
PART_KEPT = (DownloadStatus.PAUSED, DownloadStatus.FAILED)
OWNS_PART = (*ACTIVE, *PART_KEPT)
SPACE_MARGIN = 256 * 1024 * 1024
# Larger than any disk: a size beyond this is a mistake (or 1e308), never a reason to overflow.
MAX_SIZE = 2**60
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
URL = re.compile(r"^https?://[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$")  # no control characters


class Caller(Protocol):
    """Who asks for a download control: their own downloads, or everyone's for an admin."""

    @property
    def user_id(self) -> int: ...

    @property
    def is_admin(self) -> bool: ...


def view(item: Download, speed: float = 0.0) -> dict[str, Any]:
    remaining = (item.total_bytes - item.bytes_done) if item.total_bytes else None
    return {"id": item.id, "name": item.name, "path": item.path, "source": item.source,
            "status": item.status.value, "bytes_done": item.bytes_done, "total_bytes": item.total_bytes,
            "speed": round(speed), "eta_s": round(remaining / speed) if remaining and speed > 0 else None,
            "error": item.error, "attempts": item.attempts, "sha256": item.sha256,
            "requested_by": item.requested_by,
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
        self._pumping = threading.Lock()
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

    def enqueue(self, *, url: str, dest: str, file_name: str | None, name: str | None = None, source: str = "url",
                expected_sha256: str | None = None, expected_size: int | None = None,
                requested_by: int | None = None, allow_pickle: bool = False) -> dict[str, Any]:
        """Every way into the queue comes through here: each value that will become a file name, a
        URL or a column is checked against its real limits first (a 400 naming the field).

        ``file_name`` None: the URL's own file name, or else the server's at the first answer
        (``names.py``; ``name_file`` checks it then as this checks a given one now)."""
        if not isinstance(url, str) or len(url) > 4096 or not URL.match(url):
            raise BadRequest("The download URL must be an http(s) URL of at most 4096 characters.",
                             fields={"url": "not an http(s) URL"})
        file_name = file_name if file_name is not None else names.from_url(url)
        if file_name is None:
            return self._enqueue_unnamed(url=url, dest=dest, name=name, expected_sha256=expected_sha256,
                                         requested_by=requested_by, allow_pickle=allow_pickle)
        target = self.root.target(dest, file_name)
        name = _display_name(name or file_name)
        _check_sha256(expected_sha256)
        if expected_size is not None and not (isinstance(expected_size, int) and 0 <= expected_size <= MAX_SIZE):
            raise BadRequest("The expected size is not a usable number of bytes.", fields={"size_gb": "out of range"})
        if target.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise Conflict(f"{file_name} is a pickle file, which can run code when loaded: "
                           "an admin must confirm it.", code="pickle_needs_confirmation")
        self.root.check_writable(target)
        if lexists_inside(self.root.root, target):  # a file, or a link someone put there: installed
            raise Conflict(f"{file_name} is already in the models folder.", code="already_installed")
        relative = self.root.relative(target)
        if expected_size:
            self._check_space(file_name, expected_size)
        item = Download(id=str(uuid.uuid4()), name=name, path=relative, url=url, source=source,
                        expected_sha256=expected_sha256.lower() if expected_sha256 else None,
                        expected_size=expected_size or None, requested_by=requested_by)

        def work(session: Session) -> Download:
            busy = _part_owner(session, relative)
            if busy is not None:
                raise Conflict(f"{file_name} is already in the download queue ({busy.status.value}); "
                               + ("retry or cancel that download first." if busy.status in PART_KEPT else
                                  "wait for it, or cancel it first."),
                               code="already_queued", details={"status": busy.status.value})
            session.add(item)
            return item

        write_with_retry(self.engine, work)
        return self._queued(item)

    def _enqueue_unnamed(self, *, url: str, dest: str, name: str | None, expected_sha256: str | None,
                         requested_by: int | None, allow_pickle: bool) -> dict[str, Any]:
        """A URL whose path names no model file: queued under its folder; the server names it."""
        folder = check_relative(dest, field="dest", reserve=0)
        _check_sha256(expected_sha256)
        self.root.check_writable(self.root.root / folder / "unnamed")
        item = Download(id=str(uuid.uuid4()), name=_display_name(name or names.provisional(url)), path=f"{folder}/",
                        url=url, source="url", expected_sha256=expected_sha256.lower() if expected_sha256 else None,
                        requested_by=requested_by, allow_pickle=allow_pickle)
        write_with_retry(self.engine, lambda session: session.add(item))
        return self._queued(item)

    def _queued(self, item: Download) -> dict[str, Any]:
        self.publish(item)
        threading.Thread(target=self.pump, daemon=True).start()
        return view(item)

    def name_file(self, item: Download, file_name: str) -> Path:
        """Gives a row the file name its server sent, with every check ``enqueue`` makes of a given
        one; a name that cannot be used fails the download with the reason (nothing is written)."""
        folder = item.path.rstrip("/")
        try:
            target = self.root.target(folder, file_name)
            self.root.check_writable(target)
        except BadRequest as err:
            raise FatalTransferError(f"The server names the file {file_name[:80]!r}, which cannot be saved: "
                                     f"{err.message}") from None
        if target.suffix.lower() in PICKLE_SUFFIXES and not item.allow_pickle:
            raise FatalTransferError(f"The server names the file {file_name}, a pickle file, which can run code "
                                     "when loaded: download it again with that file name and confirm the pickle.")
        if lexists_inside(self.root.root, target):
            raise FatalTransferError(f"The server names the file {file_name}, which is already in the models "
                                     "folder: nothing was downloaded.")
        relative = self.root.relative(target)
        display = file_name if item.name == names.provisional(item.url) else item.name

        def work(session: Session) -> Download | None:
            busy = _part_owner(session, relative, besides=item.id)
            if busy is not None:
                raise FatalTransferError(f"The server names the file {file_name}, which is already in the download "
                                         f"queue ({busy.status.value}): nothing was downloaded.")
            return transition(session, Download, item.id, WORKING,
                              {"path": relative, "name": display, "updated_at": datetime.now(UTC)})

        named: Download | None = write_with_retry(self.engine, work)
        if named is None:
            raise Stopped  # paused or cancelled before the first answer
        item.path, item.name = named.path, named.name
        self.publish(named)
        return target

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
                            expected_sha256=entry.sha256, expected_size=size_in_bytes(entry.size_gb),
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

    def _owned(self, caller: Caller, download_id: str) -> Download:
        """The one rule for every control: a caller acts on their own downloads, an admin on any.

        Someone else's download answers exactly like one that does not exist, and nothing changes.
        """
        item = self.get(download_id)
        if not caller.is_admin and item.requested_by != caller.user_id:
            raise NotFound("No such download.")
        return item

    def _owned_ids(self, caller: Caller, statuses: tuple[DownloadStatus, ...]) -> builtins.list[str]:
        """The ids in ``statuses`` that ``caller`` may act on (the ``…-all`` actions)."""
        query = select(Download.id).where(col(Download.status).in_(statuses))
        if not caller.is_admin:
            query = query.where(Download.requested_by == caller.user_id)
        with Session(self.engine) as session:
            return list(session.exec(query))

    def set_status(self, download_id: str, status: DownloadStatus, allowed: tuple[DownloadStatus, ...],
                   **changes: Any) -> Download | None:
        """Moves a row on only from ``allowed`` (one conditional UPDATE) and tells the watchers."""
        values = {"status": status, "updated_at": datetime.now(UTC), **changes}
        item: Download | None = write_with_retry(
            self.engine, lambda session: transition(session, Download, download_id, allowed, values))
        if item is not None:
            self.publish(item)
        return item

    def pause(self, download_id: str, *, caller: Caller) -> dict[str, Any]:
        self._owned(caller, download_id)
        item = self.set_status(download_id, DownloadStatus.PAUSED, (DownloadStatus.QUEUED, DownloadStatus.DOWNLOADING,
                                                             DownloadStatus.VERIFYING))
        self._signal(download_id)
        return view(item or self.get(download_id))

    def resume(self, download_id: str, *, caller: Caller) -> dict[str, Any]:
        mine = self._owned(caller, download_id)
        with Session(self.engine) as session:
            other = _part_owner(session, mine.path, besides=download_id)
        if other is not None and mine.status in (DownloadStatus.PAUSED, DownloadStatus.FAILED):
            # Another row (an older Studio let two be queued) keeps that partial file: never both.
            raise Conflict(f"Another download of {mine.name} is {other.status.value} and keeps its partial file; "
                           "cancel one of them first.", code="already_queued", details={"status": other.status.value})
        item = self.set_status(download_id, DownloadStatus.QUEUED, (DownloadStatus.PAUSED, DownloadStatus.FAILED),
                         retry_at=None, error=None)
        threading.Thread(target=self.pump, daemon=True).start()
        return view(item or self.get(download_id))

    retry = resume

    def cancel(self, download_id: str, *, caller: Caller) -> dict[str, Any]:
        self._owned(caller, download_id)
        item = self.set_status(download_id, DownloadStatus.CANCELLED,
                         (*ACTIVE, DownloadStatus.PAUSED, DownloadStatus.FAILED), finished_at=datetime.now(UTC))
        self._signal(download_id)
        found = item or self.get(download_id)
        with self._lock:
            running = download_id in self._running
        if item is not None and not running:
            self.discard_part(found)
        return view(found)

    def _each(self, ids: builtins.list[str], action: Callable[[str], object]) -> int:
        """Runs ``action`` on every id; one row that fails is logged and never stops the rest."""
        changed = 0
        for download_id in ids:
            try:
                action(download_id)
            except StudioError:
                continue  # gone or changed meanwhile
            except Exception:  # noqa: BLE001 - one bad row must not stop the others
                log.exception("download %s: the action failed; carrying on with the others", download_id)
                continue
            changed += 1
        return changed

    def set_all_paused(self, paused: bool, *, caller: Caller) -> int:
        wanted = (DownloadStatus.QUEUED, DownloadStatus.DOWNLOADING) if paused else (DownloadStatus.PAUSED,)
        ids = self._owned_ids(caller, wanted)
        if paused:
            return self._each(ids, lambda download_id: self.pause(download_id, caller=caller))
        return self._each(ids, lambda download_id: self.resume(download_id, caller=caller))

    def cancel_all(self, *, caller: Caller) -> int:
        """Cancels everything of the caller's (an admin's: everyone's) not finished yet."""
        ids = self._owned_ids(caller, (*ACTIVE, DownloadStatus.PAUSED, DownloadStatus.FAILED))
        return self._each(ids, lambda download_id: self.cancel(download_id, caller=caller))

    def retry_failed(self, *, caller: Caller) -> int:
        ids = self._owned_ids(caller, (DownloadStatus.FAILED,))
        return self._each(ids, lambda download_id: self.retry(download_id, caller=caller))

    def _signal(self, download_id: str) -> None:
        with self._lock:
            flag = self._running.get(download_id)
        if flag is not None:
            flag.set()

    def discard_part(self, item: Download) -> None:
        """Removes a cancelled download's partial file; a link there is removed itself, never its target.

        Never one that another row may still own (queued, downloading, verifying, paused or failed
        with the same path: it resumes from that file). Never raises: a row whose name cannot exist
        on disk, or a folder turned into a link, leaves nothing to remove (and must not stop
        ``cancel-all``); nor does a row the server has not named yet.
        """
        if names.pending(item.path):
            return
        try:
            relative = check_relative(item.path, field="path")
        except BadRequest:
            return  # a name that cannot exist on disk: there is no partial file to remove
        with Session(self.engine) as session:
            other = _part_owner(session, item.path, besides=item.id)
        if other is not None:
            log.info("download %s cancelled; its partial file is kept for download %s (%s)", item.id, other.id,
                     other.status.value)
            return
        try:
            unlink_inside(self.root.root, self.root.root / (relative + ".part"))
        except (OSError, ValueError) as err:
            log.warning("download %s: its partial file was not removed: %s", item.id, err)

    # -- working --------------------------------------------------------------------------------

    def pump(self) -> None:
        """Starts queued downloads while fewer than the cap are running.

        One pump at a time (every enqueue, resume and finished attempt starts one): two that both
        saw a free slot before either had registered its claim would run one download too many."""
        with self._pumping:
            while True:
                with self._lock:
                    if len(self._running) >= self._cap():
                        return
                item = self._claim()
                if item is None:
                    return
                flag = threading.Event()
                with self._lock:
                    self._running[item.id] = flag
                # A pause or cancel between the claim and the line above found no flag to set: look again.
                with Session(self.engine) as session:
                    current = session.get(Download, item.id)
                if current is None or current.status is not DownloadStatus.DOWNLOADING:
                    flag.set()
                try:
                    self._pool.submit(self._run, item, flag)
                except RuntimeError:  # shutting down
                    return

    def _cap(self) -> int:
        """How many run at once; a setting that is not a number never stops the queue."""
        try:
            return max(1, min(64, int(self.concurrency())))
        except (TypeError, ValueError, OverflowError):
            return 1

    def _claim(self) -> Download | None:
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            candidate = session.exec(select(Download).where(
                Download.status == DownloadStatus.QUEUED,
                or_(col(Download.retry_at).is_(None), col(Download.retry_at) <= now))
                .order_by(col(Download.created_at))).first()
        if candidate is None:
            return None
        return self.set_status(candidate.id, DownloadStatus.DOWNLOADING, (DownloadStatus.QUEUED,),
                         attempts=candidate.attempts + 1)

    def _run(self, item: Download, stop: threading.Event) -> None:
        try:
            attempt(self, item, stop)
        except Exception as err:  # noqa: BLE001 - whatever happens, the row moves on and the slot frees
            log.exception("download %s: unexpected failure", item.id)
            fail(self, item, f"The download failed unexpectedly ({type(err).__name__}).")
        finally:
            with self._lock:
                self._running.pop(item.id, None)
            threading.Thread(target=self.pump, daemon=True).start()

    def publish(self, item: Download, speed: float = 0.0) -> None:
        """The row as the Downloads list shows it, keyed by id so a slow socket keeps only the latest."""
        self.bus.publish("downloads/update", view(item, speed), key=item.id)


def _part_owner(session: Session, path: str, *, besides: str | None = None) -> Download | None:
    """The row that may own ``path``'s partial file (it resumes from it), other than ``besides``.

    None for a folder (rows the server has yet to name own no partial file)."""
    if names.pending(path):
        return None
    query = select(Download).where(Download.path == path, col(Download.status).in_(OWNS_PART))
    if besides is not None:
        query = query.where(Download.id != besides)
    return session.exec(query.order_by(col(Download.created_at))).first()


def _display_name(name: object) -> str:
    """A download's display name: text of at most 255 characters, no control characters."""
    problem = text_problem(name, 255)
    if problem:
        raise BadRequest(f"The name {str(name)[:80]!r} {problem}.", fields={"name": problem})
    assert isinstance(name, str)
    return name


def _check_sha256(expected: object) -> None:
    if expected is not None and not (isinstance(expected, str) and SHA256.match(expected)):
        raise BadRequest("The SHA-256 must be 64 hexadecimal digits.", fields={"sha256": "not a SHA-256"})


def size_in_bytes(size_gb: float) -> int | None:
    """A catalog's ``size_gb`` in bytes; None when unknown (0) or not a usable number."""
    if not isinstance(size_gb, (int, float)) or not math.isfinite(size_gb) or size_gb <= 0:
        return None
    size = int(size_gb * 1024**3)
    return size if 0 < size <= MAX_SIZE else None

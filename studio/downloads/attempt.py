"""One attempt at one download: resolve where the bytes are, fetch them, and move the row on.

The queue (``manager.py``) decides *which* download runs and *who* may steer it; this module is
what a worker does with the row it was handed: it reads what a previous attempt kept, resolves
signed URLs again (they expire), calls the transfer, and sorts every way it can end into the row's
next state (completed, paused for disk space, failed with a sentence, or queued again with backoff).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import requests
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from studio.db import write_with_retry
from studio.downloads import names
from studio.downloads.civitai import LOGIN_WANTED, resolve_civitai_file
from studio.downloads.credentials import allowed, hf_origins
from studio.downloads.hub import resolve_hub_file
from studio.downloads.models import Download, DownloadStatus
from studio.downloads.transfer import (
    AccessRefused,
    DiskFull,
    FatalTransferError,
    Progress,
    Stall,
    Stopped,
    TransferError,
    fetch,
)
from studio.errors import BadRequest
from studio.events import EventBus
from studio.models.storage import ModelsRoot
from studio.safepath import UnsafePath, check_relative

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# A worker owns the row in these states; whatever ends its attempt moves it on from either.
WORKING = (DownloadStatus.DOWNLOADING, DownloadStatus.VERIFYING)


class Queue(Protocol):
    """What an attempt needs from the queue that handed it the row (read at every attempt, so a
    changed setting or token applies to the next one)."""

    engine: Engine
    bus: EventBus
    root: ModelsRoot
    session: requests.Session
    tokens: Callable[[], dict[str, str]]
    hf_token: Callable[[], str | None]
    hf_endpoint: str
    civitai_endpoint: str
    margin: int
    stall: Stall
    on_completed: Callable[[Path, str], None] | None

    def set_status(self, download_id: str, status: DownloadStatus, allowed: tuple[DownloadStatus, ...],
                   **changes: Any) -> Download | None: ...

    def publish(self, item: Download, speed: float = 0.0) -> None: ...

    def discard_part(self, item: Download) -> None: ...

    def name_file(self, item: Download, file_name: str) -> Path: ...


def attempt(queue: Queue, item: Download, stop: threading.Event) -> None:
    """Runs one attempt of ``item``; ``stop`` is set by a pause or a cancel."""
    root = queue.root.root
    target: Path | None = None  # None: the server names it at its first answer
    kept_before = 0
    if not names.pending(item.path):
        try:  # a row from before names were checked (or edited by hand) fails with the reason
            target = root / check_relative(item.path, field="path")
        except BadRequest as err:
            fail(queue, item, f"This download cannot be written: {err.message}")
            return
        kept_before = _kept(target)
    root.mkdir(parents=True, exist_ok=True)  # the root itself may be a link (a mounted volume)
    item.bytes_done = kept_before

    def report(progress: Progress) -> None:
        item.bytes_done, item.total_bytes = progress.bytes_done, progress.total
        write_with_retry(queue.engine, lambda s: s.execute(update(Download).where(col(Download.id) == item.id)
                         .values(bytes_done=progress.bytes_done, total_bytes=progress.total,
                                 updated_at=datetime.now(UTC))))
        queue.publish(item, progress.speed)

    def verifying(started: bool) -> None:
        if started:
            queue.set_status(item.id, DownloadStatus.VERIFYING, (DownloadStatus.DOWNLOADING,))
        else:
            queue.set_status(item.id, DownloadStatus.DOWNLOADING, (DownloadStatus.VERIFYING,))

    def remember(validator: str | None) -> None:
        """Stored before the first byte of a fresh partial file is written, so a restart resumes
        with the same If-Range."""
        item.validator = validator
        write_with_retry(queue.engine, lambda s: s.execute(update(Download).where(col(Download.id) == item.id)
                         .values(validator=validator)))

    try:
        url, expected, revision = item.url, item.expected_sha256, None
        if item.source == "huggingface":  # signed storage URLs expire: resolve again on every attempt
            token = queue.hf_token() if allowed(item.url, hf_origins(queue.hf_endpoint)) else None
            url, expected, revision = resolve_hub_file(item.url, token, expected)
        elif item.source == "civitai":
            version_id = int(item.url.rstrip("/").rsplit("/", 1)[-1])
            url, expected = resolve_civitai_file(queue.session, queue.civitai_endpoint, version_id,
                                                 queue.tokens(), expected)
        fetched = fetch(queue.session, url, target, root=root, tokens=queue.tokens(), expected_sha256=expected,
                        should_stop=stop.is_set, report=report,
                        free_bytes=lambda: shutil.disk_usage(root).free, margin=queue.margin,
                        stall=queue.stall, verifying=verifying, validator=item.validator,
                        known_total=item.total_bytes if kept_before else None, remember=remember,
                        name_file=lambda response: queue.name_file(item, _server_name(response)))
    except Stopped:
        with Session(queue.engine) as session:
            current = session.get(Download, item.id)
        if current is not None and current.status is DownloadStatus.CANCELLED:
            queue.discard_part(current)
    except DiskFull as err:
        queue.set_status(item.id, DownloadStatus.PAUSED, WORKING, error=str(err))
    except AccessRefused as err:
        fail(queue, item, LOGIN_WANTED if item.source == "civitai" and err.status == 401 else str(err))
    except FatalTransferError as err:
        fail(queue, item, str(err))
    except TransferError as err:
        # An attempt that moved the file forward does not count towards giving up: a 20 GB
        # download through a flaky CDN may need many reconnects, each of them worth it.
        attempts = 0 if item.bytes_done > kept_before else item.attempts
        if attempts >= MAX_ATTEMPTS:
            fail(queue, item, f"Gave up after {attempts} attempts: {err}")
        else:
            delay = min(300.0, 2.0 ** attempts) * random.uniform(0.5, 1.0)
            log.info("download %s: %s; retrying in %.0fs", item.name, err, delay)
            queue.set_status(item.id, DownloadStatus.QUEUED, WORKING, attempts=attempts,
                             retry_at=datetime.now(UTC) + timedelta(seconds=delay), error=str(err))
    except UnsafePath as err:  # before OSError: a link (or a hard link) planted in the models folder
        fail(queue, item, f"Refused to write {item.path}: {err.strerror}{where(queue.root, err)}. Studio never "
                          "follows a symbolic link inside the models folder; remove it, then retry.")
    except OSError as err:  # the disk or the folder, not the network (transfer.py sorts those out)
        fail(queue, item, f"Writing the file failed: {err.strerror or type(err).__name__}")
    else:
        done = queue.set_status(item.id, DownloadStatus.COMPLETED, WORKING, sha256=fetched.sha256,
                                expected_sha256=expected, source_revision=revision, error=None,
                                finished_at=datetime.now(UTC), bytes_done=fetched.size, total_bytes=fetched.size)
        if done is not None:
            if queue.on_completed is not None:
                queue.on_completed(fetched.path, fetched.sha256)
            queue.bus.publish("downloads/finished", {"id": done.id, "name": done.name, "status": "completed"})


def _kept(target: Path) -> int:
    """The bytes a previous attempt kept in ``target``'s partial file (0 for a link or none)."""
    try:
        info = os.lstat(target.with_name(target.name + ".part"))
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def _server_name(response: requests.Response) -> str:
    """The file name the server's first answer gives (``names.py``), or the download fails saying so."""
    found = names.from_disposition(response.headers.get("Content-Disposition")) or names.from_url(response.url)
    if found is None:
        raise FatalTransferError("The server did not say what the file is called (no model file name in its "
                                 "Content-Disposition or its address): download it again with a file name.")
    return found


def where(root: ModelsRoot, err: OSError) -> str:
    """`` (at <path>)`` for the part of the models folder an error names, if it names one."""
    name = os.fsdecode(err.filename) if err.filename else ""
    if not name:
        return ""
    if os.path.isabs(name):
        name = root.relative(Path(name))
        if name.startswith(".."):
            return ""
    return f" (at {name})"


def fail(queue: Queue, item: Download, message: str) -> None:
    """Ends the attempt as failed with ``message``, and says so to everyone watching."""
    failed = queue.set_status(item.id, DownloadStatus.FAILED, WORKING, error=message,
                              finished_at=datetime.now(UTC))
    if failed is not None:
        queue.bus.publish("downloads/finished", {"id": failed.id, "name": failed.name, "status": "failed",
                                                 "error": message})

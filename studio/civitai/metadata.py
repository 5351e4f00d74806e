"""Local model metadata: what CivitAI knows about each model file on disk, looked up by its SHA-256.

The inventory hashes files in the background; this service takes the hashes it has, asks CivitAI
about the ones it has not asked lately in bulk (``POST /api/v1/model-versions/by-hash``, 100 at a
time), and keeps the answer in ``civitai_file_info``: name, version, type, base model, trained words,
a preview picture (a copy on disk) and whether the model has a newer version. Pages only ever read
that table, so a page never waits for CivitAI.

When a hash is asked again: a found file after ``FOUND_AGE`` (names, previews and new versions
change), a file CivitAI does not know after ``NOT_FOUND_AGE`` (so it is not asked at every run);
a run that failed (CivitAI down, rate limited) is simply tried again at the next one. An admin's
"look up again" asks every file now.

It runs in an APScheduler job (``civitai-metadata``): at start, every ``interval_h`` hours, and a
short while after the inventory hashed new files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.civitai.client import CivitaiClient, file_hashes
from studio.civitai.errors import CivitaiError, CivitaiRateLimited
from studio.civitai.models import CivitaiFileInfo
from studio.civitai.previews import PreviewStore
from studio.db import write_with_retry
from studio.events import Event, EventBus

log = logging.getLogger(__name__)

FOUND_AGE = timedelta(days=7)
NOT_FOUND_AGE = timedelta(days=30)
CHUNK = 100
PREVIEW_MAX_BYTES = 16 * 1024 * 1024
JOB_ID = "civitai-metadata"


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 2**53 else None


def _words(value: Any) -> list[str]:
    """Trained words as CivitAI lists them (each may itself be a comma-separated phrase), cleaned."""
    if not isinstance(value, list):
        return []
    words = [w.strip()[:200] for w in value if isinstance(w, str) and w.strip()]
    return list(dict.fromkeys(words))[:50]


class ModelMetadata:
    def __init__(self, engine: Engine, bus: EventBus, client: CivitaiClient, files: Callable[[], list[dict[str, Any]]],
                 previews: PreviewStore, *, interval_h: float = 24.0, preview_nsfw_level: int = 1,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.bus = bus
        self.files = files
        self.previews = previews
        self.interval_h = interval_h
        self.preview_nsfw_level = preview_nsfw_level
        self.now = now
        self._stop = threading.Event()
        # The background copy of the client may wait out a longer 429 than a request would, and a
        # stop ends that wait at once.
        self.client = client.with_options(wait=self._stop.wait, max_retry_after_s=300.0)
        self._running = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.last_run_at: datetime | None = None
        self.last_error: str | None = None
        self.last_summary: dict[str, int] = {}
        self.after_hashing_s = 60.0  # new hashes come in bursts (a folder of LoRAs): one lookup after the last

    # -- reading ---------------------------------------------------------------------------------

    def listing(self) -> dict[str, dict[str, Any]]:
        """SHA-256 → what CivitAI said, for the files on disk now (never asks CivitAI)."""
        on_disk = {f["sha256"] for f in self.files() if f.get("sha256")}
        site = self.client.endpoint
        return {row.sha256: self._public(row, site) for row in self._rows(on_disk).values()}

    def trained_words(self, category: str = "loras") -> dict[str, list[str]]:
        """The words each local file of ``category`` was trained with, by the name ComfyUI lists it under
        (its path inside the category's folder, ``styles/ink.safetensors``): what the Run form offers
        for the LoRA chosen in a slot. Files CivitAI knows no words for are left out."""
        files = {f["sha256"]: f for f in self.files() if f.get("sha256") and f.get("category") == category}
        answer: dict[str, list[str]] = {}
        for sha256, row in self._rows(files).items():
            if row.status != "found" or not row.trained_words:
                continue
            path = str(files[sha256]["path"])
            answer[path.removeprefix(f"{category}/")] = list(row.trained_words)
        return answer

    def status(self) -> dict[str, Any]:
        return {"running": self._running.locked(), "last_run_at": self.last_run_at.isoformat() if self.last_run_at
                else None, "last_error": self.last_error, "last_summary": self.last_summary,
                "site": self.client.endpoint}

    def _public(self, row: CivitaiFileInfo, site: str) -> dict[str, Any]:
        if row.status != "found":
            return {"status": row.status, "checked_at": row.checked_at.isoformat()}
        page = f"{site}/models/{row.model_id}" if row.model_id else None
        return {
            "status": "found", "model_id": row.model_id, "version_id": row.version_id,
            "model_name": row.model_name, "version_name": row.version_name, "model_type": row.model_type,
            "base_model": row.base_model, "trained_words": row.trained_words, "nsfw": row.nsfw,
            "preview": (f"/api/civitai/previews/{row.sha256}.webp?v={int(row.checked_at.timestamp())}"
                        if row.preview_file else None),
            "url": f"{page}?modelVersionId={row.version_id}" if page and row.version_id else page,
            "latest_version_id": row.latest_version_id, "latest_version_name": row.latest_version_name,
            "update_available": row.update_available,
            "update_url": f"{page}?modelVersionId={row.latest_version_id}" if page and row.update_available
            else None,
            "checked_at": row.checked_at.isoformat(),
        }

    def _rows(self, hashes: Iterable[str]) -> dict[str, CivitaiFileInfo]:
        wanted = sorted(hashes)
        found: dict[str, CivitaiFileInfo] = {}
        with Session(self.engine) as session:
            for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
                chunk = wanted[start:start + 500]
                for row in session.exec(select(CivitaiFileInfo).where(col(CivitaiFileInfo.sha256).in_(chunk))):
                    found[row.sha256] = row
        return found

    # -- looking up ------------------------------------------------------------------------------

    def due(self, hashes: Iterable[str], *, force: bool = False) -> list[str]:
        rows = self._rows(hashes)
        now = self.now()
        answer = []
        for sha in sorted(set(hashes)):
            row = rows.get(sha)
            checked = row.checked_at.replace(tzinfo=row.checked_at.tzinfo or UTC) if row else None
            age = now - checked if checked else None
            if force or row is None or age is None or age >= (FOUND_AGE if row.status == "found" else NOT_FOUND_AGE):
                answer.append(sha)
        return answer

    def refresh(self, *, force: bool = False) -> dict[str, int]:
        """Asks CivitAI about every file hash that is due; returns what happened. A run already in
        progress is not doubled: the second caller gets ``{"skipped": 1}``."""
        if not self._running.acquire(blocking=False):
            return {"skipped": 1}
        try:
            summary = self._refresh(force)
            self.last_error = None
        except CivitaiError as err:
            self.last_error = err.message
            summary = {"failed": 1}
            if isinstance(err, CivitaiRateLimited):
                self.wake(err.retry_after_s + 1)
        finally:
            self.last_run_at = self.now()
            self._running.release()
        self.last_summary = summary
        self.bus.publish("models/metadata", {**summary, "error": self.last_error})
        return summary

    def _refresh(self, force: bool) -> dict[str, int]:
        hashes = {f["sha256"] for f in self.files() if f.get("sha256")}
        due = self.due(hashes, force=force)
        summary = {"asked": len(due), "found": 0, "not_found": 0, "previews": 0, "updates": 0}
        models: dict[int, dict[str, Any] | None] = {}
        for start in range(0, len(due), CHUNK):
            if self._stop.is_set():
                break
            chunk = due[start:start + CHUNK]
            # a failure stops the run (asked again next time); an admin's "again" skips the cache
            versions = self.client.versions_by_hashes(chunk, cached=not force)
            rows = self._rows(chunk)
            for sha in chunk:
                version = versions.get(sha)
                if version is None:
                    self._store(CivitaiFileInfo(sha256=sha, status="not_found", checked_at=self.now()))
                    self.previews.remove(sha)
                    summary["not_found"] += 1
                    continue
                row = self._found(sha, version, rows.get(sha), models, cached=not force)
                summary["found"] += 1
                summary["previews"] += int(bool(row.preview_file))
                summary["updates"] += int(row.update_available)
                self._store(row)
        return summary

    def _found(self, sha: str, version: dict[str, Any], before: CivitaiFileInfo | None,
               models: dict[int, dict[str, Any] | None], *, cached: bool) -> CivitaiFileInfo:
        found = version.get("model")
        model: dict[str, Any] = found if isinstance(found, dict) else {}
        model_id = _int(version.get("modelId"))
        row = CivitaiFileInfo(
            sha256=sha, status="found", model_id=model_id, version_id=_int(version.get("id")),
            model_name=_text(model.get("name"), 255), version_name=_text(version.get("name"), 255),
            model_type=_text(model.get("type"), 40), base_model=_text(version.get("baseModel"), 80),
            trained_words=_words(version.get("trainedWords")), nsfw=model.get("nsfw") is True,
            checked_at=self.now())
        self._preview(row, version, before)
        if model_id is not None:
            if model_id not in models:
                try:
                    models[model_id] = self.client.model(model_id, cached=cached)
                except CivitaiError as err:  # the rest is still worth keeping; the newest version is unknown
                    if isinstance(err, CivitaiRateLimited):
                        raise
                    models[model_id] = None
            newest = _newest(models[model_id])
            if newest is not None:
                row.latest_version_id, row.latest_version_name = newest
                row.update_available = row.version_id is not None and newest[0] > row.version_id
        return row

    def _preview(self, row: CivitaiFileInfo, version: dict[str, Any], before: CivitaiFileInfo | None) -> None:
        """The first still image at or below the allowed NSFW level, copied once (again when it changes)."""
        url = next((image["url"] for image in version.get("images") or [] if self._shown(image)), None)
        row.preview_url = _text(url, 2048)
        if before is not None and before.preview_url == row.preview_url and self.previews.path(row.sha256):
            row.preview_file = before.preview_file
            return
        if row.preview_url is None:
            self.previews.remove(row.sha256)
            return
        try:
            row.preview_file = self.previews.save(row.sha256, self.client.fetch_image(
                row.preview_url, max_bytes=PREVIEW_MAX_BYTES))
        except CivitaiError as err:
            log.info("preview of %s not kept: %s", row.sha256[:12], err.message)

    def _shown(self, image: Any) -> bool:
        """A still image (not a video) whose NSFW level (1 PG, 2 PG-13, 4 R, 8 X, 16 XXX) is allowed."""
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            return False
        level = image.get("nsfwLevel", 1)
        return image.get("type", "image") == "image" and isinstance(level, int) and level <= self.preview_nsfw_level

    def _store(self, row: CivitaiFileInfo) -> None:
        write_with_retry(self.engine, lambda session: session.merge(row))

    # -- in the background -----------------------------------------------------------------------

    def start(self, first_run_in_s: float = 30.0) -> None:
        self._stop.clear()
        self._scheduler = BackgroundScheduler(daemon=True, timezone=UTC)
        if self.interval_h > 0:
            self._scheduler.add_job(self.refresh, "interval", hours=self.interval_h, id=JOB_ID, replace_existing=True,
                                    max_instances=1, coalesce=True,
                                    next_run_time=self.now() + timedelta(seconds=first_run_in_s))
        self._scheduler.start()
        self._unsubscribe = self.bus.subscribe(self._on_event)

    def stop(self) -> None:
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def wake(self, in_s: float = 0.0, *, force: bool = False) -> bool:
        """Runs a lookup soon, in the background; False when the background part is not running."""
        scheduler = self._scheduler
        if scheduler is None:
            return False
        scheduler.add_job(self.refresh, "date", id=f"{JOB_ID}-now", replace_existing=True,
                          run_date=self.now() + timedelta(seconds=max(0.0, in_s)), kwargs={"force": force},
                          misfire_grace_time=None)
        return True

    def _on_event(self, event: Event) -> None:
        if event.type == "models/hashed" and self.interval_h > 0:
            self.wake(self.after_hashing_s)


def _newest(model: dict[str, Any] | None) -> tuple[int, str | None] | None:
    """The model's newest published version: the highest id (CivitAI's ids only grow)."""
    if not isinstance(model, dict):
        return None
    versions = [v for v in model.get("modelVersions") or [] if isinstance(v, dict) and _int(v.get("id"))
                and v.get("status", "Published") == "Published"]
    if not versions:
        return None
    newest = max(versions, key=lambda v: v["id"])
    return newest["id"], _text(newest.get("name"), 255)


__all__ = ["ModelMetadata", "file_hashes"]

"""What is on disk: every model file, its SHA-256 (hashed in the background, cached by path, size
and modification time), bytes per category and the largest files.

A 20 GB checkpoint takes a minute to hash, so hashes are never computed in a request: a single
low-priority thread works through the files whose cache entry is missing or stale, and a finished
download records the hash it computed while streaming so that file is never read twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, delete
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from studio.db import write_with_retry
from studio.db.models import utcnow
from studio.events import EventBus
from studio.models.storage import ModelFile, ModelsRoot

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024
RESCAN_EVERY_S = 600.0


class ModelHash(SQLModel, table=True):
    __tablename__ = "model_hash"

    path: str = Field(primary_key=True, max_length=2048)  # absolute: files in extra folders are cached too
    size: int = Field(sa_type=BigInteger)
    mtime_ns: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64, index=True)
    hashed_at: datetime = Field(default_factory=utcnow)


class CachedHash(NamedTuple):
    size: int
    mtime_ns: int
    sha256: str


class ModelInventory:
    def __init__(self, engine: Engine, bus: EventBus, root: ModelsRoot) -> None:
        self.engine = engine
        self.bus = bus
        self.root = root
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: str | None = None
        self._pending = 0

    # -- reading --------------------------------------------------------------------------------

    def files(self) -> list[dict[str, Any]]:
        """The scan joined with the hash cache; a hash shows only while size and mtime still match."""
        scanned = self.root.scan()
        cached = self._cached()
        answer = []
        for item in sorted(scanned, key=lambda f: f.path):
            hit = cached.get(item.absolute)
            fresh = hit is not None and (hit.size, hit.mtime_ns) == (item.size, item.mtime_ns)
            answer.append({"path": item.path, "category": item.category, "size": item.size,
                           "modified": item.mtime_ns / 1e9, "location": item.location,
                           "sha256": hit.sha256 if fresh and hit else None})
        return answer

    def disk_report(self, largest: int = 10) -> dict[str, Any]:
        scanned = self.root.scan()
        categories: dict[str, dict[str, int]] = {}
        for item in scanned:
            entry = categories.setdefault(item.category, {"bytes": 0, "files": 0})
            entry["bytes"] += item.size
            entry["files"] += 1
        return {
            **self.root.disk(),
            "root": str(self.root.root),
            "extra_folders": [{"category": c, "folder": str(f)} for c, f in self.root.extra],
            "models_bytes": sum(item.size for item in scanned),
            "by_category": sorted(({"category": c, **v} for c, v in categories.items()),
                                  key=lambda e: -e["bytes"]),
            "largest": [{"path": f.path, "size": f.size, "location": f.location}
                        for f in sorted(scanned, key=lambda f: -f.size)[:largest]],
            "hashing": {"pending": self._pending, "current": self._current},
        }

    def _cached(self) -> dict[str, CachedHash]:
        """Plain rows, not ORM objects: read on every listing, for every file."""
        with Session(self.engine) as session:
            rows = session.exec(select(ModelHash.path, ModelHash.size, ModelHash.mtime_ns, ModelHash.sha256))
            return {row[0]: CachedHash(row[1], row[2], row[3]) for row in rows}

    # -- hashing --------------------------------------------------------------------------------

    def record(self, absolute: Path, sha256: str) -> None:
        """Remembers a hash computed elsewhere (a download hashes while it streams)."""
        stat = absolute.stat()
        self._store(str(absolute.resolve()), stat.st_size, stat.st_mtime_ns, sha256)

    def _store(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        def work(session: Session) -> None:
            row = session.get(ModelHash, path) or ModelHash(path=path, size=size, mtime_ns=mtime_ns, sha256=sha256)
            row.size, row.mtime_ns, row.sha256, row.hashed_at = size, mtime_ns, sha256.lower(), datetime.now(UTC)
            session.add(row)

        write_with_retry(self.engine, work)

    def stale(self) -> list[ModelFile]:
        cached = self._cached()
        return [f for f in self.root.scan()
                if (hit := cached.get(f.absolute)) is None or (hit.size, hit.mtime_ns) != (f.size, f.mtime_ns)]

    def hash_pending(self) -> int:
        """Hashes every file without a fresh cache entry; returns how many it hashed."""
        todo = self.stale()
        done = 0
        for index, item in enumerate(todo):
            if self._stop.is_set():
                break
            self._pending, self._current = len(todo) - index, item.path
            digest = self._hash(item)
            if digest is not None:
                self._store(item.absolute, item.size, item.mtime_ns, digest)
                done += 1
                self.bus.publish("models/hashed", {"path": item.path, "sha256": digest})
        self._pending, self._current = 0, None
        self._forget_vanished()
        return done

    def _hash(self, item: ModelFile) -> str | None:
        digest = hashlib.sha256()
        try:
            with open(item.absolute, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    if self._stop.is_set():
                        return None
                    digest.update(chunk)
            stat = os.stat(item.absolute)
        except OSError as err:
            log.info("cannot hash %s: %s", item.path, err.strerror)
            return None
        if (stat.st_size, stat.st_mtime_ns) != (item.size, item.mtime_ns):
            return None  # changed while we read it (still being copied in): next round
        return digest.hexdigest()

    def _forget_vanished(self) -> None:
        """Compared in Python: a NOT IN over every file on disk would exceed SQLite's variable limit."""
        gone = set(self._cached()) - {f.absolute for f in self.root.scan()}
        if not gone:
            return

        def work(session: Session) -> None:
            paths = sorted(gone)
            for start in range(0, len(paths), 500):
                session.execute(delete(ModelHash).where(col(ModelHash.path).in_(paths[start:start + 500])))

        write_with_retry(self.engine, work)

    # -- background -----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="model-hasher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        # Linux applies a nice value per thread: hashing yields the CPU to ComfyUI and the web server.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while not self._stop.is_set():
            try:
                self.hash_pending()
            except Exception:  # never let the hasher die: it retries on the next round
                log.exception("hashing models failed")
            self._wake.wait(RESCAN_EVERY_S)
            self._wake.clear()

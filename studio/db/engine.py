"""Engine creation and the write path.

SQLite gets WAL (readers never block the writer), a busy timeout and foreign keys on *every*
connection, because SQLite forgets pragmas per connection. Any other SQLAlchemy URL (PostgreSQL for
several Studio processes) is used as given.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 5000


def create_db_engine(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def transition(
    session: Session, model: Any, key: str, allowed: Sequence[Any], values: dict[str, Any]
) -> Any | None:
    """Moves one row to a new state only if its ``status`` is in ``allowed``; returns it, or None.

    A single conditional UPDATE, so two threads changing the same row cannot overwrite each other
    (a read-modify-write would: SQLite reads outside the write transaction).
    """
    result = session.execute(
        update(model).where(model.id == key, model.status.in_(list(allowed))).values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    session.expire_all()
    return session.get(model, key)


def is_locked_error(err: OperationalError) -> bool:
    text = str(err.orig).lower() if err.orig is not None else str(err).lower()
    return "database is locked" in text or "database is busy" in text or "deadlock" in text


def write_with_retry(
    engine: Engine,
    work: Callable[[Session], T],
    *,
    attempts: int = 8,
    base_delay_s: float = 0.05,
    max_delay_s: float = 2.0,
    on_retry: Callable[[int, OperationalError], None] | None = None,
) -> T:
    """Run ``work`` in its own transaction, retrying with backoff while the database is locked.

    SQLite's busy timeout already waits inside one statement; this covers the cases it cannot
    (a lock held past the timeout, a deadlock between two upgrading readers), so a write is only
    lost after every attempt failed, and then the caller hears about it.
    """
    for attempt in range(1, attempts + 1):
        try:
            with session_scope(engine) as session:
                return work(session)
        except OperationalError as err:
            if not is_locked_error(err) or attempt == attempts:
                raise
            delay = min(max_delay_s, base_delay_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            log.warning("database locked; retrying write in %.2fs (attempt %d/%d)", delay, attempt, attempts)
            if on_retry is not None:
                on_retry(attempt, err)
            time.sleep(delay)
    raise AssertionError("unreachable")

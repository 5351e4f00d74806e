import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from studio.db import create_db_engine, current_revision, upgrade, write_with_retry
from studio.db.metadata import include_name, metadata
from studio.db.models import ActivityEvent


def test_migrated_schema_equals_the_models(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    upgrade(engine)

    with engine.connect() as connection:
        # include_name: the gallery's FTS5 index is a virtual table, not a model (see studio.gallery.fts)
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
        diff = compare_metadata(context, metadata)

    assert diff == []
    assert current_revision(engine) is not None


def test_every_connection_gets_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_a_locked_database_is_retried_and_the_write_is_not_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    engine = create_db_engine(url, busy_timeout_ms=20)
    upgrade(engine)
    blocker = create_db_engine(url).raw_connection()
    blocker.execute("BEGIN EXCLUSIVE")
    retried = threading.Event()
    results: list[int] = []

    def write() -> None:
        def work(session) -> int:  # type: ignore[no-untyped-def]
            session.add(ActivityEvent(type="system/notice", payload={"message": "kept"}))
            return 1

        results.append(write_with_retry(engine, work, attempts=50, on_retry=lambda *_: retried.set()))

    writer = threading.Thread(target=write)
    writer.start()
    assert retried.wait(10), "the writer never hit the lock"
    blocker.rollback()
    blocker.close()
    writer.join(10)

    assert results == [1]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ActivityEvent)).scalar() == 1


def test_a_lock_that_never_clears_surfaces_as_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    engine = create_db_engine(url, busy_timeout_ms=5)
    upgrade(engine)
    blocker = create_db_engine(url).raw_connection()
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OperationalError):
            write_with_retry(
                engine, lambda s: s.add(ActivityEvent(type="system/notice", payload={})), attempts=2,
                base_delay_s=0.001,
            )
    finally:
        blocker.rollback()
        blocker.close()

"""Keeps persistable events in the database for the activity panel, bounded by age and count."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from studio.db import session_scope, write_with_retry
from studio.db.models import ActivityEvent
from studio.events.bus import Event, EventBus, EventSpec

log = logging.getLogger(__name__)

TRIM_EVERY = 50


class ActivityStore:
    """Writes happen in the publisher's thread: persisted events are rare (connections, finished jobs),
    and writing at once means an event the panel showed is never lost to a crash a moment later."""

    def __init__(self, engine: Engine, specs: Mapping[str, EventSpec], *, max_count: int, max_age: timedelta) -> None:
        self.engine = engine
        self.persisted_types = frozenset(name for name, spec in specs.items() if spec.persist)
        self.admin_types = frozenset(name for name, spec in specs.items() if spec.admin_only)
        self.per_user_types = frozenset(name for name, spec in specs.items() if spec.per_user)
        self.max_count = max_count
        self.max_age = max_age
        self._writes = 0
        self._lock = threading.Lock()

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type not in self.persisted_types:
            return
        try:
            self.record(event.type, event.payload, created_at=datetime.fromtimestamp(event.ts, UTC),
                        user_id=event.user_id)
        except SQLAlchemyError:
            log.exception("could not record %s in the activity log", event.type)

    def record(
        self, type_: str, payload: dict[str, Any], *, created_at: datetime | None = None, user_id: int | None = None
    ) -> int:
        def write(session: Session) -> int:
            row = ActivityEvent(type=type_, payload=payload, created_at=created_at or datetime.now(UTC),
                                user_id=user_id)
            session.add(row)
            session.flush()
            assert row.id is not None
            return row.id

        row_id = write_with_retry(self.engine, write)
        with self._lock:
            self._writes += 1
            due = self._writes % TRIM_EVERY == 0
        if due:
            self.trim()
        return row_id

    def forget_user(self, user_id: int) -> int:
        """A deleted user's activity goes with them: a later account that gets the same id must
        never see it."""

        def work(session: Session) -> int:
            removed = session.execute(delete(ActivityEvent).where(col(ActivityEvent.user_id) == user_id))
            return removed.rowcount or 0  # type: ignore[attr-defined]

        return write_with_retry(self.engine, work)

    def trim(self, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - self.max_age

        def work(session: Session) -> int:
            removed = session.execute(delete(ActivityEvent).where(col(ActivityEvent.created_at) < cutoff))
            keep_from = session.execute(
                select(col(ActivityEvent.id)).order_by(col(ActivityEvent.id).desc()).offset(self.max_count).limit(1)
            ).scalar_one_or_none()
            count = removed.rowcount or 0  # type: ignore[attr-defined]
            if keep_from is not None:
                extra = session.execute(delete(ActivityEvent).where(col(ActivityEvent.id) <= keep_from))
                count += extra.rowcount or 0  # type: ignore[attr-defined]
            return count

        return write_with_retry(self.engine, work)

    def recent(
        self,
        *,
        limit: int,
        before_id: int | None = None,
        type_prefix: str | None = None,
        include_admin: bool = True,
        user_id: int | None = None,
    ) -> list[dict]:
        with session_scope(self.engine) as session:
            query = select(ActivityEvent).order_by(col(ActivityEvent.id).desc()).limit(limit)
            if before_id is not None:
                query = query.where(col(ActivityEvent.id) < before_id)
            if not include_admin:
                query = query.where(col(ActivityEvent.type).not_in(self.admin_types))
                query = query.where(or_(col(ActivityEvent.user_id).is_(None), col(ActivityEvent.user_id) == user_id))
                # Someone's job events without an owner (the owner was deleted): admins only.
                query = query.where(or_(col(ActivityEvent.user_id).is_not(None),
                                        col(ActivityEvent.type).not_in(self.per_user_types)))
            if type_prefix:
                query = query.where(col(ActivityEvent.type).startswith(type_prefix))
            rows = session.execute(query).scalars().all()
            return [
                {"id": row.id, "type": row.type, "payload": row.payload, "created_at": row.created_at.isoformat()}
                for row in rows
            ]

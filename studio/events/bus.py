"""A thread-safe publish/subscribe bus.

Publishers never wait for subscribers: each subscriber must return quickly (the WebSocket layer only
appends to a bounded per-connection queue). A subscriber that raises is logged and kept, so one bad
consumer cannot silence the others.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventSpec:
    type: str
    description: str
    persist: bool = False
    coalesce: bool = False
    # Audit events: only admins' sockets and activity lists see them.
    admin_only: bool = False
    # About one person's things (their jobs): only they and admins see them. Published without an
    # owner (a deleted user's job), such an event goes to admins only, never to everyone.
    per_user: bool = False


@dataclass(frozen=True)
class Event:
    type: str
    payload: dict[str, Any]
    seq: int
    ts: float
    # Events with the same non-empty key replace each other in a slow client's queue.
    coalesce_key: str | None = None
    admin_only: bool = False
    # Set for events about one person's things (their jobs): only they and admins receive them.
    user_id: int | None = None

    def to_message(self) -> dict[str, Any]:
        return {"type": self.type, "payload": self.payload, "seq": self.seq, "ts": self.ts}

    @cached_property
    def wire(self) -> str:
        """The JSON text frame, encoded once however many sockets receive it."""
        return json.dumps(self.to_message())


Subscriber = Callable[[Event], None]


@dataclass
class EventBus:
    specs: Mapping[str, EventSpec]
    _subscribers: dict[int, Subscriber] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Register ``subscriber``; the returned function unsubscribes it."""
        with self._lock:
            token = next(self._ids)
            self._subscribers[token] = subscriber

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def publish(
        self, type_: str, payload: dict[str, Any] | None = None, *, key: str | None = None, user_id: int | None = None
    ) -> Event:
        spec = self.specs.get(type_)
        if spec is None:
            raise ValueError(f"unknown event type {type_!r}: add it to studio/events/types.py and docs")
        coalesce_key = f"{type_}:{key or ''}" if spec.coalesce else None
        with self._lock:
            admin_only = spec.admin_only or (spec.per_user and user_id is None)
            event = Event(type_, dict(payload or {}), next(self._seq), time.time(), coalesce_key, admin_only,
                          user_id)
            subscribers = list(self._subscribers.values())
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - one broken subscriber must not stop delivery to the rest
                log.exception("event subscriber failed on %s", type_)
        return event

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

"""Fan-out from the EventBus to browser sockets, one bounded queue per connection.

A slow or dead client only ever fills its own queue: publishers append and return. Latest-wins
events (previews, telemetry) replace their predecessor instead of queueing. When a client's queue of
ordinary events overflows, its backlog is dropped and it gets one ``events/reset``, which tells the
page to refetch its REST snapshots; nothing is lost from the page's point of view.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque

from studio.events.bus import Event, EventBus

RESET_MESSAGE = json.dumps({"type": "events/reset", "payload": {"reason": "client fell behind"}})


class ClientQueue:
    def __init__(self, maxsize: int, *, is_admin: bool = False, user_id: int | None = None) -> None:
        self.maxsize = maxsize
        self.is_admin = is_admin
        self.user_id = user_id
        self._events: deque[str] = deque()
        self._latest: OrderedDict[str, str] = OrderedDict()
        self._reset_pending = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0
        # Set when something about who may see what changed (a user disabled, a role, a token):
        # the socket re-checks its identity before it sends anything more.
        self.stale = False

    def put(self, event: Event) -> None:
        if not self.is_admin and (event.admin_only or (event.user_id is not None and event.user_id != self.user_id)):
            return
        message = event.wire
        with self._cond:
            if self._closed:
                return
            if event.coalesce_key is not None:
                self._latest.pop(event.coalesce_key, None)
                self._latest[event.coalesce_key] = message
            elif len(self._events) >= self.maxsize:
                self.dropped += len(self._events) + 1
                self._events.clear()
                self._reset_pending = True
            else:
                self._events.append(message)
            self._cond.notify()

    def get_batch(self, timeout: float) -> list[str]:
        """Every waiting JSON frame, oldest first (a reset first of all); empty after ``timeout``."""
        with self._cond:
            if not self._has_items() and not self._closed:
                self._cond.wait(timeout)
            batch: list[str] = []
            if self._reset_pending:
                batch.append(RESET_MESSAGE)
                self._reset_pending = False
            batch.extend(self._events)
            batch.extend(self._latest.values())
            self._events.clear()
            self._latest.clear()
            return batch

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def _has_items(self) -> bool:
        return bool(self._events or self._latest or self._reset_pending)


class SocketHub:
    def __init__(self, bus: EventBus, *, queue_size: int) -> None:
        self.queue_size = queue_size
        self._clients: set[ClientQueue] = set()
        self._lock = threading.Lock()
        self.last_seq = 0
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.last_seq = event.seq
        with self._lock:
            clients = list(self._clients)
        if event.type.startswith("auth/") and event.type not in ("auth/login", "auth/login_failed"):
            for client in clients:  # before the event is queued, so no socket sends it unchecked
                client.stale = True
        for client in clients:
            client.put(event)

    def connect(self, *, is_admin: bool = False, user_id: int | None = None) -> ClientQueue:
        client = ClientQueue(self.queue_size, is_admin=is_admin, user_id=user_id)
        with self._lock:
            self._clients.add(client)
        return client

    def disconnect(self, client: ClientQueue) -> None:
        client.close()
        with self._lock:
            self._clients.discard(client)

    def close_all(self) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

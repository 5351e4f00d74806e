"""Following one job without a WebSocket: server-sent events and a long-poll.

Both listen to the event bus (the same events the ``/ws`` socket carries), filtered to one job.
They subscribe *before* reading the job, so nothing that happens in between is missed, and they
send the current state first, so a late subscriber sees where the job is.

Every request here ends well inside RunPod's 100 s proxy limit: a stream closes after
``max_s`` (90 s) with a ``retry:`` hint, and EventSource reconnects on its own; a long-poll waits
60 s at most. Werkzeug's threaded server gives each stream a thread: a keep-alive comment every
15 s means a client that went away is noticed at the next write, and the stream's ``finally``
unsubscribes it.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from studio.auth.service import Identity
from studio.errors import StudioError
from studio.events.bus import Event, EventBus
from studio.jobs.models import FINISHED
from studio.services import Services

FOLLOWED = frozenset({"jobs/update", "jobs/progress", "jobs/preview", "jobs/output", "jobs/finished"})
# Replace each other while waiting to be sent: only the newest matters.
COALESCED = frozenset({"jobs/progress", "jobs/preview"})
MAX_PENDING = 512
MAX_STREAM_S = 90.0
KEEPALIVE_S = 15.0
RETRY_MS = 1000
MAX_WAIT_S = 60
# The id of the last event of a finished job's stream: a reconnect sending it back gets 204, which
# tells EventSource to stop instead of reconnecting for ever.
END_ID = "end"
_FINISHED_VALUES = frozenset(status.value for status in FINISHED)


class JobWatch:
    """The bus events about one job, queued for one follower (bounded; progress coalesced)."""

    def __init__(self, bus: EventBus, job_id: str, types: frozenset[str] = FOLLOWED) -> None:
        self.job_id = job_id
        self.types = types
        self._pending: collections.deque[Event] = collections.deque()
        self._ready = threading.Condition()
        self._unsubscribe = bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        """Runs on the publisher's thread: only appends, never waits."""
        if event.type not in self.types or event.payload.get("id") != self.job_id:
            return
        with self._ready:
            if event.type in COALESCED:
                for index, queued in enumerate(self._pending):
                    if queued.type == event.type:
                        del self._pending[index]
                        break
            if len(self._pending) >= MAX_PENDING:
                self._pending.popleft()
            self._pending.append(event)
            self._ready.notify_all()

    def next(self, timeout: float) -> Event | None:
        with self._ready:
            if not self._pending:
                self._ready.wait(max(0.0, timeout))
            return self._pending.popleft() if self._pending else None

    def close(self) -> None:
        self._unsubscribe()

    def __enter__(self) -> JobWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def current_view(studio: Services, job_id: str, actor: Identity) -> dict[str, Any]:
    """The job as GET /api/jobs/<id> shows it: the stored row plus live progress while it runs."""
    view = studio.jobs.get(job_id, actor=actor)
    live = studio.job_engine.progress(job_id)
    if live is not None:
        view["progress"] = live
    return view


def wait_for_change(studio: Services, job_id: str, actor: Identity, wait_s: float) -> dict[str, Any]:
    """The job once it is finished, its status changed, or ``wait_s`` passed (at most 60 s)."""
    wait_s = max(0.0, min(float(wait_s), MAX_WAIT_S))
    with JobWatch(studio.bus, job_id, frozenset({"jobs/update", "jobs/finished"})) as watch:
        view = current_view(studio, job_id, actor)
        first = view["status"]
        deadline = time.monotonic() + wait_s
        while view["status"] == first and first not in _FINISHED_VALUES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = watch.next(remaining)
            if event is None:
                continue
            if event.payload.get("deleted"):
                break  # the read below answers 404, as for any job that is not there
            view = current_view(studio, job_id, actor)
        return current_view(studio, job_id, actor) if view["status"] == first else view


def frame(event: str, data: Any, event_id: str | None = None) -> str:
    """One server-sent event: JSON data on a single line (JSON text never contains a raw newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _ending(studio: Services, job_id: str, actor: Identity, finished: dict[str, Any]) -> Iterator[str]:
    try:
        outputs = studio.jobs.get(job_id, actor=actor).get("outputs", [])
    except StudioError:
        outputs = []
    yield frame("outputs", {"job_id": job_id, "items": outputs})
    yield frame("finished", {"job_id": job_id, **finished}, END_ID)


def stream(
    studio: Services,
    job_id: str,
    actor: Identity,
    *,
    watch: JobWatch,
    view: dict[str, Any],
    max_s: float = MAX_STREAM_S,
    keepalive_s: float = KEEPALIVE_S,
) -> Iterator[str]:
    """The text of one SSE response. ``watch`` was subscribed before ``view`` was read; this
    generator owns it from here and closes it however it ends (finished, timed out, client gone)."""
    try:
        yield f"retry: {RETRY_MS}\n\n"
        yield frame("state", view)
        if view["status"] in _FINISHED_VALUES:
            yield from _ending(studio, job_id, actor, {"status": view["status"], "error": view.get("error")})
            return
        started = last_write = time.monotonic()
        last_check = started
        status = view["status"]
        while True:
            now = time.monotonic()
            if now - started >= max_s:
                yield ": this stream ends here; reconnect to keep following\n\n"
                return
            if now - last_check >= keepalive_s:
                last_check = now
                if studio.auth.recheck(actor) is None:
                    return  # signed out, disabled or token revoked since the stream began
            event = watch.next(min(keepalive_s - (now - last_write), max_s - (now - started)))
            if event is None:
                if time.monotonic() - last_write >= keepalive_s:
                    last_write = time.monotonic()
                    yield ": keep-alive\n\n"
                continue
            last_write = time.monotonic()
            payload = {key: value for key, value in event.payload.items() if key != "id"}
            event_id = str(event.seq)
            if event.type == "jobs/progress":
                yield frame("progress", {"job_id": job_id, **payload}, event_id)
            elif event.type == "jobs/preview":
                yield frame("preview", {"job_id": job_id, "seq": payload.get("seq"), "node": payload.get("node"),
                                        "url": f"/api/jobs/{job_id}/preview"}, event_id)
            elif event.type == "jobs/output":
                yield frame("output", {"job_id": job_id, "node": payload.get("node")}, event_id)
            elif event.type == "jobs/update" and payload.get("deleted"):
                yield frame("finished", {"job_id": job_id, "status": "deleted", "error": None}, END_ID)
                return
            elif event.type == "jobs/update" and payload.get("status") != status:
                status = str(payload.get("status"))
                yield frame("status", {"job_id": job_id, "status": status,
                                       "status_text": payload.get("status_text")}, event_id)
            elif event.type == "jobs/finished":
                yield from _ending(studio, job_id, actor, {"status": payload.get("status"),
                                                           "error": payload.get("error")})
                return
    finally:
        watch.close()

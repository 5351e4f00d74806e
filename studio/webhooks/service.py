"""Webhooks: each person's targets, and the signed deliveries of events about their own things.

Events come from the bus (jobs, downloads) and from the schedules service. For each enabled
webhook of the event's owner that wants that type, one delivery row is written, with its body, on
the publishing thread (a quick insert; nothing is sent there). A worker thread then hands due rows
to a small pool, which sends each one (``targets.send``: short timeouts, no redirects, the checked
address), logs the attempt and either marks it delivered or due again with exponential backoff;
after ``RETRY_WINDOW`` it gives up. A target that hangs ties up one pool thread for at most the
timeout and delays nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.auth.service import aware
from studio.db import write_with_retry
from studio.downloads.models import Download
from studio.errors import BadRequest, Conflict, NotFound
from studio.events import EventBus
from studio.events.bus import Event
from studio.logs import register_secret
from studio.webhooks import targets
from studio.webhooks.models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery

log = logging.getLogger(__name__)

# What a person may subscribe to; every one is about their own things only.
WEBHOOK_EVENTS: dict[str, str] = {
    "job.completed": "One of your jobs completed.",
    "job.failed": "One of your jobs failed.",
    "job.cancelled": "One of your jobs was cancelled or interrupted.",
    "download.completed": "A download you started completed.",
    "download.failed": "A download you started failed.",
    "schedule.fired": "One of your schedules started its preset.",
    "schedule.failed": "One of your schedules could not start its preset (a missing preset disables it).",
}
TEST_EVENT = "webhook.test"
JOB_TYPES = {"completed": "job.completed", "failed": "job.failed", "cancelled": "job.cancelled",
             "interrupted": "job.cancelled"}
RETRY_WINDOW = timedelta(hours=24)
MAX_WEBHOOKS_PER_USER = 20
LOG_LIMIT = 200

Clock = Callable[[], datetime]


class Owner(Protocol):
    @property
    def user_id(self) -> int: ...


def now_utc() -> datetime:
    return datetime.now(UTC)


def sign(secret: str, timestamp: int, body: str) -> str:
    """The ``v1`` signature: HMAC-SHA256 over ``f"{t}.{body}"`` with the webhook's secret, in hex."""
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def view(hook: Webhook) -> dict[str, Any]:
    """A webhook as answers carry it: never its secret."""
    return {"id": hook.id, "url": hook.url, "events": list(hook.events), "enabled": hook.enabled,
            "created_at": aware(hook.created_at).isoformat(), "updated_at": aware(hook.updated_at).isoformat()}


def delivery_view(row: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {"id": row.id, "event_id": row.event_id, "type": row.event_type, "status": row.status.value,
            "attempts": row.attempts, "last_status_code": row.last_status_code, "last_error": row.last_error,
            "created_at": aware(row.created_at).isoformat(),
            "next_attempt_at": aware(row.next_attempt_at).isoformat() if row.status == DeliveryStatus.PENDING
            else None,
            "finished_at": aware(row.finished_at).isoformat() if row.finished_at else None,
            "log": [{"at": aware(a.at).isoformat(), "status_code": a.status_code, "error": a.error,
                     "duration_ms": a.duration_ms} for a in attempts]}


class WebhookService:
    def __init__(self, engine: Engine, bus: EventBus, *, allowed_hosts: Callable[[], str | None],
                 clock: Clock = now_utc, resolver: targets.Resolver = targets.resolve, workers: int = 4,
                 timeout_s: float = 10.0, retry_base_s: float = 30.0, retry_max_s: float = 3600.0) -> None:
        self.engine = engine
        self.bus = bus
        self.allowed_hosts = allowed_hosts
        self.clock = clock
        self.resolver = resolver
        self.timeout_s = timeout_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # owner id → [(webhook id, events)] of enabled webhooks: the publishing thread reads only this.
        self._wanted: dict[int, list[tuple[int, frozenset[str]]]] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the worker; whatever was pending when Studio stopped is simply due again."""
        with Session(self.engine) as session:
            for secret in session.exec(select(Webhook.secret)):
                register_secret(secret)
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="webhook")
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception:  # noqa: BLE001 - a database hiccup must not end deliveries for good
                log.exception("webhook pump failed; trying again shortly")
            self._wake.wait(1.0)
            self._wake.clear()

    # -- managing webhooks ------------------------------------------------------------------------

    def list_of(self, owner: Owner) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.exec(select(Webhook).where(Webhook.owner_id == owner.user_id).order_by(col(Webhook.id)))
            return [view(row) for row in rows]

    def _owned(self, session: Session, webhook_id: int, owner: Owner) -> Webhook:
        """Someone else's webhook answers exactly like one that does not exist."""
        hook = session.get(Webhook, webhook_id)
        if hook is None or hook.owner_id != owner.user_id:
            raise NotFound("No such webhook.")
        return hook

    def get(self, webhook_id: int, owner: Owner) -> dict[str, Any]:
        with Session(self.engine) as session:
            return view(self._owned(session, webhook_id, owner))

    def _checked(self, url: str, events: list[str]) -> None:
        unknown = [name for name in events if name not in WEBHOOK_EVENTS]
        if unknown or not events:
            raise BadRequest("Choose at least one event from the list." if not unknown else
                             f"Unknown event {unknown[0][:40]!r}.", fields={"events": "unknown or none"})
        try:
            targets.check_target(url, targets.parse_allowed(self.allowed_hosts()), self.resolver)
        except targets.TargetRefused as err:
            raise BadRequest(str(err), fields={"url": str(err)}, code="webhook_target_refused") from err

    def create(self, owner: Owner, *, url: str, events: list[str], enabled: bool = True) -> tuple[dict[str, Any], str]:
        """Returns the webhook and its secret: the only time the secret is ever answered."""
        events = list(dict.fromkeys(events))
        self._checked(url, events)
        secret = "whsec_" + secrets.token_urlsafe(32)
        register_secret(secret)

        def work(session: Session) -> dict[str, Any]:
            count = len(session.exec(select(Webhook.id).where(Webhook.owner_id == owner.user_id)).all())
            if count >= MAX_WEBHOOKS_PER_USER:
                raise Conflict(f"You have {count} webhooks already, the most one person may have.",
                               code="too_many_webhooks")
            hook = Webhook(owner_id=owner.user_id, url=url, events=events, secret=secret, enabled=enabled)
            session.add(hook)
            session.flush()
            return view(hook)

        made = write_with_retry(self.engine, work)
        self._wanted = None
        return made, secret

    def update(self, webhook_id: int, owner: Owner, changes: dict[str, Any]) -> dict[str, Any]:
        with Session(self.engine) as session:
            current = self._owned(session, webhook_id, owner)
            url, events = changes.get("url", current.url), list(dict.fromkeys(changes.get("events", current.events)))
        if "url" in changes or "events" in changes:
            self._checked(url, events)

        def work(session: Session) -> dict[str, Any]:
            hook = self._owned(session, webhook_id, owner)
            hook.url, hook.events = url, events
            if changes.get("enabled") is not None:
                hook.enabled = bool(changes["enabled"])
            hook.updated_at = now_utc()
            session.add(hook)
            session.flush()
            return view(hook)

        changed = write_with_retry(self.engine, work)
        self._wanted = None
        self._wake.set()  # re-enabled: its pending deliveries may go now
        return changed

    def rotate_secret(self, webhook_id: int, owner: Owner) -> str:
        secret = "whsec_" + secrets.token_urlsafe(32)
        register_secret(secret)

        def work(session: Session) -> None:
            hook = self._owned(session, webhook_id, owner)
            hook.secret, hook.updated_at = secret, now_utc()
            session.add(hook)

        write_with_retry(self.engine, work)
        return secret

    def delete(self, webhook_id: int, owner: Owner) -> None:
        def work(session: Session) -> None:
            hook = self._owned(session, webhook_id, owner)
            ids = select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == webhook_id)
            session.execute(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(ids)))
            session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == webhook_id))
            session.delete(hook)

        write_with_retry(self.engine, work)
        self._wanted = None

    def deliveries(self, webhook_id: int, owner: Owner, *, limit: int = 50) -> list[dict[str, Any]]:
        """The newest deliveries of one webhook, each with its attempts (the delivery log)."""
        with Session(self.engine) as session:
            self._owned(session, webhook_id, owner)
            rows = list(session.exec(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                                     .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id))
                                     .limit(max(1, min(limit, LOG_LIMIT)))))
            attempts: dict[str, list[WebhookAttempt]] = {row.id: [] for row in rows}
            if rows:
                found = session.exec(select(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(list(attempts)))
                                     .order_by(col(WebhookAttempt.id)))
                for attempt in found:
                    attempts[attempt.delivery_id].append(attempt)
            return [delivery_view(row, attempts[row.id]) for row in rows]

    def send_test(self, webhook_id: int, owner: Owner) -> dict[str, Any]:
        """Queues a ``webhook.test`` delivery to this webhook alone, through the same path as any."""
        with Session(self.engine) as session:
            hook = self._owned(session, webhook_id, owner)
            if not hook.enabled:
                raise Conflict("This webhook is disabled: enable it to send a test.", code="webhook_disabled")
        row = self._write_deliveries([webhook_id], TEST_EVENT, {"message": "A test delivery from ComfyUI Studio."})[0]
        return delivery_view(row, [])

    # -- events in --------------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> Callable[[], None]:
        return bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == "jobs/finished" and event.user_id is not None:
            kind = JOB_TYPES.get(str(event.payload.get("status")))
            if kind:
                self.emit(kind, event.user_id, dict(event.payload))
        elif event.type == "downloads/finished":
            kind = "download.completed" if event.payload.get("status") == "completed" else "download.failed"
            if not self._anyone_wants(kind):
                return
            with Session(self.engine) as session:
                item = session.get(Download, str(event.payload.get("id")))
            if item is not None and item.requested_by is not None:
                self.emit(kind, item.requested_by, {**event.payload, "path": item.path})

    def _wants(self) -> dict[int, list[tuple[int, frozenset[str]]]]:
        wanted = self._wanted
        if wanted is None:
            wanted = {}
            with Session(self.engine) as session:
                for hook in session.exec(select(Webhook).where(col(Webhook.enabled).is_(True))):
                    wanted.setdefault(hook.owner_id, []).append((int(hook.id or 0), frozenset(hook.events)))
            self._wanted = wanted
        return wanted

    def _anyone_wants(self, kind: str) -> bool:
        return any(kind in events for hooks in self._wants().values() for _, events in hooks)

    def emit(self, kind: str, owner_id: int, data: dict[str, Any]) -> int:
        """Writes one delivery per enabled webhook of ``owner_id`` wanting ``kind``; returns how many."""
        ids = [hook_id for hook_id, events in self._wants().get(owner_id, []) if kind in events]
        if ids:
            self._write_deliveries(ids, kind, data)
        return len(ids)

    def _write_deliveries(self, webhook_ids: list[int], kind: str, data: dict[str, Any]) -> list[WebhookDelivery]:
        now = self.clock()
        event_id = str(uuid.uuid4())
        body = json.dumps({"id": event_id, "type": kind, "created_at": now.isoformat(), "data": data},
                          separators=(",", ":"), default=str)
        rows = [WebhookDelivery(id=str(uuid.uuid4()), webhook_id=hook_id, event_id=event_id, event_type=kind,
                                body=body, next_attempt_at=now, created_at=now) for hook_id in webhook_ids]

        def work(session: Session) -> None:
            session.add_all(rows)

        write_with_retry(self.engine, work)
        self._wake.set()
        return rows

    # -- delivering -------------------------------------------------------------------------------

    def pump(self, now: datetime | None = None) -> int:
        """Hands every due delivery not already being sent to the pool; returns how many."""
        now = now or self.clock()
        pool = self._pool
        if pool is None:
            return 0
        with Session(self.engine) as session:
            due = list(session.exec(
                select(WebhookDelivery.id).join(Webhook, col(Webhook.id) == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.status == DeliveryStatus.PENDING, col(Webhook.enabled).is_(True),
                       col(WebhookDelivery.next_attempt_at) <= now)
                .order_by(col(WebhookDelivery.next_attempt_at)).limit(100)))
        handed = 0
        for delivery_id in due:
            with self._lock:
                if delivery_id in self._inflight:
                    continue
                self._inflight.add(delivery_id)
            try:
                pool.submit(self._attempt, delivery_id)
            except RuntimeError:  # shutting down
                with self._lock:
                    self._inflight.discard(delivery_id)
                break
            handed += 1
        return handed

    def _attempt(self, delivery_id: str) -> None:
        try:
            self.attempt(delivery_id)
        except Exception:  # noqa: BLE001 - logged; the row stays pending and is tried again
            log.exception("webhook delivery %s: the attempt failed unexpectedly", delivery_id)
        finally:
            with self._lock:
                self._inflight.discard(delivery_id)

    def attempt(self, delivery_id: str) -> None:
        """One attempt at one delivery: the address checked again, signed now, sent, logged."""
        with Session(self.engine) as session:
            row = session.get(WebhookDelivery, delivery_id)
            hook = session.get(Webhook, row.webhook_id) if row is not None else None
        if row is None or hook is None or row.status != DeliveryStatus.PENDING:
            return
        try:
            target = targets.check_target(hook.url, targets.parse_allowed(self.allowed_hosts()), self.resolver)
        except targets.TargetRefused as err:
            sent = targets.Sent(None, str(err)[:500], 0)
        else:
            stamp = int(self.clock().timestamp())
            headers = {"Content-Type": "application/json", "User-Agent": "ComfyUI-Studio-Webhooks/1",
                       "X-Studio-Event": row.event_type, "X-Studio-Delivery": row.id,
                       "X-Studio-Signature": f"t={stamp},v1={sign(hook.secret, stamp, row.body)}"}
            sent = targets.send(target, row.body.encode(), headers, timeout_s=self.timeout_s)
        self._record(row, sent)

    def _record(self, row: WebhookDelivery, sent: targets.Sent) -> None:
        now = self.clock()
        tries = row.attempts + 1
        values: dict[str, Any] = {"attempts": tries, "last_status_code": sent.status_code,
                                  "last_error": sent.error}
        if sent.error is None:
            values.update(status=DeliveryStatus.DELIVERED, finished_at=now)
        else:
            delay = min(self.retry_max_s, self.retry_base_s * 2 ** (tries - 1)) * random.uniform(0.8, 1.0)
            retry_at = now + timedelta(seconds=delay)
            if retry_at - aware(row.created_at) > RETRY_WINDOW:
                values.update(status=DeliveryStatus.FAILED, finished_at=now)
            else:
                values["next_attempt_at"] = retry_at

        def work(session: Session) -> None:
            session.add(WebhookAttempt(delivery_id=row.id, at=now, status_code=sent.status_code, error=sent.error,
                                       duration_ms=sent.duration_ms))
            session.execute(update(WebhookDelivery).where(col(WebhookDelivery.id) == row.id,
                                                          col(WebhookDelivery.status) == DeliveryStatus.PENDING)
                            .values(**values))

        write_with_retry(self.engine, work)
        level = logging.INFO if sent.error is None else logging.WARNING
        log.log(level, "webhook %s delivery %s (%s): %s", row.webhook_id, row.id, row.event_type,
                sent.error or f"HTTP {sent.status_code}")

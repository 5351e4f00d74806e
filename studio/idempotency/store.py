"""Idempotency records in the database, and the ``@idempotent`` route decorator.

A client that lost the answer to a POST (a timeout, a proxy cutting the connection) sends it again
with the same ``Idempotency-Key``. The first request to claim a key inserts a row marked "in
progress"; the unique constraint on (user, method, path, key) means a duplicate sent at the same
moment cannot claim it too, so it waits briefly for the first answer instead of queueing a second
job. A success is stored (status and JSON body) for 24 h and replayed with
``Idempotent-Replayed: true``; a failure releases the key, since nothing was done and the client
should be able to retry once it fixed the cause. Rows live in SQLite, so they survive a restart;
expired ones are purged as new keys come in.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flask import Response, jsonify, request
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from studio import jsonio
from studio.db import write_with_retry
from studio.errors import BadRequest, Conflict, Unprocessable
from studio.idempotency.models import IdempotencyRecord

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
TTL = timedelta(hours=24)
# A duplicate waits this long for the first request's answer before being told to retry.
WAIT_FOR_FIRST_S = 10.0
# A claim older than this whose request never finished (Studio was killed mid-request) is abandoned.
ABANDONED_AFTER = timedelta(minutes=5)
PURGE_EVERY_S = 60.0
ATTRIBUTE = "__studio_idempotent__"

F = TypeVar("F", bound=Callable[..., Any])


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def valid_key(key: str) -> bool:
    """1–255 printable ASCII characters: a key ends up in logs and the database, never anything else."""
    return 0 < len(key) <= MAX_KEY_LENGTH and all(" " <= ch <= "~" for ch in key)


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """The request's identity beyond its key. A JSON body is made canonical first, so a client that
    re-serialises the same object (other key order, other spacing) still matches."""
    canonical = body
    if body.strip():
        try:
            canonical = jsonio.dumps(jsonio.loads(body), sort_keys=True, separators=(",", ":")).encode()
        except (jsonio.JSONRefused, ValueError, TypeError):
            canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    status: int | None
    body: Any
    fingerprint: str
    created_at: datetime


class IdempotencyStore:
    """The records of one database; safe to share between request threads."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.now = now
        self._purged_at = 0.0
        self._lock = threading.Lock()

    def claim(self, user_id: int, method: str, path: str, key: str, print_: str) -> Stored | None:
        """Holds the key for this request (None), or returns the record that already holds it."""
        self.purge_now_and_then()
        for _ in range(3):
            now = self.now()

            def insert(session: Session, now: datetime = now) -> None:
                session.add(IdempotencyRecord(user_id=user_id, method=method, path=path, key=key,
                                              fingerprint=print_, created_at=now, expires_at=now + TTL))

            try:
                write_with_retry(self.engine, insert)
                return None
            except IntegrityError:
                pass
            found = self.find(user_id, method, path, key)
            if found is None:
                continue  # released or purged in between: try to claim it again
            expired = _aware(found.created_at) + TTL <= now
            abandoned = found.status is None and _aware(found.created_at) + ABANDONED_AFTER <= now
            if expired or abandoned:
                self.release(user_id, method, path, key)
                continue
            return found
        raise Conflict("This Idempotency-Key is busy; try again.", code="idempotency_key_busy")

    def find(self, user_id: int, method: str, path: str, key: str) -> Stored | None:
        with Session(self.engine) as session:
            row = session.exec(select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.method == method,
                IdempotencyRecord.path == path, IdempotencyRecord.key == key)).first()
            if row is None:
                return None
            return Stored(row.status, row.body, row.fingerprint, row.created_at)

    def complete(self, user_id: int, method: str, path: str, key: str, status: int, body: Any) -> None:
        def work(session: Session) -> None:
            row = session.exec(select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.method == method,
                IdempotencyRecord.path == path, IdempotencyRecord.key == key)).first()
            if row is not None:
                row.status, row.body = status, body
                session.add(row)

        write_with_retry(self.engine, work)

    def release(self, user_id: int, method: str, path: str, key: str) -> None:
        def work(session: Session) -> None:
            session.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.method == method,  # type: ignore[arg-type]
                IdempotencyRecord.path == path, IdempotencyRecord.key == key))  # type: ignore[arg-type]

        write_with_retry(self.engine, work)

    def purge(self) -> int:
        """Deletes every record past its 24 h; returns how many."""
        cutoff = self.now()

        def work(session: Session) -> int:
            result = session.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.expires_at <= cutoff))  # type: ignore[arg-type]
            return int(getattr(result, "rowcount", 0) or 0)

        return write_with_retry(self.engine, work)

    def purge_now_and_then(self) -> None:
        with self._lock:
            due = time.monotonic() - self._purged_at >= PURGE_EVERY_S or self._purged_at == 0.0
            if due:
                self._purged_at = time.monotonic()
        if due:
            removed = self.purge()
            if removed:
                log.info("purged %d expired idempotency records", removed)


STORES: dict[int, IdempotencyStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(engine: Engine) -> IdempotencyStore:
    """One store per database engine (each test app has its own)."""
    with _STORES_LOCK:
        found = STORES.get(id(engine))
        if found is None or found.engine is not engine:
            found = STORES[id(engine)] = IdempotencyStore(engine)
        return found


def _replay(stored: Stored) -> Response:
    response = jsonify(stored.body)
    response.status_code = stored.status or 200
    response.headers[REPLAYED_HEADER] = "true"
    return response


def idempotent(view: F) -> F:
    """Honours ``Idempotency-Key`` on a POST route whose answer is JSON (see the module docstring).

    Without the header the route runs as it always did. The caller must be signed in (the guard
    has run): keys are per user, so one person's key never answers another's request.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not valid_key(key):
            raise BadRequest(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
                             fields={HEADER: "invalid"}, code="bad_idempotency_key")
        from studio.auth.guard import current_identity
        from studio.services import services

        identity = current_identity()
        user_id = identity.user_id
        if user_id is None:
            return view(*args, **kwargs)
        store = store_for(services().engine)
        method, path = request.method, request.path
        print_ = fingerprint(method, path, request.query_string, request.get_data(cache=True))
        stored = store.claim(user_id, method, path, key, print_)
        deadline = time.monotonic() + WAIT_FOR_FIRST_S
        while stored is not None:
            if stored.fingerprint != print_:
                raise Unprocessable(f"This {HEADER} was already used for a different request.",
                                    code="idempotency_key_reused")
            if stored.status is not None:
                return _replay(stored)
            if time.monotonic() >= deadline:
                raise Conflict(f"A request with this {HEADER} is still being handled; retry shortly.",
                               code="idempotency_in_progress", headers={"Retry-After": "1"})
            time.sleep(0.05)  # the first request is still running: look again shortly
            stored = store.find(user_id, method, path, key)
            if stored is None:  # it failed and let go of the key: this one may have it
                stored = store.claim(user_id, method, path, key, print_)
        try:
            response = view(*args, **kwargs)
        except BaseException:
            store.release(user_id, method, path, key)
            raise
        answer = response if isinstance(response, Response) else None
        if answer is None or answer.status_code >= 400 or not answer.is_json:
            store.release(user_id, method, path, key)
            return response
        store.complete(user_id, method, path, key, answer.status_code, answer.get_json())
        return answer

    setattr(wrapper, ATTRIBUTE, True)
    return wrapper  # type: ignore[return-value]


def is_idempotent(view: Callable[..., Any] | None) -> bool:
    return bool(getattr(view, ATTRIBUTE, False))

"""Growing delays after failed sign-ins, kept so that an attacker cannot lock the real user out.

Three records count failures, each with its own free allowance before delays start doubling (up
to 15 minutes):

- the address and account together (``pair:``): the ordinary guesser, 5 free;
- the address alone (``ip:``): one address trying many accounts, 10 free;
- the account alone (``user:``): many addresses against one account, 20 free. This one only ever
  holds back addresses that have themselves failed, so a correct password from an address that
  has not failed always gets through: seven wrong passwords for "admin" from somewhere else never
  keep the admin out. Crossing it raises an alert for the admins (``auth/account_attacked``).

Each failure is one atomic upsert per record (``INSERT … ON CONFLICT DO UPDATE``), so concurrent
failures never collide on the key, and attempts from one address at one account are checked one at
a time, so a burst of them cannot race past the limit. A success clears the records of that
address and account (never the address's count across accounts).
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from studio.auth.models import LoginThrottle
from studio.db import write_with_retry

FREE_FAILURES = 5  # per address and account
FREE_FAILURES_PER_IP = 10
FREE_FAILURES_PER_ACCOUNT = 20
MAX_DELAY_S = 15 * 60


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def delay_after(failures: int, free: int) -> int:
    return 0 if failures <= free else min(MAX_DELAY_S, 2 ** min(failures - free, 20))


@dataclass(frozen=True)
class Attempt:
    """The records one sign-in attempt counts against."""

    ip: str
    username: str

    @property
    def ip_key(self) -> str:
        return f"ip:{self.ip}"[:128]

    @property
    def account_key(self) -> str:
        return f"user:{self.username.strip().lower()}"[:128]

    @property
    def pair_key(self) -> str:
        return f"pair:{self.username.strip().lower()}|{self.ip}"[:128]

    def allowances(self) -> dict[str, int]:
        return {self.pair_key: FREE_FAILURES, self.ip_key: FREE_FAILURES_PER_IP,
                self.account_key: FREE_FAILURES_PER_ACCOUNT}


@dataclass(frozen=True)
class Failure:
    delay_s: int
    account_alert: bool  # this failure crossed the account's allowance: tell the admins


# Attempts from one address at one account are taken one at a time (striped locks), so 24
# concurrent guesses cannot all pass the check before the first failure is written.
_STRIPES = [threading.Lock() for _ in range(64)]


class LoginThrottler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def serialised(attempt: Attempt) -> threading.Lock:
        return _STRIPES[zlib.crc32(attempt.pair_key.encode("utf-8", "replace")) % len(_STRIPES)]

    def retry_after_s(self, attempt: Attempt, now: datetime | None = None) -> int:
        """Seconds until this address may try this account again; 0 when it may now."""
        now = now or datetime.now(UTC)
        with Session(self.engine) as session:
            rows = {row.key: row for row in session.execute(
                select(LoginThrottle).where(col(LoginThrottle.key).in_(list(attempt.allowances())))).scalars()}

        def wait(key: str) -> int:
            row = rows.get(key)
            blocked = _aware(row.blocked_until) if row else None
            return math.ceil((blocked - now).total_seconds()) if blocked and blocked > now else 0

        waits = [wait(attempt.pair_key), wait(attempt.ip_key)]
        address_has_failed = attempt.pair_key in rows or attempt.ip_key in rows
        if address_has_failed:
            waits.append(wait(attempt.account_key))
        return max(waits)

    def failed(self, attempt: Attempt, now: datetime | None = None) -> Failure:
        """Count a failure against every record; returns the longest delay now imposed."""
        now = now or datetime.now(UTC)

        def work(session: Session) -> Failure:
            longest, alert = 0, False
            for key, free in attempt.allowances().items():
                failures = self._increment(session, key, now)
                delay = delay_after(failures, free)
                if delay:
                    session.execute(LoginThrottle.__table__.update()  # type: ignore[attr-defined]
                                    .where(LoginThrottle.__table__.c.key == key)  # type: ignore[attr-defined]
                                    .values(blocked_until=now + timedelta(seconds=delay)))
                if key == attempt.account_key:
                    alert = failures == free + 1
                else:
                    longest = max(longest, delay)
            return Failure(longest, alert)

        return write_with_retry(self.engine, work)

    def _increment(self, session: Session, key: str, now: datetime) -> int:
        table = LoginThrottle.__table__  # type: ignore[attr-defined]
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(table).values(key=key, failures=1, updated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key], set_={"failures": table.c.failures + 1, "updated_at": now})
        session.execute(statement)
        return int(session.execute(select(table.c.failures).where(table.c.key == key)).scalar_one())

    def succeeded(self, attempt: Attempt) -> None:
        """Clears this address's record for this account and the account's own; never the
        address's record across accounts, or signing in to one's own account between guesses
        would reset the limit on guessing others'."""
        def work(session: Session) -> None:
            keys = [attempt.pair_key, attempt.account_key]
            session.execute(delete(LoginThrottle).where(col(LoginThrottle.key).in_(keys)))

        write_with_retry(self.engine, work)

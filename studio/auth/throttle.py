"""Growing delays after failed sign-ins, per IP and per account.

The first few failures cost nothing (people mistype); after that each failure doubles the wait,
up to 15 minutes. A success clears the account's and the IP's record.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from studio.auth.models import LoginThrottle
from studio.db import write_with_retry

FREE_FAILURES = 5
MAX_DELAY_S = 15 * 60


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class LoginThrottler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def retry_after_s(self, keys: list[str], now: datetime | None = None) -> int:
        """Seconds until any of ``keys`` may try again; 0 when none is blocked."""
        now = now or datetime.now(UTC)
        with Session(self.engine) as session:
            waits = []
            for key in keys:
                row = session.get(LoginThrottle, key)
                blocked = _aware(row.blocked_until) if row else None
                if blocked and blocked > now:
                    waits.append(math.ceil((blocked - now).total_seconds()))
        return max(waits, default=0)

    def failed(self, keys: list[str], now: datetime | None = None) -> int:
        """Record a failure; returns the delay now imposed, in seconds."""
        now = now or datetime.now(UTC)

        def work(session: Session) -> int:
            longest = 0
            for key in keys:
                row = session.get(LoginThrottle, key) or LoginThrottle(key=key)
                row.failures += 1
                row.updated_at = now
                if row.failures > FREE_FAILURES:
                    delay = min(MAX_DELAY_S, 2 ** (row.failures - FREE_FAILURES))
                    row.blocked_until = now + timedelta(seconds=delay)
                    longest = max(longest, delay)
                session.add(row)
            return longest

        return write_with_retry(self.engine, work)

    def succeeded(self, keys: list[str]) -> None:
        def work(session: Session) -> None:
            for key in keys:
                row = session.get(LoginThrottle, key)
                if row is not None:
                    session.delete(row)

        write_with_retry(self.engine, work)

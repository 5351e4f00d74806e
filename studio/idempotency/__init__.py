"""``Idempotency-Key`` for POST routes: a retried request gets the first answer, never a second job.

See ``studio.idempotency.store`` for how a key is held, answered and forgotten after 24 h.
"""

from __future__ import annotations

from studio.idempotency.store import (
    HEADER,
    MAX_KEY_LENGTH,
    REPLAYED_HEADER,
    TTL,
    IdempotencyStore,
    idempotent,
    is_idempotent,
)

__all__ = ["HEADER", "MAX_KEY_LENGTH", "REPLAYED_HEADER", "TTL", "IdempotencyStore", "idempotent", "is_idempotent"]

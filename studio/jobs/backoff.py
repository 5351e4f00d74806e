"""When to try ComfyUI again after a POST failed, so no one job and no flaky moment stalls the queue.

Two cases, told apart by what came back. Nothing (refused, reset, timed out): ComfyUI itself is
away, so dispatch as a whole waits base, 2 x base, 4 x base... up to a cap, and starts again at once
when the socket reconnects. A server error (5xx) to one job: that job alone is held back the same
way while the others go on, and after ``max_server_errors`` answers like that it fails with the
reason (ComfyUI answers 500 to a body it cannot parse, so some prompts would get one for ever).
"""

from __future__ import annotations

import time

from studio.comfy import ComfyUnavailable

RETRY_BASE_S = 1.0
RETRY_MAX_S = 60.0
MAX_SERVER_ERRORS = 5


def answered(err: ComfyUnavailable) -> bool:
    """ComfyUI answered (a 5xx) rather than not at all (refused, reset, timed out)."""
    return err.status is not None


class Backoff:
    def __init__(self, *, base_s: float = RETRY_BASE_S, max_s: float = RETRY_MAX_S,
                 max_server_errors: int = MAX_SERVER_ERRORS) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.max_server_errors = max_server_errors
        self._failures = 0
        self._retry_at = 0.0
        # job id → (server errors so far, not before)
        self._held: dict[str, tuple[int, float]] = {}

    def _delay(self, attempt: int) -> float:
        return float(min(self.base_s * 2 ** min(attempt - 1, 30), self.max_s))

    def waiting(self) -> bool:
        """True while ComfyUI was unreachable a moment ago: nothing is sent until the wait is over."""
        return time.monotonic() < self._retry_at

    def held(self) -> list[str]:
        """Jobs that must not be sent yet."""
        now = time.monotonic()
        return [job_id for job_id, (_, not_before) in self._held.items() if not_before > now]

    def unreachable(self) -> None:
        self._failures += 1
        self._retry_at = time.monotonic() + self._delay(self._failures)

    def server_error(self, job_id: str) -> int | None:
        """Counts one more 5xx for ``job_id``: None while it may be tried again, else the count."""
        errors = self._held.get(job_id, (0, 0.0))[0] + 1
        if errors >= self.max_server_errors:
            self._held.pop(job_id, None)
            return errors
        self._held[job_id] = (errors, time.monotonic() + self._delay(errors))
        return None

    def sent(self, job_id: str) -> None:
        self._held.pop(job_id, None)
        self.reset()

    def forget(self, job_id: str) -> None:
        self._held.pop(job_id, None)

    def reset(self) -> None:
        """ComfyUI is back (reconnected, or it took a job): no reason to wait."""
        self._failures, self._retry_at = 0, 0.0

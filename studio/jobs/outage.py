"""ComfyUI stopped answering while jobs were in it: say so within seconds, and fail them with the
reason once a grace period has passed, instead of leaving them "running" for as long as it is away.

The engine thread calls ``tick`` on every step while the socket is down. A dropped socket alone is
not an outage (ComfyUI may still answer, and the socket reconnects in a moment): only when a quick
HTTP check fails too are the jobs in ComfyUI marked "waiting for ComfyUI" (``notes.set_waiting``:
a timeline entry and a ``jobs/update`` event, once). When ``grace_s`` has passed since the socket
went down they fail with "ComfyUI stopped answering at …". When the socket is back, ``over`` ends the
outage and the engine reconciles each job with what ComfyUI really has (completed, failed, or lost);
a job that already failed for the outage is never finished a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from studio.comfy import ComfyClient
from studio.jobs import notes
from studio.jobs.models import IN_FLIGHT, Job, JobStatus
from studio.jobs.service import JobService

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 120.0
# The quick check: ComfyUI answering GET /prompt in this time is not away, whatever its socket does.
PROBE_TIMEOUT_S = 2.0


class Outage:
    def __init__(self, service: JobService, comfy: ComfyClient, grace_s: Callable[[], float],
                 forget: Callable[[str], None]) -> None:
        self.service = service
        self.comfy = comfy
        self.grace_s = grace_s
        # Drops the engine's live state of a job that ends here.
        self.forget = forget
        self.lost_at: datetime | None = None
        self.confirmed = False
        self._marked: set[str] = set()

    def tick(self, jobs: list[Job]) -> None:
        """One look while the socket is down; ``jobs`` are the ones in ComfyUI (submitted, running)."""
        now = datetime.now(UTC)
        if self.lost_at is None:
            self.lost_at = now
        if not jobs:
            return
        if not self.confirmed:
            if self.comfy.reachable(PROBE_TIMEOUT_S):
                return  # only the socket: it reconnects, and the jobs are reconciled then
            self.confirmed = True
            log.warning("ComfyUI stopped answering at %s; %d jobs wait for it", self.lost_at.isoformat(), len(jobs))
        fails_at = self.lost_at + timedelta(seconds=max(0.0, float(self.grace_s())))
        for job in jobs:  # even when the grace is already over: the timeline tells the wait, then the end
            if job.id not in self._marked:
                notes.set_waiting(self.service, job.id, self.lost_at, fails_at)
                self._marked.add(job.id)
        if now < fails_at:
            return
        message = (f"ComfyUI stopped answering at {self.lost_at:%Y-%m-%d %H:%M:%S} UTC and was not back "
                   f"within {float(self.grace_s()):g} s.")
        for job in jobs:
            self.forget(job.id)
            self.service.mark(job.id, JobStatus.FAILED, only_from=IN_FLIGHT, error={
                "message": message, "code": "comfy_stopped_answering", "since": self.lost_at.isoformat()})

    def over(self) -> bool:
        """The socket is back: True when an outage was under way (the caller reconciles)."""
        was = self.lost_at is not None
        self.lost_at, self.confirmed = None, False
        self._marked.clear()
        return was

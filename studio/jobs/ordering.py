"""Where a waiting job stands in the queue: moved to the front, or placed before another job.

Part of ``JobService`` (its base class), apart so the service stays readable; the engine reads the
same order (priority, then position) when it picks the next job, with fairness between owners.
"""

from __future__ import annotations

import builtins
import threading

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.auth.service import Identity
from studio.db import write_with_retry
from studio.errors import Conflict, Forbidden
from studio.jobs.models import Job, JobStatus
from studio.jobs.views import job_view


class QueueOrdering:
    engine: Engine
    wakeup: threading.Event

    def _job(self, job_id: str, actor: Identity) -> Job:
        raise NotImplementedError

    def publish(self, job: Job) -> None:
        raise NotImplementedError

    def move_to_front(self, job_id: str, *, actor: Identity) -> dict:
        """An admin's "to front" goes before everyone's jobs; a user's, before their own."""
        with Session(self.engine) as session:
            order = self._waiting(session, None if actor.is_admin else actor.user_id)
        first = next((job.id for job in order if job.id != job_id), None)
        if first is None:  # nothing else waits: already in front, if it waits at all
            job = self._job(job_id, actor)
            if job.status is not JobStatus.QUEUED:
                raise Conflict("Only a waiting job can be moved.", code="job_not_queued")
            return job_view(job)
        return self.move(job_id, before=first, actor=actor, jump=actor.is_admin)

    def move(self, job_id: str, *, before: str | None, actor: Identity, jump: bool = False) -> dict:
        """Places a waiting job just before another waiting job, or last when ``before`` is None.

        The queue is ordered by (priority, position); the job takes the priority of its new
        neighbour and a position between its neighbours, so nothing else is renumbered. A user
        reorders among their own jobs; only an admin can put a job ahead of someone else's, and an
        admin's ``jump`` also lifts it above the round-robin between users.
        """
        self._job(job_id, actor)

        def work(session: Session) -> Job:
            job = session.get(Job, job_id)
            if job is None or job.status is not JobStatus.QUEUED:
                raise Conflict("Only a waiting job can be moved.", code="job_not_queued")
            order = [j for j in self._waiting(session, None) if j.id != job_id]
            if before is None:
                job.priority = 0
                job.position = max((j.position for j in order), default=0.0) + 1
            else:
                index = next((i for i, j in enumerate(order) if j.id == before), None)
                if index is None:
                    raise Conflict("The job to move before is not waiting.", code="job_not_queued")
                target = order[index]
                if target.owner_id != job.owner_id and not actor.is_admin:
                    raise Forbidden("Only an admin can move a job ahead of someone else's.", code="admin_only")
                previous = order[index - 1] if index > 0 and order[index - 1].priority == target.priority else None
                job.priority = max(target.priority, 1) if jump else target.priority
                job.position = (previous.position + target.position) / 2 if previous else target.position - 1
            session.add(job)
            return job

        job = write_with_retry(self.engine, work)
        self.publish(job)
        self.wakeup.set()
        return job_view(job)

    @staticmethod
    def _waiting(session: Session, owner_id: int | None) -> builtins.list[Job]:
        query = select(Job).where(Job.status == JobStatus.QUEUED)
        if owner_id is not None:
            query = query.where(Job.owner_id == owner_id)
        return builtins.list(session.exec(query.order_by(col(Job.priority).desc(), col(Job.position))))

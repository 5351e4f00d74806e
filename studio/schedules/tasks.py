"""APScheduler's side of schedules: one job per enabled schedule, kept in its SQLAlchemy job store
on Studio's own database, each only waking ``ScheduleService.tick``.

Jobs are stored by reference (``"studio.schedules.tasks:fire"``) with fixed ids
(``schedule-<id>``) and ``replace_existing=True``, so they survive restarts and never pile up. A
stored job must name a module-level function, so the running service is kept here while Studio
runs (one per process: the scheduler exists once). At every start the jobs are rebuilt from the
schedule rows, which are the truth; missed runs are handled by ``tick`` from ``next_due_at``.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import Session, select

from studio.schedules.models import PresetSchedule
from studio.schedules.service import ScheduleService, trigger_of

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
SWEEP_ID = "schedules-sweep"
_running: ScheduleService | None = None


def fire(schedule_id: int) -> None:
    """What every stored job calls: fire whatever is due now (this schedule among them)."""
    service = _running
    if service is None:
        log.warning("schedule %s came due while no schedule service runs", schedule_id)
        return
    service.tick()


def sweep() -> None:
    """Once a minute, in case a job was lost (a store written by another version): tick anyway."""
    if _running is not None:
        _running.tick()


def job_id(schedule_id: int) -> str:
    return f"schedule-{schedule_id}"


class SchedulerJobs:
    def __init__(self, service: ScheduleService) -> None:
        self.service = service
        self.scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        global _running
        _running = self.service
        store = SQLAlchemyJobStore(engine=self.service.engine, tablename=JOB_TABLE)
        self.scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC, daemon=True,
                                             job_defaults={"coalesce": True, "max_instances": 1,
                                                           "misfire_grace_time": None})
        self.scheduler.start(paused=True)
        with Session(self.service.engine) as session:
            rows = list(session.exec(select(PresetSchedule)))
        wanted = {job_id(int(row.id or 0)) for row in rows if row.enabled}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("schedule-") and job.id not in wanted:
                job.remove()
        for row in rows:
            if row.enabled:
                self.sync(row, int(row.id or 0))
        self.scheduler.add_job("studio.schedules.tasks:sweep", "interval", minutes=1, id=SWEEP_ID,
                               replace_existing=True)
        self.service.on_changed.append(self.sync)
        self.scheduler.resume()
        self.service.tick()  # runs due while Studio was down: fired once or skipped, per schedule

    def sync(self, row: PresetSchedule | None, schedule_id: int) -> None:
        """Makes the stored job match the row: added or replaced when enabled, else removed."""
        if self.scheduler is None:
            return
        if row is None:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(job_id(schedule_id))
            return
        self.scheduler.add_job("studio.schedules.tasks:fire", trigger_of(row.cron, row.timezone), args=[schedule_id],
                               id=job_id(schedule_id), replace_existing=True, name=f"preset {row.preset_id}")

    def stop(self) -> None:
        global _running
        if self.sync in self.service.on_changed:
            self.service.on_changed.remove(self.sync)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if _running is self.service:
            _running = None

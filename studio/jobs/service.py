"""What people do with jobs: queue them, look at them, reorder, cancel, retry, delete.

Every change is a database write first and an event second, so a crash between the two loses
nothing a refetch cannot show. The engine (``studio.jobs.engine``) is what talks to ComfyUI.
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio import safepath
from studio.auth.service import Identity
from studio.db import transition, write_with_retry
from studio.errors import BadRequest, Conflict, NotFound, Unprocessable
from studio.events import EventBus
from studio.gallery import history_fts
from studio.jobs.models import FINISHED, IN_FLIGHT, Job, JobOutput, JobStatus
from studio.jobs.notes import add_entry
from studio.jobs.ordering import QueueOrdering
from studio.jobs.views import job_view
from studio.paths import DataDir
from studio.preferences.models import StoredSetting
from studio.workflows import params as workflow_params
from studio.workflows.library import WorkflowLibrary

log = logging.getLogger(__name__)

MAX_BATCH = 100
PAUSED_KEY = "queue_paused"


def _sendable(prompt: dict[str, Any]) -> dict[str, Any]:
    """The prompt, if ComfyUI can be sent it; else a 422 saying what in it cannot travel."""
    problem = workflow_params.prompt_problem(prompt)
    if problem:
        raise Unprocessable(f"This workflow cannot be sent to ComfyUI: {problem}.", code="prompt_unsendable")
    return prompt


class _Ask:
    """``submit``'s default: ask ComfyUI for ``object_info`` itself."""


ASK = _Ask()


def prompt_text_of(workflow_inputs: list[Any], values: dict[str, Any]) -> str:
    """The text people search History for: every text input, joined."""
    return "\n".join(str(values[s.id]) for s in workflow_inputs if s.type == "text" and values.get(s.id))[:20000]


class JobService(QueueOrdering):
    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        library: WorkflowLibrary,
        data_dir: DataDir,
        object_info: Callable[[], dict[str, Any] | None],
        image_exists: Callable[[str], bool],
        lora_pairs: Callable[[str | None], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.library = library
        self.data_dir = data_dir
        self.object_info = object_info
        self.image_exists = image_exists
        self.lora_pairs = lora_pairs
        # Woken whenever there may be work for the dispatcher (a new job, a resume, a cancel).
        self.wakeup = threading.Event()
        # Told the ids of in-flight jobs whose owner was deleted: the engine stops them in ComfyUI.
        self.on_orphaned: builtins.list[Callable[[builtins.list[str]], None]] = []

    # -- queueing -------------------------------------------------------------------------------

    def submit(self, workflow_id: str, raw: dict[str, Any], *, owner: Identity, count: int = 1,
               object_info: dict[str, Any] | None | _Ask = ASK) -> list[dict]:
        """Queues ``count`` jobs; ``object_info`` is what the caller already asked ComfyUI (None: it
        could not be asked), so one request never waits for ComfyUI twice."""
        workflow = self.library.get(workflow_id)
        info = self.object_info() if isinstance(object_info, _Ask) else object_info
        values = workflow_params.validate(workflow, raw, info, self.image_exists, self.lora_pairs)
        count = max(1, min(count, MAX_BATCH))

        def work(session: Session) -> list[Job]:
            last = session.exec(select(func.max(Job.position))).one() or 0.0
            jobs = []
            for index in range(count):
                job_id = str(uuid.uuid4())
                resolved = workflow_params.resolve(workflow.manifest, values)
                job = Job(
                    id=job_id,
                    workflow_id=workflow.id,
                    workflow_name=workflow.manifest.name,
                    owner_id=owner.user_id,
                    params=resolved,
                    prompt=_sendable(workflow_params.build_prompt(workflow, resolved, job_id=job_id)),
                    prompt_text=prompt_text_of(workflow.manifest.inputs, resolved),
                    position=last + 1 + index,
                    timeline=[{"at": datetime.now(UTC).isoformat(), "status": "queued",
                               "note": f"by {owner.username}" + (f", {index + 1} of {count}" if count > 1 else "")}],
                )
                session.add(job)
                jobs.append(job)
            return jobs

        jobs = write_with_retry(self.engine, work)
        for job in jobs:
            self.publish(job)
        self.wakeup.set()
        return [job_view(job) for job in jobs]

    def retry(self, job_id: str, *, actor: Identity) -> dict:
        original = self._job(job_id, actor)
        workflow = self.library.get(original.workflow_id)
        params = original.params if isinstance(original.params, dict) else {}
        problems = workflow_params.value_problems(params)
        if problems:  # a value stored before today's checks, or planted: never sent again as it is
            raise BadRequest("This job's parameters cannot be used again: " + "; ".join(
                f"{key[:80]} {problem}" for key, problem in problems.items()), fields=problems)
        new_id = str(uuid.uuid4())
        prompt = _sendable(workflow_params.build_prompt(workflow, params, job_id=new_id))

        def work(session: Session) -> Job:
            last = session.exec(select(func.max(Job.position))).one() or 0.0
            job = Job(
                id=new_id,
                workflow_id=original.workflow_id,
                workflow_name=original.workflow_name,
                owner_id=actor.user_id,
                params=dict(params),
                prompt=prompt,
                prompt_text=original.prompt_text,
                position=last + 1,
                retry_of=original.id,
                timeline=[{"at": datetime.now(UTC).isoformat(), "status": "queued",
                           "note": f"retry of {original.id} by {actor.username}"}],
            )
            session.add(job)
            return job

        job = write_with_retry(self.engine, work)
        self.publish(job)
        self.wakeup.set()
        return job_view(job)

    # -- reading --------------------------------------------------------------------------------

    def _job(self, job_id: str, actor: Identity) -> Job:
        with Session(self.engine) as session:
            job = session.get(Job, job_id)
        if job is None or (job.owner_id != actor.user_id and not actor.is_admin):
            raise NotFound("No such job.", code="job_not_found")
        return job

    def get(self, job_id: str, *, actor: Identity) -> dict:
        job = self._job(job_id, actor)
        with Session(self.engine) as session:
            outputs = session.exec(select(JobOutput).where(JobOutput.job_id == job_id).order_by(col(JobOutput.id)))
            return job_view(job, outputs=list(outputs), full=True)

    def output(self, job_id: str, output_id: int, *, actor: Identity) -> JobOutput:
        self._job(job_id, actor)
        with Session(self.engine) as session:
            output = session.get(JobOutput, output_id)
        if output is None or output.job_id != job_id:
            raise NotFound("No such output.")
        return output

    def list(
        self,
        *,
        actor: Identity,
        statuses: list[JobStatus] | None = None,
        workflow_id: str | None = None,
        text: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
        starred: bool = False,
    ) -> dict:
        """Newest first; ``before`` is the last id of the previous page (keyset pagination). ``starred``
        filters in the database: three stars among a thousand jobs are all on the first page."""
        query = select(Job)
        if starred:
            query = query.where(select(JobOutput.id).where(JobOutput.job_id == Job.id, col(JobOutput.starred)).exists())
        if not actor.is_admin:
            query = query.where(Job.owner_id == actor.user_id)
        if statuses:
            query = query.where(col(Job.status).in_(statuses))
        if workflow_id:
            query = query.where(Job.workflow_id == workflow_id)
        if text and (matching := history_fts.matching(self.engine, text, col(Job.prompt_text))) is not None:
            query = query.where(matching)  # FTS5, as the gallery searches (studio.gallery.history_fts)
        if since:
            query = query.where(col(Job.created_at) >= since)
        if until:
            query = query.where(col(Job.created_at) < until)
        with Session(self.engine) as session:
            if before:
                anchor = session.get(Job, before)
                if anchor is not None:
                    query = query.where(or_(col(Job.created_at) < anchor.created_at,
                                            (col(Job.created_at) == anchor.created_at) & (col(Job.id) < anchor.id)))
            rows = session.exec(query.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit + 1))
            jobs = list(rows)
            page = jobs[:limit]
            files: dict[str, list[JobOutput]] = {job.id: [] for job in page}
            if page:
                found = session.exec(select(JobOutput).where(col(JobOutput.job_id).in_(list(files)))
                                     .order_by(col(JobOutput.id)))
                for output in found:
                    files[output.job_id].append(output)
        return {"items": [job_view(job, outputs=files[job.id]) for job in page],
                "next": page[-1].id if len(jobs) > limit and page else None}

    def inputs_used(
        self, *, actor: Identity, exists: Callable[[str], bool], limit: int = 50
    ) -> builtins.list[dict]:
        with Session(self.engine) as session:
            rows = session.exec(select(Job.params).where(Job.owner_id == actor.user_id)
                                .order_by(col(Job.created_at).desc()).limit(500))
            names: builtins.list[str] = []
            for params in rows:
                for value in params.values():
                    if isinstance(value, str) and value.startswith("studio/") and value not in names and exists(value):
                        names.append(value)
        return [{"name": name} for name in names[:limit]]

    def queue_state(self, *, actor: Identity) -> dict:
        with Session(self.engine) as session:
            query = select(Job).where(col(Job.status).in_([JobStatus.QUEUED, *IN_FLIGHT]))
            if not actor.is_admin:
                query = query.where(Job.owner_id == actor.user_id)
            jobs = list(session.exec(query.order_by(col(Job.priority).desc(), col(Job.position))))
        running = [job_view(j) for j in jobs if j.status in IN_FLIGHT]
        waiting = [job_view(j) for j in jobs if j.status is JobStatus.QUEUED]
        return {"paused": self.paused, "running": running, "queued": waiting}

    # -- changing -------------------------------------------------------------------------------

    def owned(self, job_id: str, *, actor: Identity) -> Job:
        """The job, if ``actor`` may act on it (its owner or an admin); 404 otherwise."""
        return self._job(job_id, actor)

    def mark(
        self,
        job_id: str,
        status: JobStatus,
        *,
        only_from: tuple[JobStatus, ...] | None = None,
        note: str | None = None,
        also: Callable[[Session], None] | None = None,
        **changes: Any,
    ) -> Job | None:
        """Moves a job to ``status`` unless it already finished (or is not in ``only_from``).

        Returns the job when it changed. The guard matters: ComfyUI's messages about a job can
        arrive before the dispatcher has recorded that it submitted it. ``also`` writes more in the
        same transaction, whether or not the job changes (a finished job's output rows).
        """

        allowed = [s for s in (only_from or tuple(JobStatus)) if s not in FINISHED]
        values = dict(changes, status=status)
        if status in FINISHED:
            values["finished_at"] = datetime.now(UTC)

        def edit(job: Job) -> bool:
            add_entry(job, note)
            return True

        job = self.change(job_id, allowed, edit, values, also=also)
        if job is not None and status in FINISHED:
            self.bus.publish("jobs/finished", {"id": job.id, "status": job.status.value,
                                               "workflow": job.workflow_name, "error": job.error},
                             user_id=job.owner_id)
            self.wakeup.set()
        return job

    def put_back(self, job_id: str, note: str) -> Job | None:
        """Submitted → queued again, when ComfyUI could not take the job just now.

        Whatever the number of tries, the timeline grows by one entry per run of them: the try's
        "submitted" entry is dropped and the last "could not take it" entry is replaced with one
        that counts the tries.
        """

        def edit(job: Job) -> bool:
            timeline = list(job.timeline)
            if timeline and timeline[-1].get("status") == JobStatus.SUBMITTED.value:
                timeline.pop()
            tries = 1
            if timeline and timeline[-1].get("status") == JobStatus.QUEUED.value and timeline[-1].get("tries"):
                tries = int(timeline.pop()["tries"]) + 1
            job.timeline = timeline
            add_entry(job, note if tries == 1 else f"{note} ({tries} tries)", tries=tries)
            return True

        return self.change(job_id, [JobStatus.SUBMITTED], edit,
                           {"status": JobStatus.QUEUED, "submitted_at": None, "comfy_client_id": None})

    def change(self, job_id: str, allowed: Sequence[JobStatus], edit: Callable[[Job], bool],
               values: dict[str, Any] | None = None, *, also: Callable[[Session], None] | None = None) -> Job | None:
        """Changes one job in one write if its status is in ``allowed``, and announces it. The UPDATE
        guarded by the status (``values``, or nothing) comes first (after ``also``'s writes), so SQLite
        holds the write lock while ``edit`` reads and extends the row; ``edit`` returns False to announce
        nothing."""

        def work(session: Session) -> Job | None:
            if also is not None:
                also(session)
            job: Job | None = transition(session, Job, job_id, list(allowed), values or {"id": job_id})
            if job is None or not edit(job):
                return None
            session.add(job)
            return job

        job = write_with_retry(self.engine, work)
        if job is not None:
            self.publish(job)
        return job

    def cancel_pending(self, *, actor: Identity) -> int:
        """Cancels every waiting job (yours, or everyone's for an admin); the running ones go on."""

        def work(session: Session) -> list[Job]:
            query = select(Job).where(Job.status == JobStatus.QUEUED)
            if not actor.is_admin:
                query = query.where(Job.owner_id == actor.user_id)
            jobs = list(session.exec(query))
            for job in jobs:
                job.status = JobStatus.CANCELLED
                job.finished_at = datetime.now(UTC)
                session.add(job)
            return jobs

        jobs = write_with_retry(self.engine, work)
        for job in jobs:
            self.publish(job)
        return len(jobs)

    def owner_deleted(self, user_id: int | None) -> int:
        """After a user is deleted: their waiting jobs are cancelled and their running ones stopped
        in ComfyUI (the engine interrupts them), so nothing of theirs keeps running for nobody.

        Called after the user's row is gone, the jobs' ``owner_id`` may already be NULL (``ON DELETE
        SET NULL``): jobs without an owner are taken too, since nobody can follow them but an admin.
        Their events then go out without an owner, which only admins receive. ``None``: only the jobs
        already without an owner (the engine does this at start). Returns how many jobs were cancelled
        or asked to stop.
        """
        orphan = col(Job.owner_id).is_(None)
        owned = orphan if user_id is None else or_(col(Job.owner_id) == user_id, orphan)
        now = datetime.now(UTC)

        def work(session: Session) -> tuple[builtins.list[Job], builtins.list[str]]:
            waiting = builtins.list(session.exec(select(Job).where(Job.status == JobStatus.QUEUED, owned)))
            for job in waiting:
                job.status, job.finished_at, job.owner_id = JobStatus.CANCELLED, now, None
                add_entry(job, "its owner was deleted", at=now)
                session.add(job)
            running = builtins.list(session.exec(select(Job).where(col(Job.status).in_(IN_FLIGHT), owned)))
            for job in running:
                job.owner_id = None
                session.add(job)
            return waiting, [job.id for job in running]

        waiting, running = write_with_retry(self.engine, work)
        for job in waiting:
            self.publish(job)
            self.bus.publish("jobs/finished", {"id": job.id, "status": job.status.value,
                                               "workflow": job.workflow_name, "error": job.error}, user_id=None)
        if running:
            for listener in self.on_orphaned:
                listener(running)
        self.wakeup.set()
        if waiting or running:
            log.info("user %s deleted: %d waiting jobs cancelled, %d running jobs stopped", user_id, len(waiting),
                     len(running))
        return len(waiting) + len(running)

    def delete(self, job_id: str, *, actor: Identity) -> None:
        job = self._job(job_id, actor)
        if job.status not in FINISHED:
            raise Conflict("Cancel the job before deleting it.", code="job_active")

        def work(session: Session) -> None:
            for output in session.exec(select(JobOutput).where(JobOutput.job_id == job_id)):
                session.delete(output)
            found = session.get(Job, job_id)
            if found is not None:
                session.delete(found)

        write_with_retry(self.engine, work)
        self._remove_outputs(job_id)
        self.bus.publish("jobs/update", {"id": job_id, "deleted": True}, user_id=job.owner_id)

    def _remove_outputs(self, job_id: str) -> None:
        """Deletes ``assets/output/studio/<job id>``, never through a link (a planted one is removed
        itself, and what it points to is left alone)."""
        if safepath.name_problem(job_id) is not None:
            return
        root = self.data_dir.outputs
        try:
            with safepath.parent_fd(root, root / "studio" / job_id) as (fd, leaf):
                if fd is None:  # no openat (Windows): the chain was checked for links already
                    if os.path.isdir(leaf) and not os.path.islink(leaf):
                        shutil.rmtree(leaf)
                    return
                mode = os.stat(leaf, dir_fd=fd, follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    shutil.rmtree(leaf, dir_fd=fd)
                else:
                    os.unlink(leaf, dir_fd=fd)
        except FileNotFoundError:
            return
        except OSError as err:
            log.warning("the files of job %s were not removed: %s", job_id, err)

    # -- pause ----------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        with self.engine.connect() as connection:  # a column, not a row: the engine asks every round
            value = connection.execute(select(StoredSetting.value).where(StoredSetting.key == PAUSED_KEY)).scalar()
        return bool(value)

    def set_paused(self, paused: bool, *, actor: Identity) -> dict:
        def work(session: Session) -> None:
            row = session.get(StoredSetting, PAUSED_KEY) or StoredSetting(key=PAUSED_KEY, value=None)
            row.value, row.updated_by, row.updated_at = paused, actor.username, datetime.now(UTC)
            session.add(row)

        write_with_retry(self.engine, work)
        self.bus.publish("queue/state", {"paused": paused, "actor": actor.username})
        self.wakeup.set()
        return {"paused": paused}

    def publish(self, job: Job) -> None:
        self.bus.publish("jobs/update", job_view(job), user_id=job.owner_id)

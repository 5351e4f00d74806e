"""The part of the job system that talks to ComfyUI.

One thread (``job-engine``) does every state change that needs ComfyUI: it submits queued jobs
while fewer than N are in flight, finalizes finished ones from ``/history``, and reconciles
in-flight jobs with what ComfyUI has (``whereabouts``: the Jobs API where there is one, else
``/queue`` and ``/history``) at start, after every reconnect, and while a job was submitted over an
older socket (whose messages will never reach the new one). At every connect it first asks what the
server can do (``ComfyClient.detect_features``). While the socket is down it watches for ComfyUI
having stopped answering (``outage``). The socket listener only records live progress and previews,
and hands "finished" over to that thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from studio.comfy import ComfyClient, ComfyError, ComfyMessage, ComfyRejected, ComfyStream, ComfyUnavailable
from studio.comfy.messages import PreviewImage, ProgressText
from studio.comfy.stream import ConnectionState, StateChange
from studio.errors import Conflict, ServiceUnavailable
from studio.events import EventBus
from studio.jobs import finish, notes
from studio.jobs.backoff import Backoff, answered
from studio.jobs.inputs import InputStore
from studio.jobs.live import LiveJob, step_count
from studio.jobs.models import FINISHED, IN_FLIGHT, Job, JobStatus
from studio.jobs.outage import DEFAULT_GRACE_S, Outage
from studio.jobs.sending import MissingInput, Sender
from studio.jobs.service import JobService
from studio.jobs.serving import preview_type
from studio.jobs.views import shown
from studio.jobs.whereabouts import locate
from studio.paths import DataDir
from studio.workflows.params import prompt_problem

log = logging.getLogger(__name__)

TICK_S = 1.0
LOST_REASON = "ComfyUI no longer has this job: it restarted, or its queue or history was cleared."


class JobEngine:
    def __init__(
        self,
        service: JobService,
        comfy: ComfyClient,
        stream: ComfyStream,
        bus: EventBus,
        data_dir: DataDir,
        inputs: InputStore,
        *,
        max_in_flight: Callable[[], int],
        requeue_lost: bool = False,
        outage_grace_s: Callable[[], float] = lambda: DEFAULT_GRACE_S,
        before_send: Callable[[Job], bool] | None = None,
    ) -> None:
        self.service = service
        self.comfy = comfy
        self.stream = stream
        self.bus = bus
        self.data_dir = data_dir
        self.inputs = inputs
        self.max_in_flight = max_in_flight
        self.requeue_lost = requeue_lost
        # Asked before each job goes: False holds the queue (the GPU is not free yet; studio/llm/arbiter.py).
        self.before_send = before_send
        self.live: dict[str, LiveJob] = {}
        self.previews: dict[str, tuple[str, bytes, int]] = {}
        self._finished: queue.Queue[str] = queue.Queue()
        self._reconcile = threading.Event()
        self._detect = threading.Event()
        self.outage = Outage(service, comfy, outage_grace_s, self._forget)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._served: dict[int | None, float] = {}
        self._lock = threading.Lock()
        self.backoff = Backoff()
        # In-flight jobs whose owner was deleted: stopped in ComfyUI by the engine thread.
        self._orphans: set[str] = set()
        self.sender = Sender(comfy, inputs)
        service.on_orphaned.append(self._orphaned)
        stream.on_state(self._on_state)
        stream.on_message(self._on_message)
        stream.on_binary(self._on_binary)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.service.owner_deleted(None)  # jobs left without an owner before: nobody's, never run
        self._reconcile.set()
        self._detect.set()
        self._thread = threading.Thread(target=self._loop, name="job-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.service.wakeup.set()
        if self._thread:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.service.wakeup.wait(TICK_S)
            self.service.wakeup.clear()
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the engine must outlive any one bad job or answer
                log.exception("job engine step failed")

    def step(self) -> None:
        """One round of work; the loop calls it every tick and whenever something changed.

        Each part is guarded on its own: a job whose history cannot be read must not keep the
        others from being sent, nor the other way round.
        """
        while True:
            try:
                job_id = self._finished.get_nowait()
            except queue.Empty:
                break
            self._guarded("finalize", self._finalize, job_id)
        if not self.stream.connected:
            self._guarded("watch for ComfyUI not answering", self.outage.tick, self._in_flight())
            return
        if self.outage.over():
            self._reconcile.set()
        if self._detect.is_set():
            self._detect.clear()
            self._guarded("detect ComfyUI's features", self._detect_features)
        self._guarded("stop orphaned jobs", self._stop_orphans)
        flights: list[tuple[str, str | None]] | None = self._flights()
        if self._reconcile.is_set() or self._has_detached(flights or []):
            self._reconcile.clear()
            self._guarded("reconcile", self.reconcile)
            flights = None  # reconciling may have ended some: counted again
        self._dispatch(flights)

    @staticmethod
    def _guarded(what: str, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except Exception:  # noqa: BLE001 - logged; the rest of the step still runs
            log.exception("job engine: %s failed", what)

    # -- socket listeners (stream thread: record and hand over, never block) --------------------

    def _on_state(self, change: StateChange) -> None:
        if change.state is ConnectionState.CONNECTED:
            self.backoff.reset()
            self._detect.set()
            self._reconcile.set()
            self.service.wakeup.set()
        elif change.state is ConnectionState.DISCONNECTED:
            self.service.wakeup.set()  # the outage watch looks at once

    def _detect_features(self) -> None:
        try:
            found = self.comfy.detect_features()
        except ComfyError as err:
            log.info("cannot ask ComfyUI what it supports yet: %s", err)
            self._detect.set()
            return
        log.info("ComfyUI %s: Jobs API %s, object_info schema %s", found.version,
                 "present" if found.jobs_api else "absent", found.object_info_schema)

    def _forget(self, job_id: str) -> None:
        """A job is ending: its live progress, preview and retry count go."""
        self.live.pop(job_id, None)
        self.backoff.forget(job_id)
        with self._lock:
            self.previews.pop(job_id, None)

    def _on_message(self, message: ComfyMessage) -> None:
        job_id = message.prompt_id
        live = self.live.get(job_id or "")
        if live is None or job_id is None:
            return
        kind, data = message.type, message.data
        if kind == "execution_start":
            live.started = time.monotonic()
            self.service.mark(job_id, JobStatus.RUNNING, only_from=(JobStatus.QUEUED, JobStatus.SUBMITTED),
                              started_at=datetime.now(UTC))
        elif kind == "execution_cached":
            live.cached = {str(n) for n in data.get("nodes", [])}
        elif kind == "executing" and data.get("node") is not None:
            if live.node is not None:
                live.done.add(live.node)
            live.node, live.step, live.total = str(data["node"]), 0, 0
            self._publish_progress(live)
        elif kind == "progress":
            if live.step == 0:
                live.step_started = time.monotonic()
            live.step, live.total = step_count(data.get("value")), step_count(data.get("max"))
            self._publish_progress(live)
        elif kind == "executed":
            self.bus.publish("jobs/output", {"id": job_id, "node": shown(data.get("node")),
                                             "output": shown(data.get("output"))}, user_id=live.owner_id)
        elif kind == "executing" and data.get("node") is None:
            self._finished.put(job_id)
            self.service.wakeup.set()

    def _on_binary(self, frame: PreviewImage | ProgressText) -> None:
        if not isinstance(frame, PreviewImage) or frame.prompt_id is None:
            return
        live = self.live.get(frame.prompt_id)
        mime = preview_type(frame.mime_type)  # what the frame says it is counts only for PNG, JPEG, WebP
        if live is None or mime is None:
            return
        with self._lock:
            seq = self.previews.get(frame.prompt_id, ("", b"", 0))[2] + 1
            self.previews[frame.prompt_id] = (mime, frame.image, seq)
        self.bus.publish("jobs/preview", {"id": frame.prompt_id, "seq": seq, "node": frame.node_id},
                         key=frame.prompt_id, user_id=live.owner_id)

    def _publish_progress(self, live: LiveJob) -> None:
        self.bus.publish("jobs/progress", {"id": live.job_id, **live.view()}, key=live.job_id,
                         user_id=live.owner_id)

    def preview(self, job_id: str) -> tuple[str, bytes] | None:
        with self._lock:
            found = self.previews.get(job_id)
        return (found[0], found[1]) if found else None

    def progress(self, job_id: str) -> dict[str, Any] | None:
        live = self.live.get(job_id)
        return live.view() if live else None

    # -- dispatch -------------------------------------------------------------------------------

    def _in_flight(self) -> list[Job]:
        with Session(self.service.engine) as session:
            return list(session.exec(select(Job).where(col(Job.status).in_(IN_FLIGHT))))

    def _flights(self) -> list[tuple[str, str | None]]:
        """(id, clientId) of every job in ComfyUI's hands: all a round needs to know about them (to
        count free slots and to notice jobs sent over an older socket), in one light read."""
        query = select(Job.id, Job.comfy_client_id).where(col(Job.status).in_(IN_FLIGHT))
        with self.service.engine.connect() as connection:  # columns, not rows: a third of an ORM read
            return [(job_id, client_id) for job_id, client_id in connection.execute(query)]

    def _next_job(self) -> Job | None:
        """Jobs moved to the front first; otherwise the owner served longest ago, oldest job first.

        Jobs held back after a server error are skipped until their time comes.
        """
        held = self.backoff.held()
        # A job without an owner (theirs was deleted) is never sent: owner_deleted cancels it.
        waiting = and_(col(Job.status) == JobStatus.QUEUED, col(Job.owner_id).is_not(None))
        if held:
            waiting = and_(waiting, col(Job.id).not_in(held))
        # One light read tells who waits and whether anything was moved to the front; a second fetches
        # the job. Nothing waiting (the usual answer once the queue drained): that one read only. The
        # two are apart: a job cancelled in between makes the first read stale, and it is read again.
        for _ in range(3):
            with self.service.engine.connect() as connection:
                owners = [(owner, priority) for owner, priority in connection.execute(
                    select(Job.owner_id, func.max(Job.priority)).where(waiting).group_by(col(Job.owner_id)))]
            if not owners:
                return None
            if any((priority or 0) > 0 for _, priority in owners):
                chosen = select(Job).where(waiting, Job.priority > 0)
            else:
                owner = min((o for o, _ in owners), key=lambda o: self._served.get(o, 0.0))
                chosen = select(Job).where(waiting, Job.owner_id == owner)
            with Session(self.service.engine) as session:
                job = session.exec(chosen.order_by(col(Job.position)).limit(1)).first()
            if job is not None:
                return job
        return None  # the queue keeps changing under us: the change woke the engine, it looks again

    def _dispatch(self, flights: list[tuple[str, str | None]] | None = None) -> None:
        """Sends waiting jobs while ComfyUI has free slots; ``flights``: this round's read of the jobs
        in ComfyUI's hands, if it is still true."""
        if self.backoff.waiting():
            return
        slots = self.max_in_flight() - len(self._flights() if flights is None else flights)
        asked_paused = False
        while slots > 0 and not self._stop.is_set():
            job = self._next_job()
            if job is None:
                return
            if not asked_paused:  # asked once there is something to send: an empty queue costs one read
                asked_paused = True
                if self.service.paused:
                    return
            if self.before_send is not None and not self.before_send(job):
                return  # whoever holds the GPU back wakes the engine when it is free
            try:
                sent = self._submit(job)
            except Exception as err:  # noqa: BLE001 - one job Studio cannot send must not stop the queue
                log.exception("job %s could not be sent to ComfyUI", job.id)
                self._fail(job.id, f"Studio could not send this job to ComfyUI ({type(err).__name__}).")
                continue
            if sent is None:
                return
            slots -= int(sent)

    def _fail(self, job_id: str, message: str, **error: Any) -> None:
        self.live.pop(job_id, None)
        self.backoff.forget(job_id)
        self.service.mark(job_id, JobStatus.FAILED, only_from=(JobStatus.QUEUED, JobStatus.SUBMITTED),
                          error={"message": message, **error})

    def _submit(self, job: Job) -> bool | None:
        """Sends one job to ComfyUI: True when it went, False when it did not but the next job may
        (this one failed, or is held back), None when ComfyUI cannot take anything now.

        The job is marked submitted *before* the POST, so ComfyUI's first messages about it always
        find it submitted; if the POST then fails for want of ComfyUI, it goes back to the queue.
        Only a ComfyUI that cannot be reached, or answers with a server error, puts a job back: a
        prompt that cannot be sent, or that ComfyUI refuses, fails that job with the reason.
        """
        client_id = self.stream.client_id
        if client_id is None:
            return None
        problem = prompt_problem(job.prompt)
        if problem:
            self._fail(job.id, f"This job cannot be sent to ComfyUI: {problem}.")
            return False
        marked = self.service.mark(job.id, JobStatus.SUBMITTED, only_from=(JobStatus.QUEUED,),
                                   submitted_at=datetime.now(UTC), comfy_client_id=client_id)
        if marked is None:
            return False  # cancelled meanwhile: look for the next one
        self.live[job.id] = LiveJob(job.id, job.owner_id, job.prompt)
        try:
            accepted = self.sender.queue(job, client_id)
        except (AttributeError, TypeError, KeyError) as err:  # an answer of a shape nobody expected
            log.warning("job %s: ComfyUI's answer could not be read", job.id, exc_info=True)
            self._fail(job.id, f"ComfyUI refused the job with an answer Studio cannot read ({type(err).__name__}).")
            return False
        except ComfyUnavailable as err:
            self.live.pop(job.id, None)
            return self._put_back(job, err)
        except ComfyRejected as err:
            problems = err.problems()
            self._fail(job.id, "ComfyUI refused the workflow: " + "; ".join(
                f"{p['class_type'] or 'node'} {p['node_id'] or ''}"
                f"{' input ' + p['input'] if p['input'] else ''}: {p['message']}" for p in problems),
                problems=problems)
            return False
        except (ComfyError, MissingInput) as err:
            self._fail(job.id, f"ComfyUI did not take the job: {err}")
            return False
        self.backoff.sent(job.id)
        self._served[job.owner_id] = time.monotonic()
        found = notes.dropped_outputs_text(job.prompt, accepted.node_errors)
        if found is not None:
            text, dropped = found
            log.warning("job %s: %s", job.id, text)
            notes.add_warning(self.service, job.id, text, dropped=dropped)
        return True

    def _put_back(self, job: Job, err: ComfyUnavailable) -> bool | None:
        if not answered(err):  # nothing answered: wait for ComfyUI, not for this job
            self.backoff.unreachable()
            self.service.put_back(job.id, f"ComfyUI could not take it: {err}")
            return None
        errors = self.backoff.server_error(job.id)
        if errors is not None:
            self._fail(job.id, f"ComfyUI answered this job with a server error {errors} times ({err}); "
                               "its log says why.")
            return False
        self.service.put_back(job.id, f"ComfyUI answered with a server error: {err}")
        return False

    # -- finishing ------------------------------------------------------------------------------

    def _finalize(self, job_id: str) -> None:
        try:
            entry = self.comfy.history(job_id)
        except ComfyError as err:
            log.info("cannot read history of %s yet: %s", job_id, err)
            self._reconcile.set()
            return
        if entry is None:
            self._reconcile.set()
            return
        self._finish_safely(job_id, entry)

    def _finish_safely(self, job_id: str, entry: dict[str, Any]) -> None:
        """Finishes the job from its history entry; an entry Studio cannot make sense of fails this
        job with the reason, instead of keeping it in flight (and its slot taken) for ever."""
        try:
            self._finish_from_history(job_id, entry)
        except Exception as err:  # noqa: BLE001 - whatever ComfyUI sent, the job must end
            log.exception("job %s: ComfyUI's history entry could not be read", job_id)
            self.live.pop(job_id, None)
            self.service.mark(job_id, JobStatus.FAILED, error={
                "message": f"ComfyUI's record of this job could not be read ({type(err).__name__})."})

    def _finish_from_history(self, job_id: str, entry: dict[str, Any]) -> None:
        rows, skipped = finish.keep_outputs(self.comfy, self.data_dir.outputs, job_id, entry)
        # Live state goes first: once the job reads as finished it has no preview or progress left.
        self._forget(job_id)
        dropped: list[str] = []
        if not rows and not skipped:  # only a job that kept nothing can have ended so by ComfyUI's dropping
            with Session(self.service.engine) as session:
                job = session.get(Job, job_id)
            dropped = notes.dropped_outputs(job) if job else []
        status, changes = finish.verdict(entry, len(rows), skipped, dropped)
        # The output rows and the final status in one transaction: a job never reads as finished
        # without its files, nor has files recorded while it still reads as running.
        self.service.mark(job_id, status, also=lambda session: finish.add_rows(session, job_id, rows), **changes)
        log.info("job %s finished (%d outputs)", job_id, len(rows))

    # -- reconciling ----------------------------------------------------------------------------

    def _has_detached(self, flights: list[tuple[str, str | None]]) -> bool:
        current = self.stream.client_id
        return any(client_id != current for _, client_id in flights)

    def reconcile(self) -> None:
        """Brings every in-flight job in line with what ComfyUI really has."""
        jobs = self._in_flight()
        if not jobs:
            return
        try:
            found = locate(self.comfy, [job.id for job in jobs])
        except ComfyError as err:
            log.info("cannot reconcile yet: %s", err)
            self._reconcile.set()
            return
        for job in jobs:
            where = found[job.id]
            if where.state == "finished":
                self._finish_safely(job.id, where.entry)
                continue
            if where.state in ("running", "waiting"):
                self.live.setdefault(job.id, LiveJob(job.id, job.owner_id, job.prompt))
                notes.clear_waiting(self.service, job.id, "ComfyUI answers again and still has the job")
                if where.state == "running":
                    self.service.mark(job.id, JobStatus.RUNNING, only_from=(JobStatus.SUBMITTED,),
                                      started_at=datetime.now(UTC))
            elif self.requeue_lost:
                self._forget(job.id)
                self.service.mark(job.id, JobStatus.QUEUED, only_from=IN_FLIGHT, comfy_client_id=None,
                                  note=LOST_REASON + " It was queued again.")
            else:
                self._forget(job.id)
                self.service.mark(job.id, JobStatus.FAILED, error={"message": LOST_REASON})

    # -- cancelling -----------------------------------------------------------------------------

    def _orphaned(self, job_ids: list[str]) -> None:
        """Their owner was deleted (any thread): from now on their live events have no owner, which
        only admins receive, and the engine thread stops them in ComfyUI."""
        with self._lock:
            self._orphans.update(job_ids)
        for job_id in job_ids:
            live = self.live.get(job_id)
            if live is not None:
                live.owner_id = None
        self.service.wakeup.set()

    def _stop_orphans(self) -> None:
        with self._lock:
            waiting = sorted(self._orphans)
        for job_id in waiting:
            with Session(self.service.engine) as session:
                job = session.get(Job, job_id)
            if job is not None and job.status not in FINISHED:
                try:
                    self.cancel(job)
                except ServiceUnavailable:
                    log.info("job %s of a deleted user: ComfyUI cannot be asked to stop it yet", job_id)
                    continue  # tried again on the next tick
                except Conflict:
                    pass
            with self._lock:
                self._orphans.discard(job_id)

    def cancel(self, job: Job) -> None:
        """Waiting here: cancelled. Waiting in ComfyUI: removed there. Running: interrupted."""
        if job.status in FINISHED:
            raise Conflict(f"The job is already {job.status.value}.", code="job_finished")
        if job.status is JobStatus.QUEUED and self.service.mark(
                job.id, JobStatus.CANCELLED, only_from=(JobStatus.QUEUED,)) is not None:
            return
        try:
            if job.status in (JobStatus.QUEUED, JobStatus.SUBMITTED):
                self.comfy.delete_from_queue([job.id])
                state = self.comfy.get_queue()
                if state.position(job.id) is None:
                    if self.comfy.history(job.id) is None:
                        self.live.pop(job.id, None)
                        self.service.mark(job.id, JobStatus.CANCELLED, only_from=IN_FLIGHT)
                    return
            self.comfy.interrupt(job.id)
        except ComfyUnavailable as err:
            raise ServiceUnavailable(f"ComfyUI cannot be reached to stop the job: {err}",
                                     code="comfy_unavailable") from err

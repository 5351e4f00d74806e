"""What a job must say that is not a change of status: outputs ComfyUI dropped, and that ComfyUI
stopped answering while the job was in it.

Both are written to the job's row (so every list, page and export shows them, and a Studio restart
keeps them) and announced with a ``jobs/update`` event carrying the whole job, like a status change.
A warning is a timeline entry with a ``warning`` key (``views.job_view`` lists them as ``warnings``);
waiting for ComfyUI is ``progress.waiting_for_comfy = {since, fails_at}`` plus a timeline entry, and
ends with the job's next state or when ComfyUI answers again.

Each write goes through ``JobService.change``: an UPDATE of the row itself, guarded by its status,
so SQLite holds the write lock while the timeline is read and extended; a status change from the
socket thread at the same moment cannot make one of the two entries disappear, and a job that
finished meanwhile is left as it is. ``add_entry`` is the one shape of a timeline entry, for these
notes and for the service's status changes alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from studio.comfy import ComfyRejected
from studio.jobs.models import IN_FLIGHT, Job, JobStatus

if TYPE_CHECKING:
    from studio.jobs.service import JobService

WAITING_KEY = "waiting_for_comfy"
MAX_LISTED = 5
# A job's timeline keeps its first entry, its warnings and the newest entries: nothing can make it
# grow without end, and what went wrong early on is never pushed out by later retries.
MAX_TIMELINE = 50
MAX_WARNINGS = 10


def bounded(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(timeline) <= MAX_TIMELINE:
        return timeline
    warnings = [i for i, entry in enumerate(timeline[1:], start=1) if entry.get("warning")][:MAX_WARNINGS]
    newest = [i for i in range(1, len(timeline)) if i not in warnings][-(MAX_TIMELINE - 1 - len(warnings)):]
    return [timeline[i] for i in [0, *sorted({*warnings, *newest})]]


def add_entry(job: Job, note: str | None = None, *, at: datetime | None = None, **extra: Any) -> None:
    """One entry on the job's timeline: when (now, unless ``at``), the status the job has now, the note
    (left out when there is none) and anything ``extra``; the timeline stays ``bounded``."""
    entry: dict[str, Any] = {"at": (at or datetime.now(UTC)).isoformat(), "status": job.status.value}
    if note:
        entry["note"] = note
    job.timeline = bounded([*job.timeline, {**entry, **extra}])


def dropped_outputs_text(prompt: dict[str, Any], node_errors: dict[str, Any]) -> tuple[str, list[str]] | None:
    """A person's sentence for the outputs a ``/prompt`` answer of 200 lists in ``node_errors``, and
    their node ids; None when it lists none. ComfyUI runs the other outputs and says nothing more."""
    rejected = ComfyRejected({}, node_errors)
    dropped: list[str] = []
    for node in rejected.node_errors.values():
        for output_id in node.get("dependent_outputs") or []:
            if str(output_id) not in dropped:
                dropped.append(str(output_id)[:64])
    if not rejected.node_errors:
        return None
    dropped = dropped or sorted(rejected.node_errors)[:MAX_LISTED]
    names = [f"{(prompt.get(node_id) or {}).get('class_type') or 'node'} {node_id}" for node_id in dropped]
    reasons = [f"{p['class_type'] or 'node'} {p['node_id']}{' ' + p['input'] if p['input'] else ''}: {p['message']}"
               for p in rejected.problems()]
    plural = "s" if len(dropped) != 1 else ""
    text = (f"ComfyUI dropped {len(dropped)} output{plural} that failed its validation and ran the rest: "
            + ", ".join(names[:MAX_LISTED]) + ("…" if len(names) > MAX_LISTED else "")
            + " (" + "; ".join(reasons[:MAX_LISTED]) + ("; …" if len(reasons) > MAX_LISTED else "") + ").")
    return text[:2000], dropped


def add_warning(service: JobService, job_id: str, text: str, **extra: Any) -> Job | None:
    """A warning on a job that has not finished; a finished one is never changed."""

    def edit(job: Job) -> bool:
        add_entry(job, text, warning=text, **extra)
        return True

    return service.change(job_id, (JobStatus.QUEUED, *IN_FLIGHT), edit)


def dropped_outputs(job: Job) -> list[str]:
    """The node ids of outputs ComfyUI dropped when it accepted this job."""
    found: list[str] = []
    for entry in job.timeline:
        if isinstance(entry, dict) and isinstance(entry.get("dropped"), list):
            found += [str(node_id) for node_id in entry["dropped"]]
    return found


def set_waiting(service: JobService, job_id: str, since: datetime, fails_at: datetime) -> Job | None:
    def edit(job: Job) -> bool:
        if isinstance(job.progress, dict) and job.progress.get(WAITING_KEY):
            return False  # already waiting: no second entry, no second event
        job.progress = {**(job.progress or {}), WAITING_KEY: {"since": since.isoformat(),
                                                              "fails_at": fails_at.isoformat()}}
        add_entry(job, f"waiting for ComfyUI: it stopped answering at {since:%H:%M:%S} UTC; the job fails at "
                       f"{fails_at:%H:%M:%S} UTC unless ComfyUI is back by then")
        return True

    return service.change(job_id, IN_FLIGHT, edit)


def clear_waiting(service: JobService, job_id: str, note: str) -> Job | None:
    def edit(job: Job) -> bool:
        if not (isinstance(job.progress, dict) and job.progress.get(WAITING_KEY)):
            return False
        job.progress = {k: v for k, v in job.progress.items() if k != WAITING_KEY}
        add_entry(job, note)
        return True

    return service.change(job_id, IN_FLIGHT, edit)


def waiting_of(job: Job) -> dict[str, Any] | None:
    """``{since, fails_at}`` while the job waits for ComfyUI to answer again, else None."""
    if job.status not in IN_FLIGHT or not isinstance(job.progress, dict):
        return None
    found = job.progress.get(WAITING_KEY)
    return found if isinstance(found, dict) else None

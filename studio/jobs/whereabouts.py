"""Where ComfyUI has a job Studio handed it: running, waiting, finished (with its record), or gone.

With the Jobs API (newer ComfyUI; ``ComfyClient.server.jobs_api``) one ``GET /api/jobs/<id>`` per
job says all of it, an interrupted job included, and carries the outputs and execution status in
the shape of a ``/history`` entry. Without it (0.3.x) ``/queue`` once and ``/history/<id>`` per job
say the same. Either way the answer is a ``Found`` the engine acts on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from studio.comfy import ComfyClient, ComfyProtocolError

State = Literal["running", "waiting", "finished", "gone"]


@dataclass(frozen=True)
class Found:
    state: State
    # For a finished job: a /history-shaped entry ({"outputs", "status"}) to finish it from.
    entry: dict[str, Any] = field(default_factory=dict)


def locate(comfy: ComfyClient, job_ids: list[str]) -> dict[str, Found]:
    """Every job's whereabouts; raises ``ComfyError`` when ComfyUI cannot be asked."""
    if comfy.server is not None and comfy.server.jobs_api:
        return {job_id: _from_jobs_api(comfy.job(job_id)) for job_id in job_ids}
    queue = comfy.get_queue()
    running = {item.prompt_id for item in queue.running}
    pending = {item.prompt_id for item in queue.pending}
    found: dict[str, Found] = {}
    for job_id in job_ids:
        entry = comfy.history(job_id)
        if entry is not None:
            found[job_id] = Found("finished", entry)
        elif job_id in running:
            found[job_id] = Found("running")
        elif job_id in pending:
            found[job_id] = Found("waiting")
        else:
            found[job_id] = Found("gone")
    return found


def _from_jobs_api(job: dict[str, Any] | None) -> Found:
    if job is None:
        return Found("gone")
    status = job.get("status")
    if status == "in_progress":
        return Found("running")
    if status == "pending":
        return Found("waiting")
    if status not in ("completed", "failed", "cancelled"):
        raise ComfyProtocolError(f"ComfyUI's Jobs API names an unknown job status {str(status)[:40]!r}")
    execution = job.get("execution_status")
    record: dict[str, Any] = dict(execution) if isinstance(execution, dict) else {}
    if not isinstance(record.get("status_str"), str):  # a summary without the execution record
        record["status_str"] = "success" if status == "completed" else "error"
    if status == "cancelled" and not _events(record) & {"execution_interrupted"}:
        record["messages"] = [*_listed(record), ["execution_interrupted", {}]]
    elif status == "failed" and not _events(record) & {"execution_error", "execution_interrupted"}:
        error = job.get("execution_error")
        record["messages"] = [*_listed(record), ["execution_error", error if isinstance(error, dict) else {}]]
    outputs = job.get("outputs")
    return Found("finished", {"outputs": outputs if isinstance(outputs, dict) else {}, "status": record})


def _listed(record: dict[str, Any]) -> list[Any]:
    messages = record.get("messages")
    return list(messages) if isinstance(messages, list) else []


def _events(record: dict[str, Any]) -> set[str]:
    return {str(m[0]) for m in _listed(record) if isinstance(m, list | tuple) and m}

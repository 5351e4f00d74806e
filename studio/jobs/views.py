"""How a job looks in API answers and events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from studio.jobs.models import Job, JobOutput


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def output_view(output: JobOutput) -> dict[str, Any]:
    return {
        "id": output.id,
        "node_id": output.node_id,
        "kind": output.kind,
        "filename": output.filename,
        "url": f"/api/jobs/{output.job_id}/outputs/{output.id}",
        "size": output.size,
        "width": output.width,
        "height": output.height,
    }


def job_view(job: Job, *, outputs: list[JobOutput] | None = None, full: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "workflow_id": job.workflow_id,
        "workflow_name": job.workflow_name,
        "owner_id": job.owner_id,
        "status": job.status.value,
        "params": job.params,
        "progress": job.progress,
        "error": job.error,
        "retry_of": job.retry_of,
        "timeline": job.timeline,
        "created_at": _iso(job.created_at),
        "submitted_at": _iso(job.submitted_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }
    if full:
        view["prompt"] = job.prompt
    if outputs is not None:
        view["outputs"] = [output_view(output) for output in outputs]
    return view

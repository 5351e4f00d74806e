"""How a job looks in API answers and events.

Stored values are shown as JSON every client can read, whatever an older Studio or a hand edit left
in the row: NaN and infinity become null, a lone surrogate U+FFFD, an integer no JSON reader keeps
exactly becomes text, and anything nested past any real workflow's depth is cut short.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from studio.jobs.advice import attach as attach_advice
from studio.jobs.models import Job, JobOutput
from studio.jobs.notes import waiting_of
from studio.jobs.serving import clean_name
from studio.jobs.summary import annotate

MAX_SHOWN_INT = 2**64
MAX_SHOWN_DEPTH = 32
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value


def shown(value: Any, depth: int = 0) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_SHOWN_INT else f"({len(str(abs(value)))}-digit number)"
    if depth >= MAX_SHOWN_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {_text(str(key)): shown(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [shown(item, depth + 1) for item in value]
    return str(value)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def output_view(output: JobOutput) -> dict[str, Any]:
    return {
        "id": output.id,
        "node_id": output.node_id,
        "kind": output.kind,
        "filename": clean_name(_text(output.filename)),  # an older row's bidi override is not shown
        "url": f"/api/jobs/{output.job_id}/outputs/{output.id}",
        "size": output.size,
        "width": output.width,
        "height": output.height,
    }


def job_view(job: Job, *, outputs: list[JobOutput] | None = None, full: bool = False) -> dict[str, Any]:
    waiting = waiting_of(job)
    view: dict[str, Any] = {
        "id": job.id,
        "workflow_id": job.workflow_id,
        "workflow_name": job.workflow_name,
        "owner_id": job.owner_id,
        "status": job.status.value,
        "params": shown(job.params),
        "progress": shown(job.progress),
        "error": shown(job.error),
        "retry_of": job.retry_of,
        "timeline": shown(job.timeline),
        # What ComfyUI left out when it accepted the job (outputs that failed its validation).
        "warnings": shown([e["warning"] for e in job.timeline if isinstance(e, dict) and e.get("warning")]),
        # Set while the job is in ComfyUI and ComfyUI does not answer: when that began, when it fails.
        "waiting_for_comfy": shown(waiting),
        "status_text": "waiting for ComfyUI" if waiting else None,
        "created_at": _iso(job.created_at),
        "submitted_at": _iso(job.submitted_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }
    if full:
        view["prompt"] = shown(job.prompt)
    if outputs is not None:
        view["outputs"] = [output_view(output) for output in outputs]
    attach_advice(view)  # what a failure or a stop means, in words, with what to do about it
    annotate(view, job, outputs, shown)  # summary; thumbs and starred of each output
    return view

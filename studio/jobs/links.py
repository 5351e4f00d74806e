"""The answer to every "run" request: ``202 Accepted`` with the queued jobs and where to follow them.

Running is asynchronous: a run route only queues, so it answers at once, and each job comes with
links to poll it (``job``), stream it (``events``, server-sent events) or long-poll it (``wait``).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from pydantic import BaseModel, Field

WAIT_S = 30


class JobLinks(BaseModel):
    """Where to follow one queued job, relative to Studio's address."""

    job_id: str
    job: str = Field(description="GET: the job as it is now")
    events: str = Field(description="GET: server-sent events until it finishes")
    wait: str = Field(description="GET: long-poll, answers when its status changes (at most 60 s)")


class Accepted(BaseModel):
    """The body of a 202 from a run route."""

    items: list[dict[str, Any]] = Field(description="the queued jobs, as GET /api/jobs/<id> shows them")
    links: list[JobLinks]


def links_for(job_id: str) -> dict[str, str]:
    base = f"/api/jobs/{job_id}"
    return {"job_id": job_id, "job": base, "events": f"{base}/events", "wait": f"{base}?wait={WAIT_S}"}


def accepted(jobs: list[dict[str, Any]]) -> Response:
    """``202 {"items": jobs, "links": [...]}`` with ``Location`` naming the first job."""
    response = jsonify({"items": jobs, "links": [links_for(str(job["id"])) for job in jobs]})
    response.status_code = 202
    if jobs:
        response.headers["Location"] = f"/api/jobs/{jobs[0]['id']}"
    return response

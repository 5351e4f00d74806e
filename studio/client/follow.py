"""Following a job to its end: Studio's server-sent events, else its long-poll.

``GET /api/jobs/<id>/events`` sends the job's state, then status, progress and finished events; a
stream ends within 90 s (RunPod's proxy cuts requests at 100 s) and is simply opened again. A Studio
without the route (an older one) is followed with ``GET /api/jobs/<id>?wait=30`` instead, which
answers once the status changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from studio.client.http import JOB_FINISHED, ApiError, StudioClient, segment

Update = Callable[[dict[str, Any]], None]
READ_TIMEOUT_S = 45.0  # Studio writes a keep-alive every 15 s; three missed means it is gone


def sse_events(lines: Iterator[bytes | str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from an event stream's lines, as the HTML spec reads them: comments
    skipped, ``data`` lines joined, an event sent at each blank line."""
    event, data = "message", list[str]()
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


def _route_missing(err: ApiError) -> bool:
    """No events route on this Studio (as opposed to no such job, ``job_not_found``)."""
    return err.status in (404, 405) and err.code in ("not_found", "method_not_allowed")


def follow_job(client: StudioClient, job_id: str, *, on_update: Update | None = None,
               timeout_s: float | None = None) -> dict[str, Any]:
    """The job once finished (with its outputs), calling ``on_update`` with each state on the way;
    the last state seen when ``timeout_s`` runs out first."""
    deadline = time.monotonic() + timeout_s if timeout_s is not None else None
    notify = on_update or (lambda _job: None)
    while True:
        read_timeout = READ_TIMEOUT_S
        if deadline is not None:  # a quiet stream must not hold the caller past its deadline
            read_timeout = min(read_timeout, max(0.5, deadline - time.monotonic()))
        try:
            response = client.request("GET", f"/api/jobs/{segment(job_id)}/events", stream=True,
                                      timeout_s=read_timeout)
        except ApiError as err:
            if not _route_missing(err):
                raise
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return client.wait_job(job_id, on_update=on_update, timeout_s=left)
        if response.status_code == 204:  # nothing more to send: the job is over
            response.close()
            return _final(client, job_id, notify)
        finished = _read_stream(response, notify, deadline)
        if finished or (deadline is not None and time.monotonic() >= deadline):
            return _final(client, job_id, notify)
        # the stream ended on its own (90 s) or broke: open it again


def _read_stream(response: requests.Response, notify: Update, deadline: float | None) -> bool:
    """Reads one stream; True once the job finished."""
    view: dict[str, Any] = {}
    # Chunked (Studio's own server, most proxies): each chunk as it arrives. Otherwise byte by byte,
    # since reading a block would wait for the block to fill.
    chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
    with response:
        try:
            for event, data in sse_events(response.iter_lines(chunk_size=None if chunked else 1)):
                try:
                    payload = json.loads(data)
                except ValueError:
                    continue
                if not isinstance(payload, dict):
                    continue
                if event == "finished":
                    return True
                if event == "state":
                    view = payload
                elif event == "status":
                    view = {**view, "status": payload.get("status"), "status_text": payload.get("status_text")}
                elif event == "progress":
                    view = {**view, "progress": {k: v for k, v in payload.items() if k != "job_id"}}
                else:
                    continue
                if view.get("status") in JOB_FINISHED:
                    return True
                notify(view)
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        except requests.RequestException:
            return False  # a broken stream: the caller opens another (or learns Studio is gone)
    return False


def _final(client: StudioClient, job_id: str, notify: Update) -> dict[str, Any]:
    job = client.get_job(job_id)
    notify(job)
    return job

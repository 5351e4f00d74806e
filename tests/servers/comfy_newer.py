"""What newer ComfyUI releases add, for the test server's ``version="0.38.1"`` switch.

Everything here follows ``comfyui-protocol.md`` §11, which was written from ComfyUI's source (up to
0.38.1: ``server.py``, ``comfy_execution/jobs.py``), not from a running server: those details are
*inferred from the docs*, not captured. Where §11 leaves a detail open, the comment says what was
chosen. 0.3.64 (the captured release) has none of it: ``/api/jobs`` is 404 there, any ``prompt_id``
is taken, NodeInfo has no ``is_input_list``.

- ``prompt_id`` must be a canonical lowercase UUID, else 400 ``invalid_prompt_id``;
- queue items' ``extra_data`` gain ``create_time`` (ms) and ``comfy_usage_source`` (a header);
- the Jobs API: ``GET /api/jobs``, ``GET /api/jobs/{id}``, ``POST /api/jobs/{id}/cancel``,
  ``POST /api/jobs/cancel`` (also at ``/api/api/jobs…``, from the ``/api`` mirroring);
- ``/system_stats``: ``os`` is ``sys.platform``, ``comfy_package_versions``, ``deploy_environment``,
  path values in ``argv`` redacted to ``*``;
- NodeInfo gains ``is_input_list``, ``has_intermediate_output``, ``dev_only``, ``search_aliases``,
  ``essentials_category``;
- ``/view`` answers carry ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.servers.comfy_exec import PromptWorker

CAPTURED = "0.3.64"
NEWER = "0.38.1"
VERSIONS = (CAPTURED, NEWER)

CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
# Added to every NodeInfo. §11 names the keys; the values are what the 0.33.0 capture
# (tests/fixtures/comfyui-templates/0.33.0/object_info.json.gz) shows for an ordinary node.
NEWER_NODE_INFO = {"is_input_list": False, "has_intermediate_output": False, "dev_only": False,
                   "search_aliases": [], "essentials_category": None}


def newer(version: str) -> bool:
    return version != CAPTURED


def prompt_id_problem(body: dict[str, Any]) -> dict[str, Any] | None:
    """The 400 body for a ``prompt_id`` that is not a canonical UUID (None or absent is fine).

    §11 gives ``type``, ``message`` and an empty ``node_errors``; ``details`` and ``extra_info`` are
    inferred from ComfyUI's other whole-prompt errors (§4), which always carry both.
    """
    prompt_id = body.get("prompt_id")
    if prompt_id is None or (isinstance(prompt_id, str) and CANONICAL_UUID.match(prompt_id)):
        return None
    return {"error": {"type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                      "details": f"Invalid prompt_id: {prompt_id}", "extra_info": {}}, "node_errors": {}}


def stamp(extra_data: dict[str, Any], headers: Mapping[str, str]) -> None:
    """What a newer release adds to a queued prompt's ``extra_data``: when it was queued (ms) and, where
    the client sent the ``Comfy-Usage-Source`` header, its value."""
    extra_data["create_time"] = int(time.time() * 1000)
    if "Comfy-Usage-Source" in headers:
        extra_data["comfy_usage_source"] = headers["Comfy-Usage-Source"]


def system_stats(system: dict[str, Any]) -> dict[str, Any]:
    argv = ["*" if "/" in str(arg) else arg for arg in system.get("argv", [])]
    return {**system, "os": "linux", "comfyui_version": NEWER, "argv": argv,
            "comfy_package_versions": {"comfyui-frontend-package": "1.53.6",
                                       "comfyui-workflow-templates": "0.11.73",
                                       "comfyui-embedded-docs": "0.5.12"},
            "deploy_environment": "local"}


def _prune(job: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in job.items() if value is not None}


def _from_queue(item: tuple[Any, ...], status: str) -> dict[str, Any]:
    number, prompt_id, _prompt, extra_data, _outputs = item[:5]
    return _prune({"id": prompt_id, "status": status, "priority": number,
                   "create_time": extra_data.get("create_time"), "outputs_count": 0,
                   "workflow_id": ((extra_data.get("extra_pnginfo") or {}).get("workflow") or {}).get("id")})


def _history_status(entry: dict[str, Any]) -> str:
    status = entry.get("status") or {}
    if status.get("status_str") != "error":
        return "completed"
    events = [m[0] for m in status.get("messages", []) if isinstance(m, list) and m]
    return "cancelled" if "execution_interrupted" in events else "failed"


def _from_history(prompt_id: str, entry: dict[str, Any], *, full: bool) -> dict[str, Any]:
    number, _, prompt, extra_data, _outputs = entry["prompt"][:5]
    status = entry.get("status") or {}
    start = end = error = None
    for message in status.get("messages", []):
        if not (isinstance(message, list) and len(message) >= 2 and isinstance(message[1], dict)):
            continue
        if message[0] == "execution_start":
            start = message[1].get("timestamp")
        elif message[0] in ("execution_success", "execution_error", "execution_interrupted"):
            end = message[1].get("timestamp")
            if message[0] == "execution_error":
                error = message[1]
    outputs = entry.get("outputs") or {}
    count = sum(len(items) for ui in outputs.values() if isinstance(ui, dict)
                for key, items in ui.items() if key != "animated" and isinstance(items, list))
    job = _prune({"id": prompt_id, "status": _history_status(entry), "priority": number,
                  "create_time": extra_data.get("create_time"), "execution_start_time": start,
                  "execution_end_time": end, "execution_error": error, "outputs_count": count,
                  "workflow_id": ((extra_data.get("extra_pnginfo") or {}).get("workflow") or {}).get("id")})
    if full:
        job.update(outputs=outputs, execution_status=status, workflow={"prompt": prompt, "extra_data": extra_data})
    return job


class JobsApi:
    """The Jobs API routes; mixed into the test server, whose ``worker`` holds queue and history."""

    worker: PromptWorker | None

    def _all_jobs(self) -> list[dict[str, Any]]:
        worker = self.worker
        assert worker is not None
        with worker.lock:
            running = list(worker.running.values())
            pending = sorted(worker.pending, key=lambda item: item[0])
            history = list(worker.history.items())
        return ([_from_queue(item, "in_progress") for item in running]
                + [_from_queue(item, "pending") for item in pending]
                + [_from_history(prompt_id, entry, full=False) for prompt_id, entry in history])

    async def jobs_list(self, request: web.Request) -> web.Response:
        wanted = [s for s in request.query.get("status", "").split(",") if s] or list(JOB_STATUSES)
        if any(status not in JOB_STATUSES for status in wanted):
            # §11 lists the values, not the answer to others: a 400 naming them is assumed.
            return web.json_response({"error": f"Invalid status filter. Allowed: {', '.join(JOB_STATUSES)}"},
                                     status=400)
        jobs = [job for job in self._all_jobs() if job["status"] in wanted]
        workflow_id = request.query.get("workflow_id")
        if workflow_id:
            jobs = [job for job in jobs if job.get("workflow_id") == workflow_id]
        key = "execution_duration" if request.query.get("sort_by") == "execution_duration" else "create_time"
        jobs.sort(key=lambda job: (job.get("execution_end_time", 0) - job.get("execution_start_time", 0))
                  if key == "execution_duration" else job.get("create_time", 0),
                  reverse=request.query.get("sort_order", "desc") == "desc")
        try:
            offset = max(0, int(request.query.get("offset", "0")))
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError:
            return web.json_response({"error": "limit and offset must be integers"}, status=400)
        total = len(jobs)
        page = jobs[offset:offset + limit] if limit is not None else jobs[offset:]
        return web.json_response({"jobs": page, "pagination": {
            "offset": offset, "limit": limit, "total": total, "has_more": offset + len(page) < total}})

    async def jobs_get(self, request: web.Request) -> web.Response:
        worker = self.worker
        assert worker is not None
        prompt_id = request.match_info["job_id"]
        with worker.lock:
            entry = worker.history.get(prompt_id)
            running = worker.running.get(prompt_id)
            pending = next((item for item in worker.pending if item[1] == prompt_id), None)
        if entry is not None:
            return web.json_response(_from_history(prompt_id, entry, full=True))
        if running is not None:
            return web.json_response(_from_queue(running, "in_progress"))
        if pending is not None:
            return web.json_response(_from_queue(pending, "pending"))
        return web.json_response({"error": "Job not found"}, status=404)

    def _cancel(self, prompt_id: str) -> bool:
        worker = self.worker
        assert worker is not None
        with worker.lock:
            is_running = prompt_id in worker.running
            is_pending = any(item[1] == prompt_id for item in worker.pending)
        if is_pending:
            worker.delete([prompt_id])
        if is_running:
            worker.interrupt(prompt_id)
        return is_running or is_pending

    async def jobs_cancel(self, request: web.Request) -> web.Response:
        return web.json_response({"cancelled": self._cancel(request.match_info["job_id"])})

    async def jobs_cancel_many(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) and CANONICAL_UUID.match(i) for i in ids):
            # §11: "400 for malformed ids"; the body's wording is assumed.
            return web.json_response({"error": "job_ids must be a list of valid UUIDs"}, status=400)
        return web.json_response({"cancelled": [job_id for job_id in ids if self._cancel(job_id)]})

    def add_jobs_routes(self, app: web.Application) -> None:
        table = [("GET", "/jobs", self.jobs_list), ("GET", "/jobs/{job_id}", self.jobs_get),
                 ("POST", "/jobs/cancel", self.jobs_cancel_many), ("POST", "/jobs/{job_id}/cancel", self.jobs_cancel)]
        for method, path, handler in table:
            app.router.add_route(method, "/api" + path, handler)
            app.router.add_route(method, "/api/api" + path, handler)

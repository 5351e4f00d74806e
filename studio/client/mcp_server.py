"""``studio mcp``: Studio as tools and resources for an AI agent (the official MCP SDK, stdio).

It reaches Studio by URL and token over HTTP through the same :class:`StudioClient` as the command
line, so an agent can do exactly what that token may do and nothing more. stdout belongs to the
protocol: every log line goes to stderr.

Tools: ``list_presets``, ``run_preset``, ``job_status``, ``list_workflows``, ``workflow_inputs``,
``run_workflow``. Resources: ``studio://jobs/{job_id}/outputs`` (a finished job's outputs, JSON)
and ``studio://jobs/{job_id}/outputs/{name}`` (one output's bytes, typed from its extension).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import sys
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.types import BlobResourceContents, ReadResourceResult

from studio import __version__
from studio.client.follow import follow_job
from studio.client.http import JOB_FINISHED, ApiError, ClientError, StudioClient

log = logging.getLogger(__name__)

RUN_WAIT_S = 240.0  # a tool call that waits answers by then, finished or not (then: job_status)
STATUS_WAIT_S = 50.0

INSTRUCTIONS = """ComfyUI Studio runs image and video workflows on a GPU. Start with list_presets (saved ways to
run a workflow, some with questions to answer) or list_workflows; run one with run_preset or run_workflow
(wait=true follows it to the end). A finished job's outputs are resources: read studio://jobs/<id>/outputs
for the list, then each output's uri for its bytes."""


def output_uri(job_id: str, filename: str) -> str:
    return f"studio://jobs/{quote(job_id, safe='')}/outputs/{quote(filename, safe='')}"


def job_brief(job: dict[str, Any]) -> dict[str, Any]:
    """What an agent needs of a job: where it is, why it failed, and its outputs as resource URIs."""
    error = job.get("error") if isinstance(job.get("error"), dict) else None
    brief: dict[str, Any] = {
        "job_id": job.get("id"),
        "status": job.get("status"),
        "finished": job.get("status") in JOB_FINISHED,
        "workflow_id": job.get("workflow_id"),
        "progress": job.get("progress"),
        "error": error.get("message") if error else None,
        "created_at": job.get("created_at"),
        "finished_at": job.get("finished_at"),
    }
    if job.get("summary"):
        brief["summary"] = job["summary"]
    if "outputs" in job:
        brief["outputs"] = [
            {"name": o.get("filename"), "kind": o.get("kind"), "width": o.get("width"), "height": o.get("height"),
             "size": o.get("size"), "mime_type": mimetypes.guess_type(str(o.get("filename") or ""))[0],
             "uri": output_uri(str(job.get("id")), str(o.get("filename") or ""))}
            for o in job.get("outputs") or []
        ]
    return brief


def _tool_error(err: ClientError) -> ToolError:
    if isinstance(err, ApiError):
        return ToolError(err.describe())
    return ToolError(err.message)


class StudioTools:
    """The tools' bodies, over one client; each turns a client failure into a ToolError the agent reads."""

    def __init__(self, client: StudioClient) -> None:
        self.client = client

    def _follow(self, jobs: list[dict[str, Any]], wait: bool) -> dict[str, Any]:
        if not wait:
            return {"jobs": [job_brief(job) for job in jobs]}
        followed = []
        for job in jobs:
            done = follow_job(self.client, str(job["id"]), timeout_s=RUN_WAIT_S)
            followed.append(job_brief(done))
        answer: dict[str, Any] = {"jobs": followed}
        if not all(item["finished"] for item in followed):
            answer["note"] = "Still running: call job_status with wait=true to follow it."
        return answer

    def list_presets(self) -> dict[str, Any]:
        answer = self.client.list_presets()
        keep = ("id", "name", "description", "workflow_id", "placeholders", "overridable", "seed_policy", "runnable",
                "problems")
        return {"presets": [{k: p.get(k) for k in keep} for p in answer.get("items", [])],
                "unreadable": answer.get("problems") or []}

    def run_preset(self, preset_id: str, answers: dict[str, str] | None, overrides: dict[str, Any] | None,
                   seed: int | None, count: int, wait: bool) -> dict[str, Any]:
        jobs = self.client.run_preset(preset_id, answers=answers, overrides=overrides, seed=seed, count=count)
        return self._follow(jobs, wait)

    def job_status(self, job_id: str, wait: bool) -> dict[str, Any]:
        if wait:
            return job_brief(follow_job(self.client, job_id, timeout_s=STATUS_WAIT_S))
        return job_brief(self.client.get_job(job_id))

    def list_workflows(self) -> dict[str, Any]:
        items = self.client.list_workflows().get("items", [])
        return {"workflows": [
            {"id": w.get("id"), "name": w.get("name"), "description": w.get("description"),
             "category": w.get("category"), "ready": (w.get("readiness") or {}).get("ready"),
             "problems": (w.get("readiness") or {}).get("problems") or []} for w in items]}

    def workflow_inputs(self, workflow_id: str) -> dict[str, Any]:
        workflow = self.client.get_workflow(workflow_id)
        keep = ("id", "name", "type", "default", "min", "max", "options", "required", "description")
        inputs = [{k: i[k] for k in keep if k in i} for i in (workflow.get("manifest") or {}).get("inputs") or []
                  if not i.get("hidden")]
        return {"id": workflow.get("id"), "name": workflow.get("name"), "inputs": inputs}

    def run_workflow(self, workflow_id: str, params: dict[str, Any] | None, count: int,
                     wait: bool) -> dict[str, Any]:
        return self._follow(self.client.run_workflow(workflow_id, params, count=count), wait)

    def outputs_listing(self, job_id: str) -> str:
        brief = job_brief(self.client.get_job(job_id))
        return json.dumps({"job_id": job_id, "status": brief["status"], "outputs": brief.get("outputs", [])})

    def output_bytes(self, job_id: str, name: str) -> bytes:
        job = self.client.get_job(job_id)
        outputs = job.get("outputs") or []
        found = next((o for o in outputs if o.get("filename") == name), None)
        if found is None:
            raise ResourceNotFoundError(f"Job {job_id} has no output named {name!r}.")
        data, _kind = self.client.fetch_output(job_id, int(found["id"]))
        return data


def _typed_blobs(result: Any) -> None:
    """Each output's MIME type from its name (as Studio itself types what it serves): the SDK gives a
    resource template a single type, and outputs are PNG, WebP, MP4…"""
    contents = result.contents if isinstance(result, ReadResourceResult) else (
        result.get("contents") if isinstance(result, dict) else None)
    for content in contents or []:
        if isinstance(content, BlobResourceContents):
            content.mime_type = mimetypes.guess_type(unquote(urlsplit(str(content.uri)).path))[0] or content.mime_type
        elif isinstance(content, dict) and "blob" in content:
            guessed = mimetypes.guess_type(unquote(urlsplit(str(content.get("uri"))).path))[0]
            if guessed:
                content["mimeType"] = guessed


async def _blob_types(ctx: Any, call_next: Any) -> Any:
    result = await call_next(ctx)
    if getattr(ctx, "method", None) == "resources/read":
        _typed_blobs(result)
    return result


def build_server(client: StudioClient) -> MCPServer[Any]:
    tools = StudioTools(client)
    server: MCPServer[Any] = MCPServer("comfyui-studio", title="ComfyUI Studio", instructions=INSTRUCTIONS,
                                       version=__version__, log_level="WARNING", middleware=[_blob_types])

    def call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ClientError as err:
            raise _tool_error(err) from err

    @server.tool()
    def list_presets() -> dict[str, Any]:
        """The presets this token may run: id, name, the questions each asks (placeholders: index, question,
        options) and the parameters a run may override."""
        return dict(call(tools.list_presets))

    @server.tool()
    def run_preset(preset_id: str, answers: dict[str, str] | None = None, overrides: dict[str, Any] | None = None,
                   seed: int | None = None, count: int = 1, wait: bool = True) -> dict[str, Any]:
        """Runs a preset. answers: {placeholder index: answer} (a choice must be one of its options);
        overrides: {parameter: value} for the preset's overridable parameters; seed: fixed seed, or null.
        With wait, follows the jobs (up to 4 minutes) and answers their outputs as resource URIs."""
        return dict(call(tools.run_preset, preset_id, answers, overrides, seed, count, wait))

    @server.tool()
    def job_status(job_id: str, wait: bool = False) -> dict[str, Any]:
        """A job's status, progress, error and outputs (resource URIs); wait=true holds up to 50 s for it
        to finish."""
        return dict(call(tools.job_status, job_id, wait))

    @server.tool()
    def list_workflows() -> dict[str, Any]:
        """The workflows in Studio's library, whether each can run now, and why not."""
        return dict(call(tools.list_workflows))

    @server.tool()
    def workflow_inputs(workflow_id: str) -> dict[str, Any]:
        """The parameters run_workflow takes for a workflow: id, type, default, bounds, options."""
        return dict(call(tools.workflow_inputs, workflow_id))

    @server.tool()
    def run_workflow(workflow_id: str, params: dict[str, Any] | None = None, count: int = 1,
                     wait: bool = True) -> dict[str, Any]:
        """Runs a workflow with params {input id: value} (see workflow_inputs). With wait, follows the jobs
        (up to 4 minutes) and answers their outputs as resource URIs."""
        return dict(call(tools.run_workflow, workflow_id, params, count, wait))

    @server.resource("studio://jobs/{job_id}/outputs", name="job-outputs", mime_type="application/json",
                     description="A job's outputs: name, kind, size and the URI of each")
    def job_outputs(job_id: str) -> str:
        try:
            return tools.outputs_listing(job_id)
        except ClientError as err:
            raise ResourceError(err.message) from err

    @server.resource("studio://jobs/{job_id}/outputs/{name}", name="job-output",
                     mime_type="application/octet-stream", description="One output file of a job, as bytes")
    def job_output(job_id: str, name: str) -> bytes:
        try:
            return tools.output_bytes(job_id, name)
        except ClientError as err:
            raise ResourceError(err.message) from err

    return server


def serve(client: StudioClient) -> None:
    """Runs until the agent closes stdin. Logs go to stderr, never stdout (the protocol's)."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="studio mcp: %(levelname)s %(message)s")
    log.info("serving %r over stdio", client)
    build_server(client).run("stdio")

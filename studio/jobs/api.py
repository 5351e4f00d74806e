"""``/api/jobs``, ``/api/queue`` and ``/api/inputs``: follow, steer and keep what was made."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.apidocs.uploads import ImageUpload
from studio.auth.guard import allow_run_scope, current_identity, require_admin
from studio.errors import BadRequest, NotFound
from studio.jobs import advice, follow, results, thumbnails
from studio.jobs.export import stream_zip
from studio.jobs.models import FINISHED, JobStatus
from studio.jobs.serving import send_download, send_inside, send_preview
from studio.services import services
from studio.web import EmptyBody, UtcDatetime, parse_json, parse_query

bp = Blueprint("jobs", __name__, url_prefix="/api")

THUMBNAILS = "studio.thumbnails"


@bp.record
def _start_thumbnails(state: BlueprintSetupState) -> None:
    """One thumbnail maker per app, listening for completed jobs (its worker thread starts with the
    first one and ends when idle, so building an app still starts nothing)."""
    studio = state.app.extensions["studio"]
    maker = thumbnails.Thumbnails(studio.engine, studio.data_dir.outputs)
    maker.attach(studio.bus)
    state.app.extensions[THUMBNAILS] = maker


def thumbnail_maker() -> thumbnails.Thumbnails:
    found: thumbnails.Thumbnails = current_app.extensions[THUMBNAILS]
    return found


JOB_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class JobQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(None, max_length=200)
    workflow: str | None = Field(None, max_length=128)
    q: str | None = Field(None, max_length=200)
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None
    before: str | None = Field(None, pattern=JOB_ID, description="the last job id of the previous page")
    limit: int = Field(50, ge=1, le=200)
    starred: bool = Field(False, description="only jobs with a starred output")


@bp.get("/jobs")
@documented("List jobs, newest first (a page at a time)", query=JobQuery, tags=["jobs"])
@allow_run_scope
def list_jobs() -> Response:
    query = parse_query(JobQuery)
    try:
        statuses = [JobStatus(s) for s in query.status.split(",")] if query.status else None
    except ValueError as err:
        raise BadRequest("Unknown status.", fields={"status": str(err)}) from err
    return jsonify(services().jobs.list(actor=current_identity(), statuses=statuses, workflow_id=query.workflow,
                                        text=query.q, since=query.since, until=query.until, before=query.before,
                                        limit=query.limit, starred=query.starred))


class JobGetQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait: int | None = Field(None, ge=0, le=follow.MAX_WAIT_S,
                             description="long-poll: answer when the status changes or after this many seconds")


@bp.get("/jobs/<job_id>")
@documented("One job; with ?wait=N, answers when its status changes (or after N ≤ 60 s)", query=JobGetQuery,
            tags=["jobs"])
@allow_run_scope
def get_job(job_id: str) -> Response:
    query = parse_query(JobGetQuery)
    studio = services()
    if query.wait:
        return jsonify(follow.wait_for_change(studio, job_id, current_identity(), query.wait))
    return jsonify(follow.current_view(studio, job_id, current_identity()))


SSE_DOC = {"content": "text/event-stream", "description": "events state, status, progress, preview, output, "
           "outputs and finished (JSON data each); the stream ends after finished or within 90 s (reconnect)"}


@bp.get("/jobs/<job_id>/events")
@documented("Follow one job as server-sent events until it finishes", answers={200: SSE_DOC, 204: {"empty": True}},
            tags=["jobs"])
@allow_run_scope
def job_events(job_id: str) -> Response:
    """Answers 204 to a reconnect after the final event (``Last-Event-ID: end``), so EventSource stops."""
    studio = services()
    actor = current_identity()
    watch = follow.JobWatch(studio.bus, job_id)  # before reading the job: nothing between is missed
    try:
        view = follow.current_view(studio, job_id, actor)  # someone else's job: 404 before any byte
        finished = view["status"] in {s.value for s in FINISHED}
        if request.method == "HEAD" or (finished and request.headers.get("Last-Event-ID") == follow.END_ID):
            watch.close()
            return Response(status=204 if finished else 200, mimetype="text/event-stream")
    except BaseException:
        watch.close()
        raise
    config = current_app.config
    body = follow.stream(studio, job_id, actor, watch=watch, view=view,
                         max_s=float(config.get("STUDIO_SSE_MAX_S", follow.MAX_STREAM_S)),
                         keepalive_s=float(config.get("STUDIO_SSE_KEEPALIVE_S", follow.KEEPALIVE_S)))
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # proxies must pass each event on as it comes
    return response


@bp.get("/jobs/<job_id>/preview")
@documented("The latest preview frame of a running job", answers={200: {"content": "image/*"}}, tags=["jobs"])
@allow_run_scope
def job_preview(job_id: str) -> Response:
    studio = services()
    studio.jobs.owned(job_id, actor=current_identity())
    found = studio.job_engine.preview(job_id)
    if found is None:
        raise NotFound("No preview yet.", code="no_preview")
    response = send_preview(*found)
    if response is None:  # a frame whose type is not an image Studio shows: as if there were none
        raise NotFound("No preview yet.", code="no_preview")
    return response


@bp.get("/jobs/<job_id>/outputs/<int:output_id>")
@documented("Download one output file", answers={200: {"content": "application/octet-stream"}}, tags=["jobs"])
@allow_run_scope
def job_output(job_id: str, output_id: int) -> Response:
    studio = services()
    output = studio.jobs.output(job_id, output_id, actor=current_identity())
    path = _output_path(studio.data_dir.outputs, job_id, output.path)
    if path is None:
        raise NotFound("The file is gone.", code="output_missing")
    return send_inside(studio.data_dir.outputs, path, download_name=output.filename, max_age=0)


_output_path = thumbnails.output_file


@bp.get("/jobs/<job_id>/outputs/<int:output_id>/thumb/<int:size>.webp")
@documented("A WebP thumbnail of one output", answers={200: {"content": "image/webp"}}, tags=["jobs"])
@allow_run_scope
def output_thumbnail(job_id: str, output_id: int, size: int) -> Response:
    """A WebP thumbnail, made now if the worker has not yet; its URL never names other content, so
    browsers and proxies keep it for a year."""
    studio = services()
    output = studio.jobs.output(job_id, output_id, actor=current_identity())
    path = thumbnail_maker().file(output, size)
    if path is None:
        raise NotFound("This output has no thumbnail.", code="no_thumbnail")
    response = send_inside(studio.data_dir.outputs, path, download_name=f"{Path(output.filename).stem}-{size}.webp",
                           max_age=thumbnails.CACHE_SECONDS)
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response


class StarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starred: bool = Field(default=True, strict=True)  # an empty body stars it


@bp.post("/jobs/<job_id>/outputs/<int:output_id>/star")
@documented("Star or unstar one output", body=StarRequest, tags=["jobs"])
def star_output(job_id: str, output_id: int) -> Response:
    """A bad body is a 400 like on every route; then someone else's output is a 404."""
    body = parse_json(StarRequest)
    studio = services()
    studio.jobs.output(job_id, output_id, actor=current_identity())
    return jsonify(results.set_star(studio.jobs, job_id, output_id, actor=current_identity(), starred=body.starred))


@bp.delete("/jobs/<job_id>/outputs/<int:output_id>")
@documented("Delete one output file", tags=["jobs"])
def delete_output(job_id: str, output_id: int) -> Response:
    return jsonify(results.delete_output(services().jobs, job_id, output_id, actor=current_identity()))


@bp.get("/jobs/<job_id>/export")
@documented("The job, its inputs and outputs as a ZIP", answers={200: {"content": "application/zip"}}, tags=["jobs"])
@allow_run_scope
def export_job(job_id: str) -> Response:
    studio = services()
    view = studio.jobs.get(job_id, actor=current_identity())
    files: list[tuple[str, Path, Path]] = []
    for name in sorted({v for v in view["params"].values() if isinstance(v, str)}):
        path = studio.inputs.path_of(name)
        if path is not None:
            files.append((f"inputs/{path.name}", studio.inputs.root, path))
    for output in view.get("outputs", []):
        row = studio.jobs.output(job_id, output["id"], actor=current_identity())
        found = _output_path(studio.data_dir.outputs, job_id, row.path)
        if found is not None:
            files.append((f"outputs/{found.name}", studio.data_dir.outputs, found))
    return send_download(stream_with_context(stream_zip(view, files)), download_name=f"job-{job_id}.zip")


@bp.post("/jobs/<job_id>/cancel")
@documented("Cancel a waiting or running job", body=EmptyBody, tags=["jobs"])
@allow_run_scope
def cancel_job(job_id: str) -> Response:
    parse_json(EmptyBody)
    studio = services()
    actor = current_identity()
    job = studio.jobs.owned(job_id, actor=actor)
    advice.record_stop(studio.jobs.engine, job_id, by_admin=actor.is_admin and job.owner_id != actor.user_id,
                       username=actor.username)
    studio.job_engine.cancel(job)
    return jsonify(studio.jobs.get(job_id, actor=actor))


@bp.post("/jobs/<job_id>/front")
@documented("Move a waiting job to the front of the queue", body=EmptyBody, tags=["jobs"])
def move_to_front(job_id: str) -> Response:
    parse_json(EmptyBody)
    return jsonify(services().jobs.move_to_front(job_id, actor=current_identity()))


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before: str | None = Field(None, max_length=36, description="the waiting job to go before; null = last")


@bp.post("/jobs/<job_id>/move")
@documented("Move a waiting job before another", body=MoveRequest, tags=["jobs"])
def move_job(job_id: str) -> Response:
    body = parse_json(MoveRequest)
    return jsonify(services().jobs.move(job_id, before=body.before, actor=current_identity()))


@bp.post("/jobs/<job_id>/retry")
@documented("Queue a finished job again with the same values", body=EmptyBody, answers={201: {}}, tags=["jobs"])
@allow_run_scope
def retry_job(job_id: str) -> Response:
    parse_json(EmptyBody)
    response = jsonify(services().jobs.retry(job_id, actor=current_identity()))
    response.status_code = 201
    return response


class AgainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: Literal["new", "same"] = "new"
    count: int = Field(1, ge=1, le=results.MAX_AGAIN, strict=True)


@bp.post("/jobs/<job_id>/again")
@documented("Queue the same job with new or the same seeds", body=AgainRequest, answers={201: {}}, tags=["jobs"])
@allow_run_scope
def again(job_id: str) -> Response:
    """Same workflow and values, new random seeds: "new seed" (count 1) and variations (count N)."""
    body = parse_json(AgainRequest)  # a bad body is a 400 like on every route
    studio = services()
    studio.jobs.owned(job_id, actor=current_identity())  # then someone else's job is a 404, nothing queued
    jobs = results.again(studio.jobs, job_id, actor=current_identity(), seed=body.seed, count=body.count)
    response = jsonify({"items": jobs})
    response.status_code = 201
    return response


@bp.delete("/jobs/<job_id>")
@documented("Delete a job and its files", tags=["jobs"])
def delete_job(job_id: str) -> Response:
    services().jobs.delete(job_id, actor=current_identity())
    return jsonify({"ok": True})


@bp.get("/queue")
@documented("The queue: what runs and what waits", tags=["queue"])
@allow_run_scope
def queue_state() -> Response:
    return jsonify(services().jobs.queue_state(actor=current_identity()))


@bp.post("/queue/pause")
@documented("Pause the queue (admin)", body=EmptyBody, tags=["queue"])
def pause() -> Response:
    """Admin: the queue is everyone's, so only an admin stops or restarts it."""
    actor = require_admin()
    parse_json(EmptyBody)
    return jsonify(services().jobs.set_paused(True, actor=actor))


@bp.post("/queue/resume")
@documented("Resume the queue (admin)", body=EmptyBody, tags=["queue"])
def resume() -> Response:
    actor = require_admin()
    parse_json(EmptyBody)
    return jsonify(services().jobs.set_paused(False, actor=actor))


@bp.post("/queue/cancel-waiting")
@documented("Cancel all of the caller's waiting jobs", body=EmptyBody, tags=["queue"])
def cancel_waiting() -> Response:
    parse_json(EmptyBody)
    return jsonify({"cancelled": services().jobs.cancel_pending(actor=current_identity())})


@bp.post("/inputs")
@documented("Upload an input image (multipart field image)", body=ImageUpload, answers={200: {}, 201: {}},
            tags=["inputs"])
@allow_run_scope
def upload_input() -> Response:
    upload = request.files.get("image")
    if upload is None:
        raise BadRequest("Send the image as multipart field 'image'.", fields={"image": "missing"})
    stored = services().inputs.save(upload.read())
    response = jsonify(stored)
    response.status_code = 201 if stored["created"] else 200
    return response


@bp.get("/inputs")
@documented("Input images recently used", tags=["inputs"])
@allow_run_scope
def recent_inputs() -> Response:
    """Images the caller's own recent jobs used (an admin sees every stored input)."""
    studio = services()
    actor = current_identity()
    if actor.is_admin:
        return jsonify({"items": studio.inputs.recent()})
    return jsonify({"items": studio.jobs.inputs_used(actor=actor, exists=studio.inputs.exists)})


@bp.get("/inputs/<name>")
@documented("One stored input image", answers={200: {"content": "image/*"}}, tags=["inputs"])
@allow_run_scope
def input_image(name: str) -> Response:
    """An earlier input, for thumbnails; names are content hashes, so anyone signed in may see them."""
    store = services().inputs
    path = store.path_of(f"studio/{name}")
    if path is None:
        raise NotFound("No such input.")
    return send_inside(store.root, path, download_name=path.name, max_age=3600)

"""``/api/jobs``, ``/api/queue`` and ``/api/inputs``: follow, steer and keep what was made."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field

from studio.auth.guard import allow_run_scope, current_identity, require_admin
from studio.errors import BadRequest, NotFound
from studio.jobs import advice, results, thumbnails
from studio.jobs.export import stream_zip
from studio.jobs.models import JobStatus
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


@bp.get("/jobs/<job_id>")
@allow_run_scope
def get_job(job_id: str) -> Response:
    studio = services()
    view = studio.jobs.get(job_id, actor=current_identity())
    live = studio.job_engine.progress(job_id)
    if live is not None:
        view["progress"] = live
    return jsonify(view)


@bp.get("/jobs/<job_id>/preview")
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
def star_output(job_id: str, output_id: int) -> Response:
    """A bad body is a 400 like on every route; then someone else's output is a 404."""
    body = parse_json(StarRequest)
    studio = services()
    studio.jobs.output(job_id, output_id, actor=current_identity())
    return jsonify(results.set_star(studio.jobs, job_id, output_id, actor=current_identity(), starred=body.starred))


@bp.delete("/jobs/<job_id>/outputs/<int:output_id>")
def delete_output(job_id: str, output_id: int) -> Response:
    return jsonify(results.delete_output(services().jobs, job_id, output_id, actor=current_identity()))


@bp.get("/jobs/<job_id>/export")
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
def move_to_front(job_id: str) -> Response:
    parse_json(EmptyBody)
    return jsonify(services().jobs.move_to_front(job_id, actor=current_identity()))


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before: str | None = Field(None, max_length=36, description="the waiting job to go before; null = last")


@bp.post("/jobs/<job_id>/move")
def move_job(job_id: str) -> Response:
    body = parse_json(MoveRequest)
    return jsonify(services().jobs.move(job_id, before=body.before, actor=current_identity()))


@bp.post("/jobs/<job_id>/retry")
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
def delete_job(job_id: str) -> Response:
    services().jobs.delete(job_id, actor=current_identity())
    return jsonify({"ok": True})


@bp.get("/queue")
@allow_run_scope
def queue_state() -> Response:
    return jsonify(services().jobs.queue_state(actor=current_identity()))


@bp.post("/queue/pause")
def pause() -> Response:
    """Admin: the queue is everyone's, so only an admin stops or restarts it."""
    actor = require_admin()
    parse_json(EmptyBody)
    return jsonify(services().jobs.set_paused(True, actor=actor))


@bp.post("/queue/resume")
def resume() -> Response:
    actor = require_admin()
    parse_json(EmptyBody)
    return jsonify(services().jobs.set_paused(False, actor=actor))


@bp.post("/queue/cancel-waiting")
def cancel_waiting() -> Response:
    parse_json(EmptyBody)
    return jsonify({"cancelled": services().jobs.cancel_pending(actor=current_identity())})


@bp.post("/inputs")
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
@allow_run_scope
def recent_inputs() -> Response:
    """Images the caller's own recent jobs used (an admin sees every stored input)."""
    studio = services()
    actor = current_identity()
    if actor.is_admin:
        return jsonify({"items": studio.inputs.recent()})
    return jsonify({"items": studio.jobs.inputs_used(actor=actor, exists=studio.inputs.exists)})


@bp.get("/inputs/<name>")
@allow_run_scope
def input_image(name: str) -> Response:
    """An earlier input, for thumbnails; names are content hashes, so anyone signed in may see them."""
    store = services().inputs
    path = store.path_of(f"studio/{name}")
    if path is None:
        raise NotFound("No such input.")
    return send_inside(store.root, path, download_name=path.name, max_age=3600)

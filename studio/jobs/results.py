"""What people do with a finished result: run it again with new seeds, star it, delete one output.

"Again" is not "retry": retry sends the very same values, seed included, and ComfyUI's cache then
answers with the identical image at once. Again draws a new random seed for every seed input (or
keeps them, asked to), and goes through the same validation as a run from the form, so a model that
has gone since is named rather than sent.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlmodel import Session

from studio import safepath
from studio.auth.service import Identity
from studio.db import write_with_retry
from studio.errors import BadRequest, NotFound
from studio.jobs import thumbnails
from studio.jobs.models import JobOutput
from studio.jobs.service import JobService
from studio.workflows import params as workflow_params

MAX_AGAIN = 8
RANDOM = -1


def again(jobs: JobService, job_id: str, *, actor: Identity, seed: Literal["new", "same"],
          count: int) -> list[dict[str, Any]]:
    """``count`` new jobs with the job's workflow and values; new random seeds unless ``seed`` is "same"."""
    original = jobs.owned(job_id, actor=actor)
    workflow = jobs.library.get(original.workflow_id)
    stored = original.params if isinstance(original.params, dict) else {}
    known = {spec.id for spec in workflow.manifest.inputs}
    # Only the workflow's own inputs: resolving adds entries (a scene list's scene_<n> seeds) that are not.
    values = {key: value for key, value in stored.items() if key in known}
    problems = workflow_params.value_problems(values)
    if problems:
        raise BadRequest("This job's parameters cannot be used again: " + "; ".join(
            f"{key[:80]} {problem}" for key, problem in problems.items()), fields=problems)
    if seed == "new":
        seeds = [spec for spec in workflow.manifest.inputs if spec.type in ("seed", "scene_list")]
        if not seeds:
            raise BadRequest("This workflow has no seed to change: run it again as it is.",
                             code="no_seed", fields={"seed": "the workflow has no seed input"})
        for spec in seeds:
            if spec.type == "seed":
                values[spec.id] = RANDOM
            elif isinstance(values.get(spec.id), list):
                values[spec.id] = [{key: item for key, item in scene.items() if key != "frames"} | {"seed": RANDOM}
                                   for scene in values[spec.id] if isinstance(scene, dict)]
    return jobs.submit(original.workflow_id, values, owner=actor, count=max(1, min(count, MAX_AGAIN)))


def _own_output(jobs: JobService, job_id: str, output_id: int, actor: Identity) -> JobOutput:
    return jobs.output(job_id, output_id, actor=actor)  # 404 unless the actor owns the job or is an admin


def set_star(jobs: JobService, job_id: str, output_id: int, *, actor: Identity, starred: bool) -> dict[str, Any]:
    _own_output(jobs, job_id, output_id, actor)
    thumbnails.update_output(jobs.engine, output_id, starred=starred)
    return jobs.get(job_id, actor=actor)


def delete_output(jobs: JobService, job_id: str, output_id: int, *, actor: Identity) -> dict[str, Any]:
    """Removes one output (its row, its file, its thumbnails); the job and its other outputs stay."""
    output = _own_output(jobs, job_id, output_id, actor)
    root = jobs.data_dir.outputs

    def work(session: Session) -> None:
        row = session.get(JobOutput, output_id)
        if row is None:
            raise NotFound("No such output.")
        session.delete(row)

    write_with_retry(jobs.engine, work)
    found = thumbnails.output_file(root, job_id, output.path)
    doomed = [found] if found is not None else []
    doomed += [thumbnails.path_of(root, job_id, output_id, size) for size in thumbnails.SIZES]
    for path in doomed:
        try:
            safepath.unlink_inside(root, path)
        except OSError:
            continue  # already gone, or behind a link that is never followed: nothing of it is served
    view = jobs.get(job_id, actor=actor)
    jobs.publish(jobs.owned(job_id, actor=actor))
    return view

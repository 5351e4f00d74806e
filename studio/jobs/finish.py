"""How a job ends, read from ComfyUI's record of it (a ``/history`` entry, or the Jobs API's job in
the same shape): its files kept in the job's own folder, and the status, error and note it ends with.

The record is ComfyUI's word, and ComfyUI may be buggy or hostile: every field is checked for its
shape, and a job ComfyUI ran with outputs it had dropped at validation, and that therefore made
nothing Studio can keep, ends failed with that reason rather than "completed" with nothing in it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from studio.comfy import ComfyClient, ComfyError
from studio.jobs import outputs
from studio.jobs.models import JobOutput, JobStatus
from studio.safepath import UnsafePath

log = logging.getLogger(__name__)


def keep_outputs(comfy: ComfyClient, outputs_root: Path, job_id: str,
                 entry: dict[str, Any]) -> tuple[list[JobOutput], list[str]]:
    """Keeps each output's file in the job's own folder; returns the rows that record them (to be
    written with the job's final status, in the same transaction), and why any were not kept."""
    planned, skipped = outputs.plan(entry)
    rows = []
    for item in planned:
        try:
            path = outputs.keep(comfy, outputs_root, job_id, item)
            facts = outputs.describe(path)
        except (ComfyError, OSError, ValueError) as err:
            log.warning("output %r of job %s not stored: %s", item.filename[:200], job_id, err)
            skipped.append(f"{item.local_name} ({_reason(err)})")
            continue
        rows.append(JobOutput(job_id=job_id, node_id=item.node_id, filename=item.local_name,
                              path=f"studio/{job_id}/{item.local_name}", **facts))
    return rows, skipped


def add_rows(session: Session, job_id: str, rows: list[JobOutput]) -> None:
    """The output rows a finish recorded, each once: a job finished twice (a reconcile after the
    socket's own finish) keeps one row per file."""
    if not rows:
        return
    known = {o.path for o in session.exec(select(JobOutput).where(JobOutput.job_id == job_id))}
    for row in rows:
        if row.path not in known:
            session.add(row)


def _messages(status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    raw = status.get("messages")
    return [(str(m[0]), m[1]) for m in (raw if isinstance(raw, list) else [])
            if isinstance(m, list | tuple) and len(m) >= 2 and isinstance(m[1], dict)]


def verdict(entry: dict[str, Any], stored: int, skipped: list[str],
            dropped: list[str]) -> tuple[JobStatus, dict[str, Any]]:
    """The status a finished job takes and the rest of ``JobService.mark``'s arguments."""
    found = entry.get("status")
    status: dict[str, Any] = found if isinstance(found, dict) else {}
    messages = _messages(status)
    last_event, last_data = messages[-1] if messages else ("", {})
    if status.get("status_str") == "success":
        if dropped and not stored and not skipped:
            return JobStatus.FAILED, {"error": {
                "code": "outputs_dropped", "dropped": dropped[:20],
                "message": "ComfyUI ran this job without its outputs: it dropped "
                           f"{', '.join(dropped[:5])}{'…' if len(dropped) > 5 else ''} for failing its "
                           "validation, so nothing was saved (see the warning)."}}
        note = None
        if skipped:
            note = (f"{len(skipped)} output{'s' if len(skipped) > 1 else ''} not kept: "
                    + "; ".join(skipped[:5]) + ("; …" if len(skipped) > 5 else ""))
        return JobStatus.COMPLETED, {"progress": {"percent": 100.0}, "note": note}
    if last_event == "execution_interrupted":
        return JobStatus.INTERRUPTED, {"error": {
            "message": f"Interrupted at {last_data.get('node_type')} (node {last_data.get('node_id')}).",
            "node_id": last_data.get("node_id"), "node_type": last_data.get("node_type")}}
    error: dict[str, Any] = next((data for event, data in messages if event == "execution_error"), {})
    return JobStatus.FAILED, {"error": {
        "message": f"{error.get('node_type', 'A node')} (node {error.get('node_id', '?')}) failed: "
                   f"{str(error.get('exception_message', 'unknown error')).strip()}",
        "node_id": error.get("node_id"), "node_type": error.get("node_type"),
        "exception_type": error.get("exception_type")}}


def _reason(err: Exception) -> str:
    if isinstance(err, UnsafePath):
        return "its folder is reached through a link"
    if isinstance(err, ComfyError):
        return str(err)
    return type(err).__name__ if not isinstance(err, outputs.Refused) else str(err)

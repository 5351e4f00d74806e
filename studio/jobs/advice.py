"""What a job's failure or stop means to the person who ran it, and what they can do about it.

ComfyUI reports failures as programmers read them ("VAEDecode (node 8) failed: Allocation on
device 0 would exceed allowed memory", "torch.OutOfMemoryError", "Interrupted at KSampler"). The
API, the web UI and Telegram all show a job through ``views.job_view``, so the translation happens
once, there: the job's ``advice`` holds the sentence a person reads (``message``), the known failure
(``code``) and the actions that fix it. ``error.message`` keeps ComfyUI's own words, which the job
page shows in its timeline for whoever wants the detail.

Who stopped a job is not something ComfyUI knows: ``record_stop`` writes it on the timeline when
the stop is asked for, and ``stopped_by`` reads it back. A stop with no record was asked for by
its owner (the only other people who can are admins, and their stops are recorded).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from studio.db import transition, write_with_retry
from studio.jobs.models import FINISHED, Job, JobStatus

STOP_KEY = "stop_requested_by"
OUT_OF_MEMORY = "ComfyUI ran out of GPU memory: lower the size or batch, or free VRAM"

_OOM = re.compile(r"out of memory|OutOfMemory|Allocation on device|\bOOM\b|not enough memory", re.IGNORECASE)
# Inputs that name a model file: ComfyUI refuses a value not in their list when the file is absent.
_MODEL_INPUT = re.compile(r"(^|_)(ckpt|lora|vae|unet|clip|control_net|upscale_model|model|style_model|"
                          r"gligen|hypernetwork|clip_vision|photomaker)(_name)?$|_name$")
# "torch.OutOfMemoryError: ", "(TypeError)", "WebSocketConnectionClosedException …": class names
# are the programmer's vocabulary; the sentence around them stays.
_CLASS_IN_PARENS = re.compile(r"\s*\((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning)\)")
_CLASS_PREFIX = re.compile(r"(?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning)\b:?\s*")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
MAX_DETAIL = 2000


def readable(text: str) -> str:
    """``text`` without exception class names, and never empty."""
    cleaned = _CLASS_PREFIX.sub("", _CLASS_IN_PARENS.sub("", text))
    cleaned = re.sub(r"\s{2,}", " ", cleaned).strip(" :")
    return cleaned or "Something went wrong in ComfyUI (the job's timeline has the details)."


def node_words(class_type: Any, node_id: Any) -> str:
    """``KSamplerAdvanced``, ``"3"`` → ``the “K Sampler Advanced” node (3)``."""
    name = _CAMEL.sub(" ", str(class_type)).strip() if class_type else ""
    where = f" ({node_id})" if node_id not in (None, "") else ""
    return f"the “{name}” node{where}" if name else f"a node{where}"


def input_words(name: Any) -> str:
    return f"“{str(name).replace('_', ' ')}”"


def _first_line(text: Any) -> str:
    return next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")


def record_stop(engine: Any, job_id: str, *, by_admin: bool, username: str) -> None:
    """Writes on the job's timeline who asked for it to stop, before the stop is sent: ComfyUI's
    answer ("interrupted") then finds it there. A finished job is left as it is."""

    def work(session: Session) -> None:
        job: Job | None = transition(session, Job, job_id,
                                     [s for s in JobStatus if s not in FINISHED], {"id": job_id})
        if job is None:
            return
        job.timeline = [*job.timeline, {"at": datetime.now(UTC).isoformat(), "status": job.status.value,
                                        "note": f"stop asked for by {username}",
                                        STOP_KEY: "admin" if by_admin else "owner"}]
        session.add(job)

    write_with_retry(engine, work)


def stopped_by(timeline: list[Any]) -> str:
    """``"owner"`` or ``"admin"``: the last recorded request to stop, else its owner."""
    for entry in reversed(timeline):
        if isinstance(entry, dict) and entry.get(STOP_KEY) in ("owner", "admin"):
            return str(entry[STOP_KEY])
    return "owner"


def _problem_advice(problems: list[Any]) -> tuple[str, dict[str, Any]] | None:
    """A refused workflow: a model that is not installed first, else the first input in words."""
    listed = [p for p in problems if isinstance(p, dict)]
    for p in listed:
        if p.get("type") == "value_not_in_list" and p.get("input") and _MODEL_INPUT.search(str(p["input"])):
            value = re.search(r"'([^']{1,300})' not in", str(p.get("message") or ""))
            file = value.group(1) if value else None
            named = f"“{file}”" if file else f"for {input_words(p['input'])}"
            where = node_words(p.get("class_type"), p.get("node_id"))
            text = f"The model {named} is not installed in ComfyUI ({where}): download it, or choose another."
            return text, {"code": "model_missing", "file": file, "node_id": p.get("node_id"), "input": p.get("input")}
    if not listed:
        return None
    p = listed[0]
    where = node_words(p.get("class_type"), p.get("node_id"))
    what = f"input {input_words(p['input'])} of {where}" if p.get("input") else where
    return (f"ComfyUI refused the {what}: {readable(str(p.get('message') or 'not accepted'))}"
            + (f" (and {len(listed) - 1} more)" if len(listed) > 1 else "") + "."), {
        "code": "node_refused", "node_id": p.get("node_id"), "input": p.get("input")}


def explain(status: str, error: dict[str, Any], timeline: list[Any]) -> dict[str, Any]:
    """``{code, message, actions}`` for a stored ``error`` (already made safe to show): ``message``
    is the sentence a person reads, ``actions`` what the page may offer (``free_vram``, for admins;
    ``install_missing``: the workflow's missing models downloaded)."""
    raw = str(error.get("message") or "")
    detail = " ".join(filter(None, [raw, str(error.get("exception_type") or "")]))
    if status in ("interrupted", "cancelled"):
        who = stopped_by(timeline)
        message = "Stopped by you." if who == "owner" else "Stopped by an admin."
        if any(isinstance(e, dict) and e.get("note") == "its owner was deleted" for e in timeline):
            message, who = "Stopped: its owner was deleted.", "admin"
        return {"code": "stopped", "message": message, "stopped_by": who, "actions": []}
    if _OOM.search(detail):
        return {"code": "out_of_memory", "message": OUT_OF_MEMORY + ".",
                "actions": [{"kind": "free_vram", "admin_only": True}]}
    if isinstance(error.get("problems"), list) and (found := _problem_advice(error["problems"])):
        message, advice = found
        actions = [{"kind": "install_missing"}] if advice["code"] == "model_missing" else []
        return {**advice, "message": message[:MAX_DETAIL], "actions": actions}
    if error.get("node_type") or error.get("node_id"):
        reason = readable(_first_line(raw.split(" failed: ", 1)[-1]))
        where = node_words(error.get("node_type"), error.get("node_id"))
        return {"code": "node_failed", "node_id": error.get("node_id"),
                "message": f"{where[:1].upper()}{where[1:]} failed: {reason}"[:MAX_DETAIL], "actions": []}
    message = readable(raw) if raw else "The job failed (its timeline has the details)."
    return {"code": str(error.get("code") or "failed"), "message": message[:MAX_DETAIL], "actions": []}


def attach(view: dict[str, Any]) -> None:
    """Sets ``view["advice"]``: what a failed or stopped job means, else None. ``error.message``
    keeps ComfyUI's own words, for scripts and for the job page's details."""
    status = str(view.get("status") or "")
    error = view.get("error")
    found = view.get("timeline")
    timeline: list[Any] = found if isinstance(found, list) else []
    if status in ("interrupted", "cancelled") or (status == "failed" and isinstance(error, dict)):
        view["advice"] = explain(status, error if isinstance(error, dict) else {}, timeline)
    else:
        view["advice"] = None

"""Last values per person and workflow: bounded, so a form cannot grow the database without limit.

A draft is what the person typed, not what will run: it is checked for shape and size (and that
its keys are the workflow's inputs) but not against ComfyUI's lists, so a half-written prompt or a
model that was removed since is kept and shown, and the form says what needs fixing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from studio import jsonio
from studio.db import write_with_retry
from studio.db.models import utcnow
from studio.errors import BadRequest
from studio.runpage.models import RunDraft

MAX_DRAFT_BYTES = 64 * 1024
MAX_KEYS = 200
MAX_DRAFTS_PER_USER = 50


def draft_problem(values: Any, inputs: set[str]) -> tuple[str, str] | None:
    """(code, message) when ``values`` cannot be kept as a draft of a form with these inputs."""
    if not isinstance(values, dict):
        return "invalid_value", "values must be an object of input id → value"
    if len(values) > MAX_KEYS:
        return "too_large", f"values may hold at most {MAX_KEYS} inputs"
    unknown = sorted(key for key in values if key not in inputs)
    if unknown:
        shown = ", ".join(repr(key[:64]) for key in unknown[:5])
        return "invalid_value", f"not inputs of this workflow: {shown}"
    try:
        jsonio.check_shape(values)
    except jsonio.JSONRefused as err:
        return "invalid_value", f"values cannot be kept: {err}"
    if len(jsonio.dumps(values).encode()) > MAX_DRAFT_BYTES:
        return "too_large", f"values are larger than {MAX_DRAFT_BYTES // 1024} KiB"
    return None


class RunDrafts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, *, user_id: int, workflow_id: str, values: dict[str, Any], inputs: set[str]) -> dict[str, Any]:
        problem = draft_problem(values, inputs)
        if problem:
            code, message = problem
            raise BadRequest(message, code=code, fields={"values": message})

        def work(session: Session) -> dict[str, Any]:
            row = session.get(RunDraft, (user_id, workflow_id))
            if row is None:
                row = RunDraft(user_id=user_id, workflow_id=workflow_id, values=values)
            else:
                row.values, row.updated_at = values, utcnow()
            session.add(row)
            session.flush()
            # Only the newest drafts are kept: an old workflow's form falls back to its defaults.
            keep = select(RunDraft.workflow_id).where(RunDraft.user_id == user_id) \
                .order_by(col(RunDraft.updated_at).desc()).limit(MAX_DRAFTS_PER_USER)
            session.exec(delete(RunDraft).where(col(RunDraft.user_id) == user_id,  # type: ignore[call-overload]
                                                col(RunDraft.workflow_id).not_in(keep)))
            return _shape(row)

        return write_with_retry(self.engine, work)

    def last(self, *, user_id: int, known: set[str]) -> dict[str, Any]:
        """The newest draft of a workflow still in the library, and every draft by workflow."""
        with Session(self.engine) as session:
            rows = session.exec(select(RunDraft).where(RunDraft.user_id == user_id)
                                .order_by(col(RunDraft.updated_at).desc())).all()
        rows = [row for row in rows if row.workflow_id in known]
        newest = rows[0] if rows else None
        return {"workflow_id": newest.workflow_id if newest else None,
                "values": newest.values if newest else None,
                "updated_at": newest.updated_at.isoformat() if newest else None,
                # Each with its time, so a page holding a local copy can tell which one is newer.
                "drafts": {row.workflow_id: {"values": row.values, "updated_at": row.updated_at.isoformat()}
                           for row in rows}}


def _shape(row: RunDraft) -> dict[str, Any]:
    return {"workflow_id": row.workflow_id, "values": row.values, "updated_at": row.updated_at.isoformat()}

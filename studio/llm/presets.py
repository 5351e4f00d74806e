"""System-prompt presets: a few bundled with Studio (read-only, the same for everyone) and each
person's own, private like their conversations (another person's preset answers 404, admins
included). Chosen in the Chat tab and in the Run form's prompt helper, where the chosen text is
shown and can still be edited before anything is sent."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Column, Index, Text, func
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from studio.auth.service import Identity
from studio.db import write_with_retry
from studio.db.models import utcnow
from studio.errors import BadRequest, Conflict, NotFound
from studio.llm.conversations import MAX_SYSTEM

MAX_NAME = 100
MAX_PER_OWNER = 200
BUNDLED_PREFIX = "bundled-"
Use = Literal["chat", "improve", "variations", "describe"]
USES: tuple[str, ...] = ("chat", "improve", "variations", "describe")


class LlmPromptPreset(SQLModel, table=True):
    __tablename__ = "llm_prompt_preset"
    __table_args__ = (Index("ix_llm_prompt_preset_owner_name", "owner_id", "name"),)

    id: str = Field(primary_key=True, max_length=36)
    owner_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    name: str = Field(max_length=MAX_NAME)
    use: str = Field(default="chat", max_length=16)  # where it is offered first: chat, improve, variations, describe
    system_prompt: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


BUNDLED: tuple[dict[str, str], ...] = (
    {"id": "bundled-assistant", "name": "Helpful assistant", "use": "chat",
     "system_prompt": "You are a helpful assistant. Answer briefly and clearly."},
    {"id": "bundled-prompt-writer", "name": "Image prompt writer", "use": "chat",
     "system_prompt": "You write prompts for an image generator (Stable Diffusion, Flux). Turn what the user "
                      "describes into one detailed prompt: subject, setting, lighting, style, composition, camera. "
                      "Answer with the prompt only."},
    {"id": "bundled-improve", "name": "Improve a prompt", "use": "improve",
     "system_prompt": "You improve prompts for an image generator. Rewrite the prompt the user sends as one "
                      "richer, concrete prompt (subject, setting, lighting, style, composition), at most 60 words. "
                      "Answer with the prompt only."},
    {"id": "bundled-variations", "name": "Prompt variations", "use": "variations",
     "system_prompt": "You write prompts for an image generator. Write one new variation of the prompt the user "
                      "sends: keep its subject, change the setting, mood or style. At most 60 words. Answer with "
                      "the prompt only."},
    {"id": "bundled-tags", "name": "Danbooru-style tags", "use": "improve",
     "system_prompt": "Rewrite the prompt the user sends as a comma-separated list of short Danbooru-style tags "
                      "(subject, features, clothing, setting, style, quality). Answer with the tags only."},
    {"id": "bundled-describe", "name": "Describe the picture as a prompt", "use": "describe",
     "system_prompt": "Describe the picture the user sends as one prompt for an image generator: subject, "
                      "setting, lighting, colours, style, composition, at most 70 words. Answer with the prompt "
                      "only."},
)


def _bundled_view(item: dict[str, str]) -> dict[str, Any]:
    return {**item, "bundled": True, "created_at": None, "updated_at": None}


def preset_view(row: LlmPromptPreset) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "use": row.use, "system_prompt": row.system_prompt, "bundled": False,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise BadRequest("A preset needs a name.", fields={"name": "required"})
    return name[:MAX_NAME]


class PromptPresets:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _own(self, session: Session, preset_id: str, owner: Identity) -> LlmPromptPreset:
        if preset_id.startswith(BUNDLED_PREFIX) and any(item["id"] == preset_id for item in BUNDLED):
            raise Conflict("Bundled presets cannot be changed: save a copy under another name.",
                           code="preset_bundled")
        row = session.get(LlmPromptPreset, preset_id[:36])
        if row is None or row.owner_id != owner.user_id:
            raise NotFound("No such preset.", code="preset_not_found")  # another person's looks absent
        return row

    def list(self, owner: Identity) -> builtins.list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.exec(select(LlmPromptPreset).where(LlmPromptPreset.owner_id == owner.user_id)
                                .order_by(func.lower(col(LlmPromptPreset.name)))).all()
            return [_bundled_view(item) for item in BUNDLED] + [preset_view(row) for row in rows]

    def create(self, owner: Identity, *, name: str, system_prompt: str, use: str) -> dict[str, Any]:
        row = LlmPromptPreset(id=str(uuid.uuid4()), owner_id=owner.user_id, name=_name(name), use=use,
                              system_prompt=system_prompt[:MAX_SYSTEM])

        def work(session: Session) -> dict[str, Any]:
            count = session.exec(select(func.count(col(LlmPromptPreset.id)))
                                 .where(LlmPromptPreset.owner_id == owner.user_id)).one()
            if count >= MAX_PER_OWNER:
                raise Conflict(f"You have {MAX_PER_OWNER} presets: delete one first.", code="too_many_presets")
            session.add(row)
            session.flush()
            return preset_view(row)

        return write_with_retry(self.engine, work)

    def change(self, preset_id: str, owner: Identity, *, name: str | None, system_prompt: str | None,
               use: str | None) -> dict[str, Any]:
        def work(session: Session) -> dict[str, Any]:
            row = self._own(session, preset_id, owner)
            if name is not None:
                row.name = _name(name)
            if system_prompt is not None:
                row.system_prompt = system_prompt[:MAX_SYSTEM]
            if use is not None:
                row.use = use
            row.updated_at = utcnow()
            session.add(row)
            session.flush()
            return preset_view(row)

        return write_with_retry(self.engine, work)

    def delete(self, preset_id: str, owner: Identity) -> None:
        def work(session: Session) -> None:
            session.delete(self._own(session, preset_id, owner))

        write_with_retry(self.engine, work)

"""``/api/llm/presets``: system-prompt presets, the bundled ones and each person's own."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import current_identity
from studio.llm.conversations import MAX_SYSTEM
from studio.llm.presets import MAX_NAME, Use
from studio.services import services
from studio.web import EmptyBody, parse_json

bp = Blueprint("llm_presets", __name__, url_prefix="/api/llm/presets")


class NewPreset(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    system_prompt: str = Field(max_length=MAX_SYSTEM)
    use: Use = "chat"


class PresetChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    system_prompt: str | None = Field(None, max_length=MAX_SYSTEM)
    use: Use | None = None


@bp.get("")
@documented("System-prompt presets: the bundled ones, then yours", tags=["llm"])
def list_presets() -> Response:
    return jsonify({"items": services().prompt_presets.list(current_identity())})


@bp.post("")
@documented("Save a system prompt as one of your presets", body=NewPreset, answers={201: {}}, tags=["llm"])
def create_preset() -> tuple[Response, int]:
    body = parse_json(NewPreset)
    made = services().prompt_presets.create(current_identity(), name=body.name, system_prompt=body.system_prompt,
                                            use=body.use)
    return jsonify(made), 201


@bp.patch("/<preset_id>")
@documented("Rename or rewrite one of your presets (bundled ones are read-only)", body=PresetChange, tags=["llm"])
def change_preset(preset_id: str) -> Response:
    body = parse_json(PresetChange)
    return jsonify(services().prompt_presets.change(preset_id, current_identity(), name=body.name,
                                                    system_prompt=body.system_prompt, use=body.use))


@bp.delete("/<preset_id>")
@documented("Delete one of your presets", body=EmptyBody, answers={204: {}}, tags=["llm"])
def delete_preset(preset_id: str) -> tuple[str, int]:
    services().prompt_presets.delete(preset_id, current_identity())
    return "", 204

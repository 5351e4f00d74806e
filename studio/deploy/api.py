"""Settings → Updates: admin-only routes (an update restarts Studio for everyone)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import require_admin
from studio.deploy.service import UpdateService
from studio.services import services
from studio.web import parse_json

bp = Blueprint("updates", __name__, url_prefix="/api/updates")

Component = Literal["backend", "frontend", "models", "loras", "llm_models", "workflows"]


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    components: list[Component] = Field(min_length=1, max_length=6)
    wait_for_jobs: bool = True


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _service() -> UpdateService:
    return UpdateService(services().settings)


@bp.get("")
@documented("The installed version, the last check, the last update and its conflicts (admin)", tags=["updates"])
def update_status() -> Response:
    require_admin()
    return jsonify(_service().status())


@bp.post("/check")
@documented("Check the repository for a newer version now (admin)", body=CheckRequest, tags=["updates"])
def check_now() -> Response:
    require_admin()
    parse_json(CheckRequest)
    return jsonify(_service().check_now())


@bp.post("/apply")
@documented("Update the chosen components: maintenance mode, new release, restart, rollback on failure (admin)",
            body=ApplyRequest, answers={202: {"content": "application/json"}}, tags=["updates"])
def apply_update() -> tuple[Response, int]:
    identity = require_admin()
    body = parse_json(ApplyRequest)
    answer = _service().request_update(list(dict.fromkeys(body.components)), body.wait_for_jobs, identity.username)
    return jsonify(answer), 202

"""``/api/nodepacks``: the installed node packs (anyone signed in), and plan → install → set aside (admins)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import current_identity, require_admin
from studio.errors import BadRequest
from studio.services import services
from studio.web import EmptyBody, parse_json

bp = Blueprint("nodepacks", __name__, url_prefix="/api/nodepacks")


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["git", "registry"]
    url: str | None = Field(None, max_length=2000, description="git: https://… or a local repository")
    commit: str | None = Field(None, max_length=100, description="git: a 40-hex commit or a tag")
    id: str | None = Field(None, max_length=100, description="registry: the Comfy Registry id")
    version: str | None = Field(None, max_length=64, description="registry: a version (empty: the latest)")
    name: str | None = Field(None, max_length=100, description="the folder in custom_nodes (default: from the source)")


class InstallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=10, max_length=64)


@bp.get("")
@documented("Installed node packs: custom_nodes joined with ComfyUI's /object_info", tags=["nodepacks"])
def overview() -> Response:
    return jsonify(services().nodepacks.overview(admin=current_identity().is_admin))


@bp.post("/plan")
@documented("Fetch a node pack at a pinned commit or version and say what installing it will run (admin)",
            body=PlanRequest, answers={201: {}}, tags=["nodepacks"])
def plan() -> tuple[Response, int]:
    actor = require_admin()
    body = parse_json(PlanRequest)
    packs = services().nodepacks
    if body.source == "git":
        if not body.url or not body.commit:
            raise BadRequest("A git install needs the repository URL and the commit (or tag) to pin.",
                             fields={"url": "required", "commit": "required"})
        return jsonify(packs.plan_git(body.url, body.commit, body.name, actor=actor.user_id)), 201
    if not body.id:
        raise BadRequest("A registry install needs the node pack's registry id.", fields={"id": "required"})
    return jsonify(packs.plan_registry(body.id, body.version, body.name, actor=actor.user_id)), 201


@bp.post("/install")
@documented("Install a planned node pack: pip, install.py, move into custom_nodes, restart ComfyUI (admin)",
            body=InstallRequest, answers={202: {}}, tags=["nodepacks"])
def install() -> tuple[Response, int]:
    actor = require_admin()
    body = parse_json(InstallRequest)
    return jsonify(services().nodepacks.install(body.token, actor=actor.user_id, actor_name=actor.username)), 202


@bp.get("/install")
@documented("The running or last install and the end of its log (admin)", tags=["nodepacks"])
def install_log() -> Response:
    require_admin()
    return jsonify(services().nodepacks.log_tail())


@bp.post("/<name>/uninstall")
@documented("Set a node pack aside into custom_nodes/.disabled and restart ComfyUI (admin)", body=EmptyBody,
            tags=["nodepacks"])
def uninstall(name: str) -> Response:
    actor = require_admin()
    parse_json(EmptyBody)
    return jsonify(services().nodepacks.uninstall(name, actor_name=actor.username))

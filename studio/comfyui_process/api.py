"""``/api/comfyui/process``: the ComfyUI Studio runs itself, for admins only (its command line, its
folders and its log say a lot about the machine). Run-scope tokens are refused like any route
that does not allow them."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import require_admin
from studio.services import services
from studio.web import EmptyBody, parse_json, parse_query

bp = Blueprint("comfyui_process", __name__, url_prefix="/api/comfyui/process")

MAX_LOG_LINES = 2000


class LogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: int = Field(200, ge=1, le=MAX_LOG_LINES)


@bp.get("")
@documented("Studio's own ComfyUI: state, port, interpreter, command line, last error (admin)", tags=["comfyui"])
def process_status() -> Response:
    require_admin()
    return jsonify(services().comfyui_process.status())


@bp.post("/start")
@documented("Start ComfyUI from COMFYUI_DIR (a running one is left as it is; admin)", body=EmptyBody,
            answers={202: {}}, tags=["comfyui"])
def process_start() -> tuple[Response, int]:
    require_admin()
    parse_json(EmptyBody)
    return jsonify(services().comfyui_process.start()), 202


@bp.post("/stop")
@documented("Stop Studio's ComfyUI and everything it started (admin)", body=EmptyBody, tags=["comfyui"])
def process_stop() -> Response:
    require_admin()
    parse_json(EmptyBody)
    return jsonify(services().comfyui_process.stop())


@bp.post("/restart")
@documented("Restart Studio's ComfyUI (admin)", body=EmptyBody, answers={202: {}}, tags=["comfyui"])
def process_restart() -> tuple[Response, int]:
    identity = require_admin()
    parse_json(EmptyBody)
    process = services().comfyui_process
    process.restart(f"asked for by {identity.username}")
    return jsonify(process.status()), 202


@bp.get("/logs")
@documented("The last lines of ComfyUI's log (admin)", query=LogQuery, tags=["comfyui"])
def process_logs() -> Response:
    require_admin()
    query = parse_query(LogQuery)
    process = services().comfyui_process
    return jsonify({"lines": process.log.tail(query.lines), "file": str(process.log.path)})

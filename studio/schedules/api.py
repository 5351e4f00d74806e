"""``/api/schedules``: presets on a cron expression. Each person sees and changes their own; an
admin may list everyone's (``?all=true``) and act on any. Someone else's answers 404."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import current_identity
from studio.schedules.service import upcoming
from studio.services import services
from studio.web import EmptyBody, parse_json, parse_query

bp = Blueprint("schedules", __name__, url_prefix="/api/schedules")

PRESET_ID = r"^[A-Za-z0-9_-]{1,128}$"
Policy = Literal["skip", "run_once"]


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset_id: str = Field(pattern=PRESET_ID)
    cron: str = Field(max_length=120, description="5 fields: minute hour day-of-month month day-of-week")
    timezone: str = Field("UTC", max_length=64, description="IANA name, e.g. Europe/Paris")
    enabled: bool = True
    missed_policy: Policy = Field("skip", description="runs due while Studio was down: skip them, or run once")
    answers: dict[str, str] = Field(default_factory=dict, max_length=50,
                                    description="the preset's placeholder answers, by number")
    overrides: dict[str, Any] = Field(default_factory=dict, max_length=50)


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str | None = Field(None, max_length=120)
    timezone: str | None = Field(None, max_length=64)
    enabled: bool | None = None
    missed_policy: Policy | None = None
    answers: dict[str, str] | None = Field(None, max_length=50)
    overrides: dict[str, Any] | None = Field(None, max_length=50)


class ScheduleOut(BaseModel):
    id: int
    owner_id: int | None
    preset_id: str
    cron: str
    timezone: str
    enabled: bool
    missed_policy: Policy
    answers: dict[str, Any]
    overrides: dict[str, Any]
    next_runs: list[str] = Field(description="the next 3 fire times, in the schedule's time zone")
    next_due_at: str | None
    last_fired_at: str | None
    last_run_at: str | None
    last_jobs: list[str]
    last_error: str | None
    disabled_reason: str | None
    created_at: str | None
    updated_at: str | None


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


class ScheduleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str | None = Field(None, pattern=PRESET_ID, description="only this preset's schedules")
    all: bool = Field(False, description="admins: everyone's schedules")


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str = Field(max_length=120)
    timezone: str = Field("UTC", max_length=64)
    count: int = Field(3, ge=1, le=20)


class NextRuns(BaseModel):
    items: list[str]


class NextQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(3, ge=1, le=20)


@bp.get("")
@documented("Your schedules (an admin's ?all=true: everyone's)", query=ScheduleQuery, answers={200: ScheduleList},
            tags=["schedules"])
def list_schedules() -> Response:
    query = parse_query(ScheduleQuery)
    items = services().schedules.list_for(current_identity(), everyone=query.all, preset_id=query.preset)
    return jsonify({"items": items})


@bp.post("")
@documented("Schedule a preset on a cron expression", body=ScheduleCreate, answers={201: ScheduleOut},
            tags=["schedules"])
def create_schedule() -> tuple[Response, int]:
    body = parse_json(ScheduleCreate)
    made = services().schedules.create(current_identity(), **body.model_dump())
    return jsonify(made), 201


@bp.post("/preview")
@documented("The next fire times of a cron expression in a time zone, before saving it", body=PreviewBody,
            answers={200: NextRuns}, tags=["schedules"])
def preview() -> Response:
    body = parse_json(PreviewBody)
    studio = services()
    return jsonify({"items": upcoming(body.cron, body.timezone, studio.schedules.clock(), body.count)})


@bp.get("/<int:schedule_id>")
@documented("One schedule, with its next 3 run times", answers={200: ScheduleOut}, tags=["schedules"])
def get_schedule(schedule_id: int) -> Response:
    return jsonify(services().schedules.get(schedule_id, current_identity()))


@bp.get("/<int:schedule_id>/next")
@documented("A schedule's next run times", query=NextQuery, answers={200: NextRuns}, tags=["schedules"])
def next_runs(schedule_id: int) -> Response:
    query = parse_query(NextQuery)
    studio = services()
    found = studio.schedules.get(schedule_id, current_identity())
    if not found["enabled"]:
        return jsonify({"items": []})
    return jsonify({"items": upcoming(found["cron"], found["timezone"], studio.schedules.clock(), query.count)})


@bp.put("/<int:schedule_id>")
@documented("Change a schedule", body=ScheduleUpdate, answers={200: ScheduleOut}, tags=["schedules"])
def update_schedule(schedule_id: int) -> Response:
    body = parse_json(ScheduleUpdate)
    changes = body.model_dump(exclude_none=True)
    return jsonify(services().schedules.update(schedule_id, current_identity(), changes))


@bp.post("/<int:schedule_id>/<any(enable, disable):action>")
@documented("Enable or disable a schedule", body=EmptyBody, answers={200: ScheduleOut}, tags=["schedules"])
def toggle_schedule(schedule_id: int, action: str) -> Response:
    parse_json(EmptyBody)
    return jsonify(services().schedules.set_enabled(schedule_id, current_identity(), action == "enable"))


@bp.delete("/<int:schedule_id>")
@documented("Delete a schedule", answers={204: {"empty": True}}, tags=["schedules"])
def delete_schedule(schedule_id: int) -> tuple[str, int]:
    services().schedules.delete(schedule_id, current_identity())
    return "", 204

"""``/api/webhooks``: each person's own webhooks, their delivery log and a test delivery.

Every route acts on the caller's own webhooks only (an admin's too): someone else's answers 404,
exactly like one that does not exist. The secret is answered once, when it is made.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from studio.apidocs import documented
from studio.auth.guard import current_identity
from studio.services import services
from studio.web import EmptyBody, parse_json, parse_query
from studio.webhooks.service import WEBHOOK_EVENTS

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")

EventName = Literal["job.completed", "job.failed", "job.cancelled", "download.completed", "download.failed",
                    "schedule.fired", "schedule.failed"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, description="http(s) URL that receives the signed POSTs")
    events: list[EventName] = Field(min_length=1, max_length=len(WEBHOOK_EVENTS))
    enabled: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=2048)
    events: list[EventName] | None = Field(None, min_length=1, max_length=len(WEBHOOK_EVENTS))
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    enabled: bool
    created_at: str
    updated_at: str


class EventTypeOut(BaseModel):
    type: str
    description: str


class WebhookList(BaseModel):
    items: list[WebhookOut]
    event_types: list[EventTypeOut]


class WebhookCreated(BaseModel):
    webhook: WebhookOut
    secret: str = Field(description="shown only in this answer: keep it to check X-Studio-Signature")


class SecretOut(BaseModel):
    secret: str


class AttemptOut(BaseModel):
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: str
    next_attempt_at: str | None
    finished_at: str | None
    log: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class DeliveryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(50, ge=1, le=200)


@bp.get("")
@documented("Your webhooks, and the event types they may subscribe to", answers={200: WebhookList},
            tags=["webhooks"])
def list_webhooks() -> Response:
    items = services().webhooks.list_of(current_identity())
    kinds = [{"type": name, "description": text} for name, text in WEBHOOK_EVENTS.items()]
    return jsonify({"items": items, "event_types": kinds})


@bp.post("")
@documented("Create a webhook; the answer holds its signing secret, shown only this once", body=WebhookCreate,
            answers={201: WebhookCreated}, tags=["webhooks"])
def create_webhook() -> tuple[Response, int]:
    body = parse_json(WebhookCreate)
    made, secret = services().webhooks.create(current_identity(), url=body.url, events=list(body.events),
                                              enabled=body.enabled)
    return jsonify({"webhook": made, "secret": secret}), 201


@bp.get("/<int:webhook_id>")
@documented("One of your webhooks", answers={200: WebhookOut}, tags=["webhooks"])
def get_webhook(webhook_id: int) -> Response:
    return jsonify(services().webhooks.get(webhook_id, current_identity()))


@bp.put("/<int:webhook_id>")
@documented("Change a webhook's URL, events or enabled flag", body=WebhookUpdate, answers={200: WebhookOut},
            tags=["webhooks"])
def update_webhook(webhook_id: int) -> Response:
    body = parse_json(WebhookUpdate)
    changes = body.model_dump(exclude_none=True)
    return jsonify(services().webhooks.update(webhook_id, current_identity(), changes))


@bp.delete("/<int:webhook_id>")
@documented("Delete a webhook and its delivery log", answers={204: {"empty": True}}, tags=["webhooks"])
def delete_webhook(webhook_id: int) -> tuple[str, int]:
    services().webhooks.delete(webhook_id, current_identity())
    return "", 204


@bp.post("/<int:webhook_id>/secret")
@documented("Replace a webhook's signing secret; the new one is shown only this once", body=EmptyBody,
            answers={200: SecretOut}, tags=["webhooks"])
def rotate_secret(webhook_id: int) -> Response:
    parse_json(EmptyBody)
    return jsonify({"secret": services().webhooks.rotate_secret(webhook_id, current_identity())})


@bp.post("/<int:webhook_id>/test")
@documented("Queue a webhook.test delivery to this webhook", body=EmptyBody, answers={202: DeliveryOut},
            tags=["webhooks"])
def send_test(webhook_id: int) -> tuple[Response, int]:
    parse_json(EmptyBody)
    return jsonify(services().webhooks.send_test(webhook_id, current_identity())), 202


@bp.get("/<int:webhook_id>/deliveries")
@documented("The delivery log: the newest deliveries with every attempt", query=DeliveryQuery,
            answers={200: DeliveryList}, tags=["webhooks"])
def list_deliveries(webhook_id: int) -> Response:
    query = parse_query(DeliveryQuery)
    items = services().webhooks.deliveries(webhook_id, current_identity(), limit=query.limit)
    return jsonify({"items": items})

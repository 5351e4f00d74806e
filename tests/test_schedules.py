"""Schedules fired by an injected clock (never by sleeping): runs as the owner, validation naming the
field, other users kept out, a deleted preset disabling its schedule."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient

from studio.services import Services
from tests.conftest import signed_in_user
from tests.jobs_helpers import plant_workflow

PROMPT = """{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "timed"}}}"""
T0 = datetime(2030, 3, 7, 12, 0, tzinfo=UTC)


def preset(client: FlaskClient, services: Services) -> str:
    plant_workflow(services, "timed", PROMPT)
    answer = client.post("/api/presets", json={"id": "nightly", "name": "Nightly", "workflow_id": "timed"})
    assert answer.status_code in (200, 201), answer.get_json()
    return "nightly"


def test_a_due_schedule_runs_its_preset_as_its_owner_once(client: FlaskClient, app: Flask, services: Services) -> None:
    services.schedules.clock = lambda: T0
    preset_id = preset(client, services)
    bea = signed_in_user(app, client, "bea")
    made = bea.post("/api/schedules", json={"preset_id": preset_id, "cron": "0 9 * * *",
                                            "timezone": "America/New_York"})
    assert made.status_code == 201, made.get_json()
    schedule = made.get_json()
    # Each run at 09:00 local time, whatever the offset that day.
    assert all("T09:00:00" in when for when in schedule["next_runs"])
    assert len(schedule["next_runs"]) == 3

    due = datetime.fromisoformat(schedule["next_due_at"])
    assert services.schedules.tick(due.replace(hour=due.hour - 1)) == []
    assert services.schedules.tick(due) == [schedule["id"]]
    assert services.schedules.tick(due) == []  # never twice for one due time
    jobs = bea.get("/api/jobs").get_json()["items"]
    assert len(jobs) == 1
    assert jobs[0]["id"] in bea.get(f"/api/schedules/{schedule['id']}").get_json()["last_jobs"]


def test_bad_cron_and_time_zone_are_refused_naming_the_field(client: FlaskClient, services: Services) -> None:
    preset_id = preset(client, services)
    for body, field in (({"cron": "61 * * * *"}, "cron"), ({"cron": "* * *"}, "cron"),
                        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
                        ({"cron": "0 9 * * *", "timezone": "../etc/passwd"}, "timezone")):
        answer = client.post("/api/schedules", json={"preset_id": preset_id, **body})
        assert answer.status_code == 400, body
        assert field in answer.get_json()["error"]["details"]["fields"]
    assert client.get("/api/schedules").get_json()["items"] == []


def test_another_users_schedule_is_invisible_and_a_deleted_preset_disables_it(
    client: FlaskClient, app: Flask, services: Services
) -> None:
    preset_id = preset(client, services)
    made = client.post("/api/schedules", json={"preset_id": preset_id, "cron": "0 * * * *"}).get_json()
    cleo = signed_in_user(app, client, "cleo")
    assert cleo.get("/api/schedules?all=true").get_json()["items"] == []
    for answer in (cleo.get(f"/api/schedules/{made['id']}"), cleo.put(f"/api/schedules/{made['id']}", json={}),
                   cleo.post(f"/api/schedules/{made['id']}/disable", json={}),
                   cleo.delete(f"/api/schedules/{made['id']}")):
        assert answer.status_code == 404
    assert client.get(f"/api/schedules/{made['id']}").get_json()["enabled"] is True

    assert client.delete(f"/api/presets/{preset_id}").status_code in (200, 204)
    after = client.get(f"/api/schedules/{made['id']}").get_json()
    assert after["enabled"] is False
    assert "deleted" in after["disabled_reason"]

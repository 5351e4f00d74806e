"""Scheduled runs: presets on a cron expression, fired by an injected clock (never by sleeping),
owned by the schedule's owner, across restarts by their missed-run policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from studio.auth.models import Role
from studio.auth.service import Identity
from studio.config import Settings
from studio.db import upgrade
from studio.events.bus import Event
from studio.events.types import EVENT_TYPES
from studio.jobs.models import Job
from studio.schedules.tasks import JOB_TABLE, job_id
from studio.services import Services, build_services
from tests.conftest import signed_in_user
from tests.jobs_helpers import events as events  # noqa: PLC0414 - the fixture, for pytest to find
from tests.jobs_helpers import me
from tests.test_presets import make_preset
from tests.test_webhooks import allow_loopback, log_of, make_hook

# Friday noon in winter time: Rome is UTC+1; Sunday 29 March 2026 it moves to UTC+2.
NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "events.md"


@pytest.fixture
def clock(services: Services) -> list[datetime]:
    """The schedules' clock, set by the test: ``clock[0] = ...``. Only ``tick(now)`` fires anything."""
    moment = [NOW]
    services.schedules.clock = lambda: moment[0]
    return moment


def schedule(client: FlaskClient, preset_id: str, **fields: Any) -> dict[str, Any]:
    body = {"preset_id": preset_id, "cron": "0 9 * * *", "timezone": "Europe/Rome", "answers": {"0": "anime"},
            **fields}
    answer = client.post("/api/schedules", json=body)
    assert answer.status_code == 201, answer.get_json()
    return dict(answer.get_json())


def jobs_in(services: Services) -> list[Job]:
    with Session(services.engine) as session:
        return list(session.exec(select(Job).order_by(col(Job.created_at))))


def due(made: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(made["next_due_at"]))


def store_rows(services: Services) -> list[str]:
    with services.engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.text(f"SELECT id FROM {JOB_TABLE} ORDER BY id"))]


def test_a_schedule_is_created_listed_changed_switched_and_deleted_with_bad_input_named(
    client: FlaskClient, clock: list[datetime]
) -> None:
    preset = make_preset(client)
    for bad, field in (({"cron": "every morning"}, "cron"), ({"cron": "61 9 * * *"}, "cron"),
                       ({"timezone": "Mars/Olympus_Mons"}, "timezone"), ({"timezone": "../etc/passwd"}, "timezone"),
                       ({"missed_policy": "twice"}, "missed_policy")):
        refused = client.post("/api/schedules", json={"preset_id": preset["id"], "cron": "0 9 * * *", **bad})
        assert refused.status_code == 400, (bad, refused.get_json())
        assert field in refused.get_json()["error"]["details"]["fields"], refused.get_json()
    missing = client.post("/api/schedules", json={"preset_id": "no-such-preset", "cron": "0 9 * * *"})
    assert missing.status_code == 404
    assert client.get("/api/schedules").get_json()["items"] == []  # nothing refused was kept

    made = schedule(client, preset["id"])
    assert (made["cron"], made["timezone"], made["missed_policy"], made["enabled"]) == (
        "0 9 * * *", "Europe/Rome", "skip", True)
    assert [item["id"] for item in client.get(f"/api/schedules?preset={preset['id']}").get_json()["items"]] == [
        made["id"]]
    assert client.get("/api/schedules?preset=other").get_json()["items"] == []

    changed = client.put(f"/api/schedules/{made['id']}", json={"cron": "30 7 * * 1", "missed_policy": "run_once"})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["next_runs"][0] == "2026-03-30T07:30:00+02:00"  # Monday, summer time
    bad_change = client.put(f"/api/schedules/{made['id']}", json={"timezone": "Nowhere/Land"})
    assert bad_change.status_code == 400
    assert "timezone" in bad_change.get_json()["error"]["details"]["fields"]
    assert client.get(f"/api/schedules/{made['id']}").get_json()["cron"] == "30 7 * * 1"  # unchanged by the 400

    off = client.post(f"/api/schedules/{made['id']}/disable", json={}).get_json()
    assert (off["enabled"], off["next_runs"], off["next_due_at"]) == (False, [], None)
    on = client.post(f"/api/schedules/{made['id']}/enable", json={}).get_json()
    assert on["enabled"] is True
    assert len(on["next_runs"]) == 3

    assert client.delete(f"/api/schedules/{made['id']}").status_code == 204
    assert client.get(f"/api/schedules/{made['id']}").status_code == 404
    assert client.get("/api/schedules").get_json()["items"] == []


def test_the_next_three_runs_are_in_the_schedules_own_time_zone(client: FlaskClient, clock: list[datetime]) -> None:
    preset = make_preset(client)
    rome = schedule(client, preset["id"], timezone="Europe/Rome")
    utc = schedule(client, preset["id"], timezone="UTC")
    # 9:00 in Rome is 8:00 UTC until the clocks change on the 29th, then 7:00 UTC.
    assert rome["next_runs"] == ["2026-03-28T09:00:00+01:00", "2026-03-29T09:00:00+02:00",
                                 "2026-03-30T09:00:00+02:00"]
    assert utc["next_runs"] == ["2026-03-28T09:00:00+00:00", "2026-03-29T09:00:00+00:00",
                                "2026-03-30T09:00:00+00:00"]
    assert due(rome) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
    preview = client.post("/api/schedules/preview", json={"cron": "0 9 * * *", "timezone": "Europe/Rome"})
    assert preview.get_json()["items"] == rome["next_runs"]
    assert client.get(f"/api/schedules/{rome['id']}/next?count=1").get_json()["items"] == rome["next_runs"][:1]

    # Cron's weekdays, not APScheduler 3's: 1-5 is Monday to Friday, 0 and 7 are Sunday.
    weekdays = schedule(client, preset["id"], cron="0 9 * * 1-5", timezone="UTC")["next_runs"]
    assert weekdays == ["2026-03-30T09:00:00+00:00",
                        "2026-03-31T09:00:00+00:00", "2026-04-01T09:00:00+00:00"]
    sundays = client.post("/api/schedules/preview", json={"cron": "0 9 * * 7", "count": 2}).get_json()["items"]
    assert sundays == ["2026-03-29T09:00:00+00:00", "2026-04-05T09:00:00+00:00"]
    both = client.post("/api/schedules/preview", json={"cron": "0 9 1 * 1"})
    assert both.status_code == 400  # cron's "either" would silently become "both": refused instead
    assert "cron" in both.get_json()["error"]["details"]["fields"]


def test_a_due_tick_queues_exactly_one_job_owned_by_the_schedules_owner(
    app: Flask, client: FlaskClient, services: Services, clock: list[datetime], events: list[Event]
) -> None:
    alice = signed_in_user(app, client, "alice")
    allow_loopback(client)
    hook, _ = make_hook(alice, "http://127.0.0.1:9/hook", ["schedule.fired"])
    preset = make_preset(alice)
    made = schedule(alice, preset["id"])
    # The admin changes it: it stays Alice's, and so do its runs.
    assert client.put(f"/api/schedules/{made['id']}", json={"missed_policy": "run_once"}).status_code == 200
    moment = due(made)

    assert services.schedules.tick(moment - timedelta(seconds=1)) == []
    assert jobs_in(services) == []
    assert services.schedules.tick(moment) == [made["id"]]
    [job] = jobs_in(services)
    assert job.owner_id == me(alice)
    assert job.params["positive_prompt"] == "a cat, anime"
    assert services.schedules.tick(moment) == []  # the same moment again: nothing more
    assert services.schedules.tick(moment + timedelta(seconds=30)) == []
    assert len(jobs_in(services)) == 1
    assert [item["id"] for item in alice.get("/api/jobs").get_json()["items"]] == [job.id]

    after = alice.get(f"/api/schedules/{made['id']}").get_json()
    assert after["last_jobs"] == [job.id]
    assert after["last_fired_at"] == moment.isoformat()
    assert after["last_error"] is None
    assert due(after) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # tomorrow 9:00 Rome, summer time
    fired = [event.payload for event in events if event.type == "schedules/fired"]
    assert fired == [{"id": made["id"], "preset_id": preset["id"], "ran": True, "missed": 0, "jobs": [job.id]}]
    [delivery] = log_of(alice, hook["id"])  # Alice's webhook is told, once
    assert delivery["type"] == "schedule.fired"


def test_someone_elses_private_preset_can_never_be_scheduled(
    app: Flask, client: FlaskClient, services: Services, clock: list[datetime]
) -> None:
    alice = signed_in_user(app, client, "alice")
    bob = signed_in_user(app, client, "bob")
    secret = make_preset(alice, name="Alice's secret", private=True)
    refused = bob.post("/api/schedules", json={"preset_id": secret["id"], "cron": "0 9 * * *"})
    assert refused.status_code == 404
    assert "Alice's" not in refused.get_data(as_text=True)  # its name (the id is what Bob typed)

    # Shared when Bob scheduled it, private afterwards: his schedule never runs it.
    shared = make_preset(alice, name="Shared for now")
    bobs = schedule(bob, shared["id"])
    assert alice.put(f"/api/presets/{shared['id']}", json={"private": True}).status_code == 200
    assert services.schedules.tick(due(bobs)) == []
    assert jobs_in(services) == []
    after = bob.get(f"/api/schedules/{bobs['id']}").get_json()
    assert after["enabled"] is False
    assert "no longer shared" in after["disabled_reason"]
    assert bob.post(f"/api/schedules/{bobs['id']}/enable", json={}).status_code == 404  # not back on either
    assert client.post(f"/api/schedules/{bobs['id']}/enable", json={}).status_code == 404  # not even by an admin
    assert services.schedules.tick(due(bobs) + timedelta(days=1)) == []
    assert jobs_in(services) == []


def test_another_user_cannot_see_change_or_delete_a_schedule_but_an_admin_can(
    app: Flask, client: FlaskClient, services: Services, clock: list[datetime]
) -> None:
    alice = signed_in_user(app, client, "alice")
    bob = signed_in_user(app, client, "bob")
    made = schedule(alice, make_preset(alice)["id"])
    url = f"/api/schedules/{made['id']}"
    assert bob.get("/api/schedules").get_json()["items"] == []
    assert bob.get("/api/schedules?all=true").get_json()["items"] == []  # not an admin: still only his own
    for answer in (bob.get(url), bob.get(f"{url}/next"), bob.put(url, json={"cron": "* * * * *"}),
                   bob.post(f"{url}/disable", json={}), bob.post(f"{url}/enable", json={}), bob.delete(url)):
        assert answer.status_code == 404, answer.get_json()
        assert answer.get_json()["error"]["code"] == "schedule_not_found"
    kept = alice.get(url).get_json()
    assert (kept["cron"], kept["enabled"]) == ("0 9 * * *", True)

    assert [item["id"] for item in client.get("/api/schedules?all=true").get_json()["items"]] == [made["id"]]
    assert client.get(url).status_code == 200
    assert client.post(f"{url}/disable", json={}).get_json()["enabled"] is False
    assert client.delete(url).status_code == 204
    assert alice.get("/api/schedules").get_json()["items"] == []


def test_missed_runs_across_a_restart_are_skipped_or_run_once_by_policy(
    client: FlaskClient, services: Services, settings: Settings, clock: list[datetime]
) -> None:
    preset = make_preset(client)
    skip = schedule(client, preset["id"], missed_policy="skip")
    once = schedule(client, preset["id"], missed_policy="run_once")
    services.schedules.start()
    try:
        assert store_rows(services) == sorted([job_id(skip["id"]), job_id(once["id"]), "schedules-sweep"])
    finally:
        services.schedules.stop()

    # Studio is down from Friday noon to Monday noon: three 9:00 runs were due meanwhile.
    reborn = build_services(settings)
    upgrade(reborn.engine)
    reborn.schedules.clock = lambda: datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    reborn.schedules.start()  # fires what was missed, at its clock's now
    try:
        [job] = jobs_in(reborn)
        assert reborn.schedules.tick() == []
        assert len(jobs_in(reborn)) == 1
        views = {item["id"]: item for item in reborn.schedules.list_for(_identity(reborn), everyone=True)}
        assert views[once["id"]]["last_jobs"] == [job.id]
        assert views[once["id"]]["last_fired_at"] == "2026-03-30T07:00:00+00:00"  # the latest missed one
        assert views[skip["id"]]["last_jobs"] == []
        assert views[skip["id"]]["last_fired_at"] is None
        for view in views.values():  # both due again tomorrow, nothing left over
            assert view["next_due_at"] == "2026-03-31T07:00:00+00:00"
        assert store_rows(reborn) == sorted([job_id(skip["id"]), job_id(once["id"]), "schedules-sweep"])
    finally:
        reborn.schedules.stop()
        reborn.engine.dispose()

    third = build_services(settings)  # a third start: replace_existing, still one row per schedule
    third.schedules.clock = lambda: datetime(2026, 3, 30, 12, 1, tzinfo=UTC)
    third.schedules.start()
    try:
        assert store_rows(third) == sorted([job_id(skip["id"]), job_id(once["id"]), "schedules-sweep"])
        assert len(jobs_in(third)) == 1
    finally:
        third.schedules.stop()
        third.engine.dispose()


def _identity(built: Services) -> Identity:
    """Someone allowed to list everyone's schedules (reading only: it acts on nothing)."""
    return Identity(user_id=0, username="admin", role=Role.ADMIN, via="tests")


def test_a_schedule_whose_preset_is_deleted_disables_itself_with_an_event(
    client: FlaskClient, services: Services, clock: list[datetime], events: list[Event]
) -> None:
    preset = make_preset(client)
    made = schedule(client, preset["id"])
    services.schedules.start()
    try:
        assert job_id(made["id"]) in store_rows(services)
        assert client.delete(f"/api/presets/{preset['id']}").status_code in (200, 204)
        after = client.get(f"/api/schedules/{made['id']}").get_json()
        assert after["enabled"] is False
        assert preset["id"] in after["disabled_reason"]
        assert job_id(made["id"]) not in store_rows(services)  # APScheduler no longer wakes it
    finally:
        services.schedules.stop()
    [changed] = [event.payload for event in events if event.type == "schedules/changed"
                 and event.payload["action"] == "disabled"]
    assert (changed["id"], changed["enabled"]) == (made["id"], False)
    assert preset["id"] in changed["reason"]
    assert "schedules/changed" in EVENT_TYPES
    assert "`schedules/changed`" in DOCS.read_text()
    assert client.post(f"/api/schedules/{made['id']}/enable", json={}).status_code == 404
    assert services.schedules.tick(due(made)) == []
    assert jobs_in(services) == []


def test_a_deleted_owners_schedules_are_disabled(
    app: Flask, client: FlaskClient, services: Services, clock: list[datetime]
) -> None:
    alice = signed_in_user(app, client, "alice")
    made = schedule(alice, make_preset(alice)["id"])
    assert client.delete(f"/api/users/{me(alice)}").status_code in (200, 204)
    [after] = client.get("/api/schedules?all=true").get_json()["items"]
    assert after["id"] == made["id"]
    assert (after["enabled"], after["owner_id"]) == (False, None)
    assert "owner" in after["disabled_reason"]
    switched = client.post(f"/api/schedules/{made['id']}/enable", json={})
    assert switched.status_code == 409, switched.get_json()
    assert services.schedules.tick(due(made)) == []
    assert jobs_in(services) == []

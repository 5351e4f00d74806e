"""A deleted user's jobs: stopped in ComfyUI, never shown to whoever gets the user's id next, nor to
anyone but admins; a job left without an owner never runs.

From a second outside review, tested as a class on the real stack."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from studio.events.hub import ClientQueue
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, me, plant_job, resize_prompt, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer

FINISHED = {"completed", "failed", "cancelled", "interrupted"}


def _about(queue: ClientQueue, job_ids: set[str]) -> list[dict[str, Any]]:
    found = []
    for frame in queue.get_batch(0.05):
        event = json.loads(frame)
        if isinstance(event.get("payload"), dict) and event["payload"].get("id") in job_ids:
            found.append(event)
    return found


def test_deleting_a_user_stops_their_jobs_and_nobody_but_admins_sees_them(
    app: Any, client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    services.users.on_deleted(services.jobs.owner_deleted)  # a second call, if build_services wires it, is a no-op
    carol = signed_in_user(app, client, "carol")
    bob = signed_in_user(app, client, "bob")
    bob_id, carol_id = me(bob), me(carol)
    comfy_server.step_delay_s = 0.2
    jobs = run(bob, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 50}, count=3)  # running, in ComfyUI, waiting
    ids = {job["id"] for job in jobs}
    wait_status(client, jobs[0]["id"], "running")
    admin_feed = services.hub.connect(is_admin=True)
    carol_feed = services.hub.connect(user_id=carol_id)
    reused_feed = None
    try:
        with caplog.at_level(logging.INFO, logger="studio.jobs.service"):
            assert client.delete(f"/api/users/{bob_id}").status_code == 200
        said = [m for m in caplog.messages if m.startswith(f"user {bob_id} deleted: ")]
        stopped = [int(n) for n in re.findall(r"(\d+) running jobs stopped", " ".join(said))]
        assert stopped, said
        assert stopped[0] >= 1, said  # stopped at once, not left to the orphan sweep
        # Whoever gets bob's id next (SQLite may hand it out again) sees nothing of his from now on.
        reused_feed = services.hub.connect(user_id=bob_id)
        ends = {job_id: wait_status(client, job_id, FINISHED, timeout=10)["status"] for job_id in ids}
        assert ends[jobs[0]["id"]] == "interrupted"  # stopped in ComfyUI, not left running for nobody
        assert set(ends.values()) <= {"interrupted", "cancelled"}
        assert comfy_server.worker is not None
        wait_until(lambda: not comfy_server.worker.running and not comfy_server.worker.pending)  # type: ignore[union-attr]
        admin_saw = _about(admin_feed, ids)
        assert {e["payload"]["id"] for e in admin_saw if e["type"] == "jobs/update"} == ids
        assert not _about(carol_feed, ids)
        assert not _about(reused_feed, ids)
    finally:
        for feed in (admin_feed, carol_feed, reused_feed):
            if feed is not None:
                services.hub.disconnect(feed)

    dave = signed_in_user(app, client, "dave")  # SQLite hands out bob's old id again
    for person in (carol, dave):
        assert not {j["id"] for j in person.get("/api/jobs").get_json()["items"]} & ids
        assert person.get(f"/api/jobs/{jobs[0]['id']}").status_code == 404
        queue = person.get("/api/queue").get_json()
        assert not {j["id"] for j in queue["running"] + queue["queued"]} & ids
    listed = {j["id"]: j for j in client.get("/api/jobs").get_json()["items"]}
    assert ids <= set(listed)
    assert all(listed[job_id]["owner_id"] is None for job_id in ids)


def test_jobs_left_without_an_owner_never_run_and_are_cancelled_at_start(
    client: FlaskClient, services: Services
) -> None:
    image = upload_image(client)
    admin_id = me(client)
    job_id = plant_job(services.engine, owner_id=admin_id, prompt=resize_prompt(image))
    with Session(services.engine) as session:  # as an older Studio left it after deleting its owner
        from studio.jobs.models import Job

        row = session.get(Job, job_id)
        assert row is not None
        row.owner_id = None
        session.add(row)
        session.commit()
    running = Runtime(client.application, services)
    running.start_in_thread()
    try:
        assert wait_status(client, job_id, FINISHED)["status"] == "cancelled"
    finally:
        running.stop()

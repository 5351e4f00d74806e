"""The job queue as several people share it: "cancel all waiting" touches only the caller's jobs (an
admin's, everyone's), a finished job stays as it finished whatever arrives later, and two jobs in
ComfyUI at once both complete across a Studio restart and a dropped socket.

Written against the survivors of ``./dev.sh mutate jobs/service`` and ``jobs/engine``."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.db import upgrade
from studio.events.bus import Event
from studio.jobs.models import JobStatus
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, signed_in_admin, signed_in_user, wait_until
from tests.jobs_helpers import events as events  # the fixture, under its own name for pytest
from tests.jobs_helpers import run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer


def statuses(browser: FlaskClient, jobs: list[dict]) -> list[str]:
    return [browser.get(f"/api/jobs/{job['id']}").get_json()["status"] for job in jobs]


def test_cancel_all_waiting_touches_only_the_callers_own_jobs(
    app: Flask, client: FlaskClient, services: Services, events: list[Event]
) -> None:
    assert client.post("/api/queue/pause").status_code == 200  # everything stays waiting
    gina, hal = signed_in_user(app, client, "gina"), signed_in_user(app, client, "hal")
    admins = run(client, "image-resize", {"image": upload_image(client)})
    ginas = run(gina, "image-resize", {"image": upload_image(gina)}, count=2)
    hals = run(hal, "image-resize", {"image": upload_image(hal)})
    events.clear()

    assert gina.post("/api/queue/cancel-waiting", json={}).get_json() == {"cancelled": 2}
    assert statuses(gina, ginas) == ["cancelled", "cancelled"]
    assert statuses(client, admins + hals) == ["queued", "queued"]
    assert {e.payload["id"] for e in events if e.type == "jobs/update"} == {job["id"] for job in ginas}
    assert gina.post("/api/queue/cancel-waiting", json={}).get_json() == {"cancelled": 0}  # nothing left of hers
    assert statuses(client, admins + hals) == ["queued", "queued"]

    assert client.post("/api/queue/cancel-waiting", json={}).get_json() == {"cancelled": 2}  # an admin: everyone's
    assert statuses(client, admins + hals) == ["cancelled", "cancelled"]
    cancelled = client.get(f"/api/jobs/{hals[0]['id']}").get_json()
    assert cancelled["finished_at"] is not None


def test_a_finished_job_stays_as_it_finished_whatever_comes_later(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    events: list[Event],
) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    wait_until(lambda: any(e.type == "jobs/finished" and e.payload["id"] == job["id"] for e in events))
    events.clear()

    for status in (JobStatus.FAILED, JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.CANCELLED):
        assert services.jobs.mark(job["id"], status, error={"message": "late"}, note="late") is None
    assert services.jobs.put_back(job["id"], "late") is None
    services.job_engine.reconcile()
    comfy_server.drop_sockets()  # a reconnect reconciles every job ComfyUI still remembers
    [later] = run(client, "image-resize", {"image": upload_image(client)})
    assert wait_status(client, later["id"])["status"] == "completed"

    again = client.get(f"/api/jobs/{job['id']}").get_json()
    assert again == done
    assert [e for e in events if e.payload.get("id") == job["id"]] == []


def test_a_cancelled_job_cannot_be_cancelled_or_moved_again(client: FlaskClient, services: Services) -> None:
    client.post("/api/queue/pause")
    job, other = run(client, "image-resize", {"image": upload_image(client)}, count=2)
    assert client.post(f"/api/jobs/{job['id']}/cancel").get_json()["status"] == "cancelled"
    before = client.get(f"/api/jobs/{job['id']}").get_json()
    again = client.post(f"/api/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.get_json()["error"]["message"].endswith(".")
    moved = client.post(f"/api/jobs/{job['id']}/front")
    assert moved.status_code == 409
    assert moved.get_json()["error"] == {"code": "job_not_queued", "message": "Only a waiting job can be moved.",
                                         "details": None}
    assert client.get(f"/api/jobs/{job['id']}").get_json() == before
    assert [j["id"] for j in client.get("/api/queue").get_json()["queued"]] == [other["id"]]


def test_a_finished_job_alone_is_not_moved_to_the_front_either(client: FlaskClient, runtime: Runtime) -> None:
    """With nothing else waiting, "to front" of a finished job is the same refusal as with a queue."""
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    done = wait_status(client, job["id"])
    assert client.get("/api/queue").get_json()["queued"] == []
    moved = client.post(f"/api/jobs/{job['id']}/front")
    assert moved.status_code == 409
    assert moved.get_json()["error"]["code"] == "job_not_queued"
    assert client.get(f"/api/jobs/{job['id']}").get_json() == done


def test_two_jobs_in_comfyui_at_once_both_complete_across_a_studio_restart_and_a_dropped_socket(
    settings: Settings, services: Services, comfy_server: ComfyUITestServer
) -> None:
    first = Runtime(create_app(settings, services), services)
    first.start_in_thread()
    client = signed_in_admin(first.app)
    comfy_server.node_delays["ImageScale"] = 1.0
    image = upload_image(client)
    running, waiting = run(client, "image-resize", {"image": image, "width": 20}, count=2)
    wait_status(client, running["id"], "running")
    wait_status(client, waiting["id"], "submitted")  # in ComfyUI's queue behind the first
    first.stop()  # Studio goes away; ComfyUI keeps both

    reborn = build_services(settings)
    upgrade(reborn.engine)
    second = Runtime(create_app(settings, reborn), reborn)
    second.start_in_thread()
    try:
        again = second.app.test_client()
        answer = again.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD})
        assert answer.status_code == 200
        wait_until(lambda: reborn.job_engine.stream.client_id is not None, timeout=10)
        comfy_server.drop_sockets()
        for job in (running, waiting):
            done = wait_status(again, job["id"], timeout=20)
            assert done["status"] == "completed", done
            assert len(done["outputs"]) == 1
            assert done["error"] is None
            assert [entry["status"] for entry in done["timeline"]].count("completed") == 1
    finally:
        second.stop()

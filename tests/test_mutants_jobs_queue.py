"""Retry and queue steering as a person sees them, where mutation testing found nothing pinned
them down (docs/development.md, "Mutation testing"): what a retry records and where its files go,
what the queue lists as running, who may move what ahead, and what the answers say."""

from __future__ import annotations

import logging
import math

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.events.bus import Event
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user
from tests.jobs_helpers import SAMPLER_PARAMS, me, plant_job, resize_prompt, run, upload_image, wait_status
from tests.jobs_helpers import events as events  # the fixture, under its own name for pytest
from tests.servers.comfyui import ComfyUITestServer


def test_a_retry_says_whose_retry_it_is_and_saves_into_its_own_folder(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
    wait_status(client, job["id"])
    answer = client.post(f"/api/jobs/{job['id']}/retry")
    assert answer.status_code == 201
    again = answer.get_json()
    assert again["id"] != job["id"]
    assert again["status"] == "queued"
    [first] = again["timeline"]
    assert first["status"] == "queued"
    assert first["note"] == f"retry of {job['id']} by admin"
    done = wait_status(client, again["id"])
    assert done["status"] == "completed"
    sent = next(body for body in comfy_server.prompts_received if body.get("prompt_id") == again["id"])
    prefixes = [node["inputs"]["filename_prefix"] for node in sent["prompt"].values()
                if "filename_prefix" in node["inputs"]]
    assert prefixes
    assert all(prefix.startswith(f"studio/{again['id']}/") for prefix in prefixes)
    [output] = client.get(f"/api/jobs/{again['id']}").get_json()["outputs"]
    served = client.get(output["url"])
    served.close()
    assert served.status_code == 200


def test_a_retry_of_unusable_stored_values_is_refused_in_words_and_unreadable_ones_use_the_defaults(
    client: FlaskClient, services: Services,
) -> None:
    image = upload_image(client)
    owner = me(client)
    poisoned = plant_job(services.engine, owner_id=owner, prompt=resize_prompt(image),
                         params={"image": image, "width": math.nan}, status="failed")
    refused = client.post(f"/api/jobs/{poisoned}/retry")
    assert refused.status_code == 400
    assert refused.get_json()["error"]["message"].startswith("This job's parameters cannot be used again: width ")
    unreadable = plant_job(services.engine, owner_id=owner, prompt=resize_prompt(image), status="failed")
    from sqlmodel import Session

    from studio.jobs.models import Job

    with Session(services.engine) as session:  # stored by an older Studio as a list, not an object
        row = session.get(Job, unreadable)
        assert row is not None
        row.params = ["width", 16]  # type: ignore[assignment]
        session.add(row)
        session.commit()
    answer = client.post(f"/api/jobs/{unreadable}/retry")
    assert answer.status_code == 201  # what cannot be read is left out: the workflow's defaults run
    assert answer.get_json()["params"] == {}


def test_the_queue_lists_the_running_job_apart_from_the_waiting_ones(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.node_delays["ImageScale"] = 1.0
    image = upload_image(client)
    [running] = run(client, "image-resize", {"image": image, "width": 20})
    wait_status(client, running["id"], "running")
    client.post("/api/queue/pause")
    [waiting] = run(client, "image-resize", {"image": image, "width": 20})
    state = client.get("/api/queue").get_json()
    assert [job["id"] for job in state["running"]] == [running["id"]]
    assert [job["id"] for job in state["queued"]] == [waiting["id"]]
    client.post("/api/queue/resume")
    wait_status(client, waiting["id"])


def test_moving_is_refused_in_words_with_codes_a_client_can_act_on(app: Flask, client: FlaskClient) -> None:
    client.post("/api/queue/pause")
    image = upload_image(client)
    [alone] = run(client, "image-resize", {"image": image})
    fronted = client.post(f"/api/jobs/{alone['id']}/front")  # the only waiting job: already in front
    assert fronted.status_code == 200
    assert fronted.get_json()["id"] == alone["id"]
    assert fronted.get_json()["status"] == "queued"
    [mine] = run(client, "image-resize", {"image": image})
    client.post(f"/api/jobs/{alone['id']}/cancel")
    behind_finished = client.post(f"/api/jobs/{mine['id']}/move", json={"before": alone["id"]})
    assert behind_finished.status_code == 409
    assert behind_finished.get_json()["error"] == {"code": "job_not_queued", "details": None,
                                                   "message": "The job to move before is not waiting."}
    ivy = signed_in_user(app, client, "ivy")
    [hers] = run(ivy, "image-resize", {"image": upload_image(ivy)})
    ahead = ivy.post(f"/api/jobs/{hers['id']}/move", json={"before": mine["id"]})
    assert ahead.status_code == 403
    assert ahead.get_json()["error"]["code"] == "admin_only"


def test_an_admins_to_front_goes_before_the_turn_of_someone_served_longer_ago(
    app: Flask, client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)
    [served] = run(client, "image-resize", {"image": image})
    wait_status(client, served["id"])  # the admin has had a turn; ivy has not
    client.post("/api/queue/pause")
    ivy = signed_in_user(app, client, "ivy")
    [hers] = run(ivy, "image-resize", {"image": upload_image(ivy)})
    first, urgent = run(client, "image-resize", {"image": image}, count=2)
    assert client.post(f"/api/jobs/{urgent['id']}/front").status_code == 200
    before = len(comfy_server.prompts_received)
    client.post("/api/queue/resume")
    for job in (urgent, hers, first):
        wait_status(client, job["id"])
    order = [body.get("prompt_id") for body in comfy_server.prompts_received[before:]]
    assert order[0] == urgent["id"]  # not ivy's, though round-robin would pick her next


def test_pausing_tells_every_page_who_paused_and_resuming_likewise(
    client: FlaskClient, events: list[Event]
) -> None:
    client.post("/api/queue/pause")
    client.post("/api/queue/resume")
    said = [event.payload for event in events if event.type == "queue/state"]
    assert said == [{"paused": True, "actor": "admin"}, {"paused": False, "actor": "admin"}]


def test_deleting_a_user_also_cancels_jobs_an_earlier_deletion_left_without_an_owner(
    app: Flask, client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    events: list[Event], caplog: pytest.LogCaptureFixture,
) -> None:
    comfy_server.step_delay_s = 0.1
    image = upload_image(client)
    [admins] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 100})  # ten seconds in ComfyUI
    wait_status(client, admins["id"], "running")
    client.post("/api/queue/pause")
    orphan = plant_job(services.engine, owner_id=None, prompt=resize_prompt(image))  # type: ignore[arg-type]
    ivy = signed_in_user(app, client, "ivy")
    ivy_id = me(ivy)
    [hers] = run(ivy, "image-resize", {"image": upload_image(ivy)})
    with caplog.at_level(logging.INFO, logger="studio.jobs.service"):
        assert client.delete(f"/api/users/{ivy_id}").status_code == 200
    assert client.get(f"/api/jobs/{admins['id']}").get_json()["status"] == "running"  # still, and untouched
    for job_id in (orphan, hers["id"]):
        job = client.get(f"/api/jobs/{job_id}").get_json()
        assert job["status"] == "cancelled", job
        assert job["timeline"][-1]["status"] == "cancelled"
        assert job["timeline"][-1]["note"] == "its owner was deleted"
    finished = {event.payload["id"]: event for event in events if event.type == "jobs/finished"}
    assert finished[hers["id"]].payload["status"] == "cancelled"
    assert finished[hers["id"]].user_id is None  # admins only: nobody owns it any more
    assert f"user {ivy_id} deleted: 2 waiting jobs cancelled, 0 running jobs stopped" in caplog.messages
    client.post("/api/queue/resume")
    assert wait_status(client, admins["id"], timeout=30)["status"] == "completed"  # nobody else's job is stopped

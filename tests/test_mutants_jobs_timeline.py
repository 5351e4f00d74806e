"""What a job's timeline and refusals tell a person, pinned down where mutation testing found
nothing did (see docs/development.md, "Mutation testing"): each entry's time, how a retry reads, the
code a client can act on."""

from __future__ import annotations

import logging
import subprocess
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.events.bus import Event
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import events as events  # the fixture, under its own name for pytest
from tests.jobs_helpers import me, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer


def test_one_refused_post_reads_as_one_plain_retry_with_its_time(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    services.job_engine.backoff.base_s = 0.02
    comfy_server.drop_prompt_posts = 1
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
    done = wait_status(client, job["id"], timeout=30)
    assert done["status"] == "completed"
    retry = done["timeline"][1]
    assert retry["status"] == "queued"
    assert retry["tries"] == 1
    assert "tries)" not in retry["note"]  # one try is not "(1 tries)"
    times = [datetime.fromisoformat(entry["at"]) for entry in done["timeline"]]
    assert all(time.utcoffset() == timedelta(0) for time in times)  # in UTC, whatever the server's zone
    assert times == sorted(times)  # every entry says when, in order


def test_deleting_a_waiting_job_is_refused_with_a_code_and_keeps_it(client: FlaskClient) -> None:
    client.post("/api/queue/pause")
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    answer = client.delete(f"/api/jobs/{job['id']}")
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "job_active"
    assert client.get(f"/api/jobs/{job['id']}").get_json()["status"] == "queued"


def test_files_that_cannot_be_removed_are_named_in_the_log_with_the_reason(
    client: FlaskClient, runtime: Runtime, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
    wait_status(client, job["id"])
    folder = services.data_dir.outputs / "studio" / job["id"]
    wait_until(lambda: list(folder.glob(".thumbs/*.webp")))  # the thumbnail worker is done with it
    stuck = next(path for path in folder.iterdir() if path.is_file())
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
        pytest.skip("this file system cannot make a file immutable (chattr +i)")
    try:
        with caplog.at_level(logging.WARNING, logger="studio.jobs.service"):
            assert client.delete(f"/api/jobs/{job['id']}").status_code in (200, 204)
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
        [said] = [r.getMessage() for r in caplog.records if "were not removed" in r.getMessage()]
        reason = f"[Errno 1] Operation not permitted: {stuck.name!r}"
        assert said == f"the files of job {job['id']} were not removed: {reason}"
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=False)


def test_a_finished_job_says_when_it_finished_and_its_owner_is_told(
    app: Flask, client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, events: list[Event]
) -> None:
    comfy_server.node_delays["ImageScale"] = 0.5
    ivy = signed_in_user(app, client, "ivy")
    [job] = run(ivy, "image-resize", {"image": upload_image(ivy), "width": 20})
    running = wait_status(ivy, job["id"], "running")
    assert running["finished_at"] is None
    done = wait_status(ivy, job["id"])
    assert done["status"] == "completed"
    assert datetime.fromisoformat(done["finished_at"]) >= datetime.fromisoformat(done["submitted_at"])
    def finished_events() -> list[Event]:  # published just after the status is stored
        return [event for event in events if event.type == "jobs/finished" and event.payload["id"] == job["id"]]

    wait_until(finished_events)
    [finished] = finished_events()
    assert finished.user_id == me(ivy)  # her own pages hear of it, not only admins'
    assert finished.payload["status"] == "completed"
    assert finished.payload["workflow"] == done["workflow_name"]  # what the Activity panel names it by


def test_one_job_says_who_ran_it_and_a_batch_counts_its_jobs(client: FlaskClient) -> None:
    client.post("/api/queue/pause")
    image = upload_image(client)
    [single] = run(client, "image-resize", {"image": image})
    batch = run(client, "image-resize", {"image": image}, count=2)
    def first_note(job: dict) -> str:
        return str(client.get(f"/api/jobs/{job['id']}").get_json()["timeline"][0]["note"])

    assert first_note(single) == "by admin"  # not "1 of 1"
    assert [first_note(job) for job in batch] == ["by admin, 1 of 2", "by admin, 2 of 2"]

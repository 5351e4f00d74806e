"""What a job's timeline and refusals tell a person, pinned down where mutation testing found
nothing did (see docs/development.md, "Mutation testing"): each entry's time, how a retry reads, the
code a client can act on."""

from __future__ import annotations

from datetime import datetime

from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.jobs_helpers import run, upload_image, wait_status
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
    assert times == sorted(times)  # every entry says when, in order


def test_deleting_a_waiting_job_is_refused_with_a_code_and_keeps_it(client: FlaskClient) -> None:
    client.post("/api/queue/pause")
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    answer = client.delete(f"/api/jobs/{job['id']}")
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "job_active"
    assert client.get(f"/api/jobs/{job['id']}").get_json()["status"] == "queued"

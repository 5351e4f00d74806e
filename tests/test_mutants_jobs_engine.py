"""The job engine as its users meet it, where mutation testing found nothing pinned it down
(docs/development.md, "Mutation testing"): whose socket hears a job's live previews, and what the log
says when ComfyUI's history cannot be read yet."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.events.bus import Event
from studio.runtime import Runtime
from studio.services import Services
from tests.comfy_versions import VERSIONS, versioned_comfy_server  # noqa: F401 - comfy_server by version
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, me, run, upload_image, wait_status
from tests.jobs_helpers import events as events  # the fixture, under its own name for pytest
from tests.servers.comfy_newer import NEWER
from tests.servers.comfyui import ComfyUITestServer


def test_a_plain_users_live_previews_reach_her_own_socket_and_nobody_elses(
    app: Flask, client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.step_delay_s = 0.05
    ivy = signed_in_user(app, client, "ivy")
    bob = signed_in_user(app, client, "bob")
    hers = services.hub.connect(user_id=me(ivy))
    his = services.hub.connect(user_id=me(bob))
    try:
        [job] = run(ivy, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 6})
        assert wait_status(ivy, job["id"])["status"] == "completed"

        frames = {name: [json.loads(frame) for frame in feed.get_batch(0.2)] for name, feed in (("hers", hers),
                                                                                              ("his", his))}

        def about(name: str, kind: str) -> list[dict]:
            return [e for e in frames[name] if e["type"] == kind and e["payload"]["id"] == job["id"]]

        assert about("hers", "jobs/preview")
        assert about("hers", "jobs/progress")  # her step counter moves too
        assert about("his", "jobs/preview") == []
        assert about("his", "jobs/progress") == []
    finally:
        services.hub.disconnect(hers)
        services.hub.disconnect(his)


def test_history_that_cannot_be_read_yet_is_logged_and_the_job_still_finishes(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    comfy_server.node_delays["ImageScale"] = 0.5
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
    slow = f"/history/{job['id']}"
    services.comfy.timeout_s = 0.3
    comfy_server.path_delays[slow] = 30.0  # held past Studio's timeout: the read fails, for now
    with caplog.at_level(logging.INFO, logger="studio.jobs.engine"):
        wait_status(client, job["id"], "running")

        def logged() -> bool:
            return any(message.startswith(f"cannot read history of {job['id']} yet: ") for message in caplog.messages)

        wait_until(logged, timeout=20)
    comfy_server.path_delays.pop(slow)
    assert wait_status(client, job["id"], timeout=30)["status"] == "completed"


def test_a_finished_job_is_logged_with_how_many_outputs_it_kept(
    client: FlaskClient, runtime: Runtime, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="studio.jobs.engine"):
        [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
        assert wait_status(client, job["id"])["status"] == "completed"
        wait_until(lambda: f"job {job['id']} finished (1 outputs)" in caplog.messages)


def test_cancelling_a_job_comfyui_already_runs_unheard_interrupts_it_there(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer,
) -> None:
    """Studio still thinks the job is only submitted (ComfyUI's "it started" was lost on a dying
    link): Stop must still stop it in ComfyUI, not only in Studio's records."""
    comfy_server.lost_events = {"execution_start", "executing", "progress", "progress_state", "executed",
                                "execution_cached", "status"}
    comfy_server.step_delay_s = 0.15
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 150})  # over twenty seconds, stoppable per step
    worker = comfy_server.worker
    assert worker is not None
    wait_until(lambda: worker.running)  # ComfyUI runs it; Studio has not heard
    assert client.get(f"/api/jobs/{job['id']}").get_json()["status"] == "submitted"
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
    wait_until(lambda: not worker.running, timeout=10)  # stopped there, long before its 20 seconds
    comfy_server.lost_events = set()
    comfy_server.drop_sockets()  # the dying link gives way; Studio reconnects and asks what became of it
    assert wait_status(client, job["id"], timeout=30)["status"] in ("interrupted", "cancelled")


def test_a_job_studio_hears_live_is_not_polled_for(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer,
) -> None:
    """Its socket tells Studio everything: ComfyUI's queue and history are asked for only at its end,
    not every tick while it runs (that polling is for jobs sent over an earlier socket)."""
    comfy_server.node_delays["ImageScale"] = 3.0
    image = upload_image(client)
    asked = dict(comfy_server.paths_asked)
    [job] = run(client, "image-resize", {"image": image, "width": 16, "height": 16})
    assert wait_status(client, job["id"])["status"] == "completed"
    polled = {path: count - asked.get(path, 0) for path, count in comfy_server.paths_asked.items()
              if path in ("/queue", "/jobs") or path.startswith(("/history", "/jobs/"))}
    assert sum(polled.values()) <= 2, polled


@pytest.mark.parametrize(("answer", "said"), [
    ((400, "[1, 2]"), "ComfyUI refused the job with an answer Studio cannot read ("),
    ((200, "[1, 2]"), "ComfyUI did not take the job: unexpected answer 200 to POST /prompt"),
    ((400, json.dumps({"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed "
                                 "validation", "details": ""},
                       "node_errors": {"2": {"errors": [{"type": "value_bigger_than_max", "message": "Value 99999 "
                                                         "bigger than max of 16384", "details": "width",
                                                         "extra_info": {"input_name": "width"}}],
                                             "dependent_outputs": ["3"], "class_type": "ImageScale"}}})),
     "ComfyUI refused the workflow: ImageScale 2 input width: "),
])
def test_a_refused_job_fails_alone_with_the_reason_in_words(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, caplog: pytest.LogCaptureFixture,
    answer: tuple[int, str], said: str,
) -> None:
    comfy_server.answer_prompt = lambda body: answer
    with caplog.at_level(logging.WARNING, logger="studio.jobs.engine"):
        [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
        failed = wait_status(client, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["message"].startswith(said), failed["error"]
    if answer[0] == 400 and answer[1] == "[1, 2]":
        assert f"job {job['id']}: ComfyUI's answer could not be read" in caplog.messages


def test_the_input_comfyui_uses_is_the_one_in_studio_even_if_comfyui_had_another_by_that_name(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
) -> None:
    name = upload_image(client, color=(10, 200, 10))  # "studio/<content hash>.png"
    ours = services.inputs.read(name)
    assert ours is not None
    theirs = comfy_server.root / "input" / name
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_bytes(b"another picture, left there by hand or an older upload")
    [job] = run(client, "image-resize", {"image": name, "width": 16, "height": 16})
    assert wait_status(client, job["id"])["status"] == "completed"
    assert theirs.read_bytes() == ours  # replaced, not kept beside as "<name> (1).png" and ignored
    assert sorted(path.name for path in theirs.parent.iterdir()) == [theirs.name]


@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)
def test_what_comfyui_can_do_is_logged_at_each_connect(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, caplog: pytest.LogCaptureFixture,
) -> None:
    wait_until(lambda: client.get("/api/status").get_json()["comfyui"]["features"], timeout=10)
    jobs_api = "present" if comfy_server.version == NEWER else "absent"
    expected = f"ComfyUI {comfy_server.version}: Jobs API {jobs_api}, object_info schema "
    with caplog.at_level(logging.INFO, logger="studio.jobs.engine"):
        comfy_server.drop_sockets()  # a reconnect: what is there is asked again, and said
        wait_until(lambda: any(message.startswith(expected) for message in caplog.messages), timeout=15)


def test_progress_names_each_node_as_it_starts_and_counts_a_samplers_steps(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, events: list[Event],
) -> None:
    comfy_server.step_delay_s = 0.02
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 5})
    assert wait_status(client, job["id"])["status"] == "completed"
    said = [event.payload for event in events if event.type == "jobs/progress" and event.payload["id"] == job["id"]]
    sampler = [p for p in said if p["node_type"] == "KSampler"]
    assert sampler[0]["step"] == 0  # "now at the sampler", before its first step
    assert [p["step"] for p in sampler if p["step"]] == [1, 2, 3, 4, 5]
    assert {p["total"] for p in sampler if p["step"]} == {5}
    assert {"CheckpointLoaderSimple", "KSampler", "VAEDecode", "SaveImage"} <= {p["node_type"] for p in said}

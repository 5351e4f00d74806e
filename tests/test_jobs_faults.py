"""The faults the job system must survive, each against the ComfyUI test server."""

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.db import upgrade
from studio.jobs.engine import LOST_REASON
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import signed_in_admin
from tests.jobs_helpers import SAMPLER_PARAMS, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer


def test_comfyui_down_at_submit_the_job_waits_and_then_runs(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)
    comfy_server.stop()
    [job] = run(client, "image-resize", {"image": image, "width": 16, "height": 16})
    assert client.get(f"/api/jobs/{job['id']}").get_json()["status"] == "queued"

    comfy_server.start()
    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    assert len(done["outputs"]) == 1


def test_comfyui_killed_mid_job_fails_the_job_with_the_reason(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.node_delays["ImageScale"] = 30
    image = upload_image(client)
    [job] = run(client, "image-resize", {"image": image})
    wait_status(client, job["id"], "running")

    comfy_server.restart()  # a new ComfyUI process: the job and its history are gone

    failed = wait_status(client, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == LOST_REASON


def test_a_socket_dropped_mid_job_still_completes(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.node_delays["ImageScale"] = 0.5
    image = upload_image(client)
    [job] = run(client, "image-resize", {"image": image})
    wait_status(client, job["id"], "running")

    comfy_server.drop_sockets()

    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    assert len(done["outputs"]) == 1


def test_studio_killed_mid_job_tracks_it_again_after_restart(
    settings: Settings, services: Services, comfy_server: ComfyUITestServer
) -> None:
    first = Runtime(create_app(settings, services), services)
    first.start_in_thread()
    client = signed_in_admin(first.app)
    comfy_server.node_delays["ImageScale"] = 1.0
    image = upload_image(client)
    [job] = run(client, "image-resize", {"image": image})
    wait_status(client, job["id"], "running")
    first.stop()  # Studio goes away; ComfyUI keeps running the job

    reborn = build_services(settings)
    upgrade(reborn.engine)
    second = Runtime(create_app(settings, reborn), reborn)
    second.start_in_thread()
    try:
        again = second.app.test_client()
        answer = again.post("/api/auth/login", json={"username": "admin", "password": "correct horse battery staple"})
        assert answer.status_code == 200
        done = wait_status(again, job["id"])
        assert done["status"] == "completed"
        assert len(done["outputs"]) == 1
    finally:
        second.stop()


def test_a_400_from_comfyui_fails_the_job_naming_node_and_input(
    client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    folder = services.data_dir.workflows / "broken-resize"
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(
        "id: broken-resize\nname: Broken resize\nrequired_nodes: [EmptyImage]\ninputs: []\n")
    (folder / "workflow.json").write_text(
        '{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},'
        ' "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "sideways",'
        ' "width": 4, "height": 4, "crop": "disabled"}},'
        ' "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}')

    [job] = run(client, "broken-resize", {})
    failed = wait_status(client, job["id"])

    assert failed["status"] == "failed"
    message = failed["error"]["message"]
    assert "ImageScale 2 input upscale_method" in message
    assert "'sideways' not in" in message
    [problem] = failed["error"]["problems"]
    assert (problem["node_id"], problem["input"]) == ("2", "upscale_method")


def test_a_node_error_is_reported_in_words(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.fail_nodes["KSampler"] = ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2 GiB")
    [job] = run(client, "sd15-txt2img", SAMPLER_PARAMS)
    failed = wait_status(client, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "KSampler (node 3) failed: CUDA out of memory. Tried to allocate 2 GiB"


def test_lost_jobs_can_be_queued_again_by_setting(
    settings: Settings, comfy_server: ComfyUITestServer, tmp_path: Path
) -> None:
    requeueing = settings.model_copy(update={"studio_requeue_lost_jobs": True})
    services = build_services(requeueing)
    upgrade(services.engine)
    app: Flask = create_app(requeueing, services)
    runtime = Runtime(app, services)
    runtime.start_in_thread()
    try:
        client = signed_in_admin(app)
        comfy_server.node_delays["ImageScale"] = 0.6
        [job] = run(client, "image-resize", {"image": upload_image(client)})
        wait_status(client, job["id"], "running")
        comfy_server.restart()
        done = wait_status(client, job["id"], timeout=20)
        assert done["status"] == "completed"  # queued again, then run on the new ComfyUI
        notes = [entry.get("note", "") for entry in done["timeline"]]
        assert any("queued again" in note for note in notes)
        assert [entry["status"] for entry in done["timeline"]][-1] == "completed"
    finally:
        runtime.stop()

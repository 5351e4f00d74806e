"""Failures and stops in words a person can act on, as the jobs API gives them (the web UI and
Telegram show the same ``advice``), against the ComfyUI test server."""

import re

from flask import Flask
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user
from tests.jobs_helpers import SAMPLER_PARAMS, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer

CLASS_NAME = re.compile(r"\b\w*(Error|Exception)\b")


def _plant(services: Services, workflow_id: str, graph: str) -> None:
    folder = services.data_dir.workflows / workflow_id
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(f"id: {workflow_id}\nname: Planted\ninputs: []\n")
    (folder / "workflow.json").write_text(graph)


def test_out_of_gpu_memory_says_what_to_do_and_offers_free_vram(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.fail_nodes["VAEDecode"] = (
        "torch.OutOfMemoryError", "Allocation on device 0 would exceed allowed memory. (out of memory)")
    [job] = run(client, "sd15-txt2img", SAMPLER_PARAMS)
    failed = wait_status(client, job["id"])

    assert failed["status"] == "failed"
    advice = failed["advice"]
    assert advice["code"] == "out_of_memory"
    assert advice["message"] == "ComfyUI ran out of GPU memory: lower the size or batch, or free VRAM."
    assert advice["actions"] == [{"kind": "free_vram", "admin_only": True}]
    assert not CLASS_NAME.search(advice["message"])
    # ComfyUI's own words stay for whoever opens the job, and for scripts.
    assert "Allocation on device 0" in failed["error"]["message"]
    assert failed["error"]["exception_type"] == "torch.OutOfMemoryError"


def test_a_node_failure_names_the_node_in_words_without_the_class_of_the_exception(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.fail_nodes["KSampler"] = ("RuntimeError", "RuntimeError: mat1 and mat2 shapes cannot be multiplied")
    [job] = run(client, "sd15-txt2img", SAMPLER_PARAMS)
    advice = wait_status(client, job["id"])["advice"]

    assert advice["code"] == "node_failed"
    assert advice["message"] == "The “K Sampler” node (3) failed: mat1 and mat2 shapes cannot be multiplied"
    assert advice["actions"] == []


def test_a_refused_input_is_named_in_words(client: FlaskClient, runtime: Runtime, services: Services) -> None:
    _plant(services, "bad-method", (
        '{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},'
        ' "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "sideways",'
        ' "width": 4, "height": 4, "crop": "disabled"}},'
        ' "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}'))
    [job] = run(client, "bad-method", {})
    advice = wait_status(client, job["id"])["advice"]

    assert advice["code"] == "node_refused"
    assert advice["message"].startswith("ComfyUI refused the input “upscale method” of the “Image Scale” node (2): ")
    assert (advice["node_id"], advice["input"]) == ("2", "upscale_method")


def test_a_model_comfyui_no_longer_has_is_named_with_its_download(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    # Studio saw the checkpoint when the job was queued; it was removed from ComfyUI's folder since.
    client.post("/api/queue/pause")
    [job] = run(client, "sd15-txt2img", SAMPLER_PARAMS)
    comfy_server.models["checkpoints"] = []
    client.post("/api/queue/resume")
    failed = wait_status(client, job["id"])

    assert failed["status"] == "failed"
    advice = failed["advice"]
    assert advice["code"] == "model_missing"
    assert (advice["file"], advice["input"]) == ("random_sd15.safetensors", "ckpt_name")
    assert advice["message"].startswith("The model “random_sd15.safetensors” is not installed in ComfyUI")
    assert advice["actions"] == [{"kind": "install_missing"}]


def test_a_stop_says_who_asked_for_it(
    app: Flask, client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.step_delay_s = 0.05
    [running, waiting] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 100}, count=2)
    wait_status(client, running["id"], "running")
    client.post(f"/api/jobs/{running['id']}/cancel")
    client.post(f"/api/jobs/{waiting['id']}/cancel")

    for job_id in (running["id"], waiting["id"]):
        stopped = wait_status(client, job_id)
        assert stopped["status"] in ("interrupted", "cancelled")
        assert stopped["advice"]["message"] == "Stopped by you."
        assert stopped["advice"]["stopped_by"] == "owner"
    # The raw words are still there for the timeline.
    assert client.get(f"/api/jobs/{running['id']}").get_json()["error"]["message"].startswith("Interrupted at")


def test_finished_and_running_jobs_have_no_advice_and_a_second_user_sees_none_of_it(
    app: Flask, client: FlaskClient, runtime: Runtime
) -> None:
    image = upload_image(client)
    [job] = run(client, "image-resize", {"image": image})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    assert done["advice"] is None

    other = signed_in_user(app, client, "mallory")
    assert other.get(f"/api/jobs/{job['id']}").status_code == 404


def test_an_admin_stopping_someone_elses_job_says_so(
    app: Flask, client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.step_delay_s = 0.05
    mallory = signed_in_user(app, client, "mallory")
    [job] = run(mallory, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 100})
    wait_status(mallory, job["id"], "running")
    client.post(f"/api/jobs/{job['id']}/cancel")

    stopped = wait_status(mallory, job["id"])
    assert stopped["advice"]["message"] == "Stopped by an admin."

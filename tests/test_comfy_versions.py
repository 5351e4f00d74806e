"""Studio against each ComfyUI release the test server speaks: what is detected at connect and
shown in the status API, the Jobs API used where it exists, and model lists that stay true."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.comfy import ComfyClient, ComfyNotFound, ComfyRejected
from studio.runtime import Runtime
from studio.services import Services
from tests.comfy_versions import VERSIONS, versioned_comfy_server  # noqa: F401 - comfy_server by version
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, run, wait_status
from tests.servers.comfy_newer import CAPTURED, NEWER
from tests.servers.comfyui import ComfyUITestServer

BASIC = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "versions/basic"}},
}


@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)
def test_what_comfyui_can_do_is_detected_at_connect_and_shown_in_the_status(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    def detected() -> dict | None:
        return client.get("/api/status").get_json()["comfyui"]["features"]

    features = wait_until(detected, timeout=10)
    assert isinstance(features, dict)
    newer = comfy_server.version == NEWER
    assert features["version"] == comfy_server.version
    assert features["jobs_api"] is newer  # found by asking /api/jobs, not from the version number
    assert features["object_info_schema"] == (2 if newer else 1)
    assert features["preview_metadata"] is True
    assert features["max_upload_size"] == 104857600


def test_features_come_from_what_the_server_answers_not_its_version_number(
    comfy_server: ComfyUITestServer,
) -> None:
    """A 0.3.64 that says it is newer still has no Jobs API, and Studio does not pretend it has."""
    client = ComfyClient(comfy_server.url)
    original = client.system_stats

    def boasting() -> dict:
        stats = original()
        stats["system"]["comfyui_version"] = "9.9.9"
        return stats

    client.system_stats = boasting  # type: ignore[method-assign]
    found = client.detect_features()
    assert found.version == "9.9.9"
    assert found.jobs_api is False
    assert found.object_info_schema == 1
    assert client.server is found


def test_the_newer_server_refuses_a_prompt_id_that_is_not_a_uuid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ComfyUITestServer(tmp_path / "new", version=NEWER) as newer, \
            ComfyUITestServer(tmp_path / "old", version=CAPTURED) as older:
        with pytest.raises(ComfyRejected) as refused:
            ComfyClient(newer.url).queue_prompt(BASIC, prompt_id="my-own-id-123")
        assert refused.value.type == "invalid_prompt_id"
        assert ComfyClient(older.url).queue_prompt(BASIC, prompt_id="my-own-id-123").prompt_id == "my-own-id-123"
        # Studio's own ids are canonical UUIDs: both take them.
        for server in (newer, older):
            assert ComfyClient(server.url).queue_prompt(BASIC).prompt_id


def test_the_jobs_api_tells_a_job_through_its_life(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ComfyUITestServer(tmp_path / "new", version=NEWER) as server:
        comfy = ComfyClient(server.url)
        assert comfy.job(str(uuid.uuid4())) is None
        server.node_delays["EmptyImage"] = 5.0
        running = comfy.queue_prompt(BASIC).prompt_id
        waiting = comfy.queue_prompt({**BASIC, "1": {**BASIC["1"], "inputs": {**BASIC["1"]["inputs"], "width": 9}}})
        wait_until(lambda: (comfy.job(running) or {}).get("status") == "in_progress")
        assert (comfy.job(waiting.prompt_id) or {})["status"] == "pending"
        listed = comfy.jobs_list(statuses=["pending", "in_progress"])
        assert {j["id"]: j["status"] for j in listed["jobs"]} == {running: "in_progress", waiting.prompt_id: "pending"}
        assert listed["pagination"]["total"] == 2

        server.node_delays["EmptyImage"] = 0.0
        comfy.interrupt(running)
        interrupted = wait_until(lambda: (j := comfy.job(running)) and j["status"] != "in_progress" and j)
        assert isinstance(interrupted, dict)
        assert interrupted["status"] == "cancelled"  # an interrupted job shows as cancelled
        done = wait_until(lambda: (j := comfy.job(waiting.prompt_id)) and j["status"] == "completed" and j)
        assert isinstance(done, dict)
        assert done["execution_status"]["status_str"] == "success"
        assert done["outputs"]["2"]["images"][0]["filename"].startswith("basic_")
    with ComfyUITestServer(tmp_path / "old", version=CAPTURED) as old, pytest.raises(ComfyNotFound):
        ComfyClient(old.url).jobs_list()


@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)
def test_a_job_interrupted_while_studio_was_away_ends_interrupted(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    """Reconciled from the Jobs API's "cancelled" on newer servers, from /history on 0.3.x."""
    comfy_server.step_delay_s = 0.05
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 150})
    wait_status(client, job["id"], "running")
    services.stream.stop()  # Studio stops listening: the job's last messages never reach it
    ComfyClient(comfy_server.url).interrupt(job["id"])
    wait_until(lambda: comfy_server.worker is not None and job["id"] in comfy_server.worker.history)
    services.stream.start()

    done = wait_status(client, job["id"])
    assert done["status"] == "interrupted"
    assert done["error"]["message"] == "Interrupted at KSampler (node 3)."
    assert done["outputs"] == []


# -- model lists that stay true -------------------------------------------------------------------


def _checkpoints(client: FlaskClient) -> list[str]:
    return list(client.get("/api/workflows/sd15-txt2img").get_json()["choices"]["checkpoint"])


def test_a_checkpoint_added_while_studio_runs_appears_after_a_refresh_and_not_before(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    assert _checkpoints(client) == ["random_sd15.safetensors"]
    comfy_server.models["checkpoints"] = ["random_sd15.safetensors", "new_model.safetensors"]
    assert _checkpoints(client) == ["random_sd15.safetensors"]  # the cached lists, until a refresh
    object_info_asked = comfy_server.paths_asked.get("/object_info", 0)

    answer = client.post("/api/comfy/models/refresh", json={"folders": ["checkpoints"]})

    assert answer.status_code == 200
    assert answer.get_json()["changed"] is True
    assert answer.get_json()["folders"] == {"checkpoints": ["random_sd15.safetensors", "new_model.safetensors"]}
    assert comfy_server.paths_asked.get("/object_info", 0) == object_info_asked  # cheap calls only
    assert "new_model.safetensors" in _checkpoints(client)
    params = {"positive_prompt": "x", "checkpoint": "new_model.safetensors", "steps": 1,
              "resolution": {"w": 64, "h": 64}}
    assert client.post("/api/workflows/sd15-txt2img/run", json={"params": params}).status_code == 202


def test_an_unchanged_refresh_keeps_the_cache_and_refreshes_are_throttled(
    app: Flask, client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    _checkpoints(client)
    object_info_asked = comfy_server.paths_asked.get("/object_info", 0)
    person = signed_in_user(app, client, "carol")  # any signed-in person may refresh
    first = person.post("/api/comfy/models/refresh", json={"folders": ["checkpoints", "loras"]})
    assert first.status_code == 200
    assert first.get_json()["changed"] is False
    asked = comfy_server.paths_asked["/models/checkpoints"]
    for _ in range(5):
        again = person.post("/api/comfy/models/refresh", json={"folders": ["checkpoints"]})
        assert again.get_json()["folders"] == {"checkpoints": ["random_sd15.safetensors"]}
        assert again.get_json()["asked"] == []
    assert comfy_server.paths_asked["/models/checkpoints"] == asked  # ComfyUI was not asked again
    _checkpoints(client)
    assert comfy_server.paths_asked.get("/object_info", 0) == object_info_asked  # nor its object_info


def test_a_refresh_names_real_folders_and_needs_a_signed_in_person(
    client: FlaskClient, anon: FlaskClient, comfy_server: ComfyUITestServer
) -> None:
    for body in ({"folders": ["../etc"]}, {"folders": "checkpoints"}, {"folders": ["x"] * 33}, {"other": 1}):
        refused = client.post("/api/comfy/models/refresh", json=body)
        assert refused.status_code == 400, body
        assert set(refused.get_json()["error"]) >= {"code", "message"}
    assert anon.post("/api/comfy/models/refresh", json={}).status_code in (401, 403)
    unknown = client.post("/api/comfy/models/refresh", json={"folders": ["nope", "checkpoints"]})
    assert unknown.get_json()["folders"] == {"checkpoints": ["random_sd15.safetensors"]}
    comfy_server.stop()
    down = client.post("/api/comfy/models/refresh", json={"folders": ["vae"]})
    assert down.status_code == 503
    assert down.get_json()["error"]["code"] == "comfy_unavailable"

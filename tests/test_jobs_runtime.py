"""Run-time truth: what a job says when ComfyUI dropped some of its outputs, and when ComfyUI stops
answering while the job is in it (waiting, then failed with the reason, or reconciled on return)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from studio.config import Settings
from studio.events.bus import Event
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import events as events  # the fixture, under its own name for pytest
from tests.jobs_helpers import plant_workflow, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer

# Output 3 is fine; output 5 hangs off an EmptyImage 0 pixels wide, which ComfyUI's validation refuses
# while it still runs the rest (the capture's "partial_valid" answer: 200 with node_errors).
HALF_VALID = """{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "kept"}},
 "4": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}},
 "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "dropped"}}}"""
# Only a preview (ComfyUI's temp folder, which Studio does not keep) is left once 5 is dropped.
PREVIEW_ONLY = HALF_VALID.replace('"SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "kept"}',
                                  '"PreviewImage", "inputs": {"images": ["1", 0]}')


def test_outputs_comfyui_dropped_are_named_on_the_job_its_timeline_and_its_events(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    events: list[Event],
) -> None:
    plant_workflow(services, "half-valid", HALF_VALID)
    [job] = run(client, "half-valid", {})
    done = wait_status(client, job["id"])

    assert done["status"] == "completed"
    assert [o["node_id"] for o in done["outputs"]] == ["3"]  # what ComfyUI did run is kept
    [warning] = done["warnings"]
    assert "dropped 1 output" in warning
    assert "SaveImage 5" in warning
    assert "EmptyImage 4 width: Value 0 smaller than min of 1" in warning
    assert [e.get("warning") for e in done["timeline"] if e.get("warning")] == [warning]
    assert any(e.type == "jobs/update" and e.payload["id"] == job["id"] and e.payload["warnings"] == [warning]
               for e in events)
    assert done["error"] is None


def test_a_job_whose_every_output_was_dropped_does_not_pretend_success(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    plant_workflow(services, "preview-only", PREVIEW_ONLY)
    [job] = run(client, "preview-only", {})
    done = wait_status(client, job["id"])

    assert done["status"] == "failed"
    assert done["error"]["code"] == "outputs_dropped"
    assert "dropped 5" in done["error"]["message"]
    assert done["outputs"] == []
    assert len(done["warnings"]) == 1


def test_a_job_comfyui_accepted_whole_carries_no_warning(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 8, "height": 8})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    assert done["warnings"] == []
    assert done["waiting_for_comfy"] is None


def _notes(job: dict[str, Any]) -> list[str]:
    return [entry.get("note") or "" for entry in job["timeline"]]


def test_comfyui_gone_mid_job_waits_then_fails_with_the_reason_and_never_finishes_twice(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    events: list[Event], settings: Settings,
) -> None:
    settings.comfyui_outage_grace_s = 3.0  # COMFYUI_OUTAGE_GRACE_S, read by the engine at each outage
    comfy_server.node_delays["ImageScale"] = 5.0
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    wait_status(client, job["id"], "running")

    comfy_server.stop_answering()  # ComfyUI keeps working, and cannot be reached

    waiting = wait_until(lambda: (j := client.get(f"/api/jobs/{job['id']}").get_json())["waiting_for_comfy"] and j,
                         timeout=5)
    assert isinstance(waiting, dict)
    assert waiting["status"] == "running"
    assert waiting["status_text"] == "waiting for ComfyUI"
    assert any("waiting for ComfyUI: it stopped answering at" in note for note in _notes(waiting))
    assert any(e.type == "jobs/update" and e.payload["id"] == job["id"] and e.payload["waiting_for_comfy"]
               for e in events)

    failed = wait_status(client, job["id"], timeout=10)
    assert failed["status"] == "failed"
    assert failed["error"]["message"].startswith("ComfyUI stopped answering at ")
    assert "within 3 s" in failed["error"]["message"]
    assert [e["status"] for e in failed["timeline"]][-2:] == ["running", "failed"]  # the wait, then the end
    assert failed["waiting_for_comfy"] is None
    def finished() -> list[Event]:
        return [e for e in events if e.type == "jobs/finished" and e.payload["id"] == job["id"]]

    wait_until(lambda: finished(), timeout=5)  # announced just after the row is written
    assert len(finished()) == 1

    # ComfyUI comes back and still finishes the job: Studio's answer stays the one it gave.
    comfy_server.answer_again()
    wait_until(lambda: comfy_server.worker is not None and job["id"] in comfy_server.worker.history, timeout=15)
    comfy_server.node_delays["ImageScale"] = 0.0
    [later] = run(client, "image-resize", {"image": upload_image(client)})
    assert wait_status(client, later["id"])["status"] == "completed"  # Studio is back in step with ComfyUI
    again = client.get(f"/api/jobs/{job['id']}").get_json()
    assert again["status"] == "failed"
    assert again["timeline"] == failed["timeline"]
    assert again["outputs"] == []
    assert len(finished()) == 1


def test_comfyui_back_within_the_grace_period_is_reconciled_and_the_job_completes(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    services.job_engine.outage.grace_s = lambda: 60.0
    comfy_server.node_delays["ImageScale"] = 3.0  # still running in ComfyUI when Studio reaches it again
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    wait_status(client, job["id"], "running")

    comfy_server.stop_answering()
    wait_until(lambda: client.get(f"/api/jobs/{job['id']}").get_json()["waiting_for_comfy"], timeout=5)
    comfy_server.answer_again()

    done = wait_status(client, job["id"], timeout=15)
    assert done["status"] == "completed"
    assert len(done["outputs"]) == 1
    assert done["waiting_for_comfy"] is None
    notes = _notes(done)
    assert any("waiting for ComfyUI" in note for note in notes)
    assert any("ComfyUI answers again" in note for note in notes)
    assert done["error"] is None
    assert [entry["status"] for entry in done["timeline"]][-1] == "completed"


def test_a_dropped_socket_with_comfyui_still_answering_is_not_an_outage(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    events: list[Event],
) -> None:
    services.job_engine.outage.grace_s = lambda: 0.0  # an outage would fail the job at once
    comfy_server.node_delays["ImageScale"] = 0.8
    [job] = run(client, "image-resize", {"image": upload_image(client)})
    wait_status(client, job["id"], "running")

    comfy_server.drop_sockets()

    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    assert not any("waiting for ComfyUI" in note for note in _notes(done))
    assert not any(e.type == "jobs/update" and e.payload.get("waiting_for_comfy") for e in events)


def test_another_user_never_sees_the_warnings_of_someone_elses_job(
    app: Flask, client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    plant_workflow(services, "half-valid", HALF_VALID)
    [job] = run(client, "half-valid", {})
    wait_status(client, job["id"])
    other = signed_in_user(app, client, "bob")
    assert other.get(f"/api/jobs/{job['id']}").status_code == 404
    assert all(item["id"] != job["id"] for item in other.get("/api/jobs").get_json()["items"])


AUDIO_AND_MESH = """{
 "1": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 44100, "channels": 2}},
 "2": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/clip", "quality": "V0"}},
 "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
 "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
 "5": {"class_type": "VAEDecodeHunyuan3D", "inputs": {"samples": ["3", 0], "vae": ["4", 2], "num_chunks": 8000,
                                                      "octree_resolution": 256}},
 "6": {"class_type": "VoxelToMeshBasic", "inputs": {"voxel": ["5", 0], "threshold": 0.6}},
 "7": {"class_type": "SaveGLB", "inputs": {"mesh": ["6", 0], "filename_prefix": "mesh/thing"}}}"""


def test_audio_and_3d_files_are_kept_as_the_job_s_outputs(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    """ComfyUI reports each node type's files under its own key ("audio", "3d"): all are kept."""
    plant_workflow(services, "audio-and-mesh", AUDIO_AND_MESH)
    [job] = run(client, "audio-and-mesh", {})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done["error"]
    kept = sorted((o["node_id"], o["kind"]) for o in done["outputs"])
    assert kept == [("2", "audio"), ("7", "3d")]
    mesh = next(o for o in done["outputs"] if o["node_id"] == "7")
    with client.get(mesh["url"]) as answer:
        assert answer.status_code == 200
        assert answer.get_data()[:4] == b"glTF"

"""Steering the queue: cancel, interrupt, move to front, pause, retry, delete, fairness."""

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.db import upgrade
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.comfy_versions import VERSIONS, versioned_comfy_server  # noqa: F401 - comfy_server by version
from tests.conftest import signed_in_admin, signed_in_user
from tests.jobs_helpers import SAMPLER_PARAMS, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer


@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)
def test_cancel_waiting_submitted_and_running_jobs(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.step_delay_s = 0.05
    params = {**SAMPLER_PARAMS, "steps": 100}
    first, second, third = run(client, "sd15-txt2img", params, count=3)
    wait_status(client, first["id"], "running")
    wait_status(client, second["id"], "submitted")  # two in flight: one runs, one waits in ComfyUI
    assert client.get(f"/api/jobs/{third['id']}").get_json()["status"] == "queued"

    waiting = client.post(f"/api/jobs/{third['id']}/cancel").get_json()
    assert waiting["status"] == "cancelled"
    in_comfy = client.post(f"/api/jobs/{second['id']}/cancel").get_json()
    assert in_comfy["status"] == "cancelled"
    assert comfy_server.worker is not None
    assert second["id"] not in [item[1] for item in comfy_server.worker.pending]  # gone from ComfyUI's queue
    client.post(f"/api/jobs/{first['id']}/cancel")
    interrupted = wait_status(client, first["id"])  # lands at the sampler's next step
    assert interrupted["status"] == "interrupted"
    assert interrupted["error"]["message"] == "Interrupted at KSampler (node 3)."
    assert client.post(f"/api/jobs/{first['id']}/cancel").status_code == 409


def test_pause_front_cancel_waiting_and_resume(client: FlaskClient, runtime: Runtime) -> None:
    assert client.post("/api/queue/pause").get_json() == {"paused": True}
    image = upload_image(client)
    jobs = run(client, "image-resize", {"image": image}, count=4)
    assert [j["id"] for j in client.get("/api/queue").get_json()["queued"]] == [j["id"] for j in jobs]

    client.post(f"/api/jobs/{jobs[3]['id']}/front")
    order = [j["id"] for j in client.get("/api/queue").get_json()["queued"]]
    assert order[0] == jobs[3]["id"]
    assert client.post(f"/api/jobs/{jobs[3]['id']}/front").status_code == 200

    kept = jobs[3]
    client.post(f"/api/jobs/{jobs[0]['id']}/cancel")
    assert client.post("/api/queue/cancel-waiting").get_json()["cancelled"] == 3
    client.post(f"/api/jobs/{kept['id']}/retry")  # a cancelled job can be retried
    assert client.get("/api/queue").get_json()["paused"] is True
    assert client.post("/api/queue/resume").get_json() == {"paused": False}
    queued_again = client.get("/api/jobs?status=queued,submitted,running,completed").get_json()["items"]
    assert len(queued_again) == 1
    assert wait_status(client, queued_again[0]["id"])["status"] == "completed"
    assert queued_again[0]["retry_of"] == kept["id"]


def test_retry_reuses_the_resolved_parameters_and_delete_removes_the_files(
    client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 20, "height": 10})
    done = wait_status(client, job["id"])
    retried = client.post(f"/api/jobs/{job['id']}/retry")
    assert retried.status_code == 201
    copy = retried.get_json()
    assert copy["params"] == done["params"]
    assert copy["retry_of"] == job["id"]
    assert wait_status(client, copy["id"])["status"] == "completed"

    folder = services.data_dir.outputs / "studio" / job["id"]
    assert folder.is_dir()
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert not folder.exists()
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404


def test_history_filters_and_pages(client: FlaskClient, runtime: Runtime) -> None:
    client.post("/api/queue/pause")
    image = upload_image(client)
    for n in range(5):
        run(client, "image-resize", {"image": image, "width": 10 + n})
    run(client, "sd15-txt2img", {"positive_prompt": "a red fox in snow", "checkpoint": "random_sd15.safetensors"})
    page = client.get("/api/jobs?limit=4").get_json()
    assert len(page["items"]) == 4
    rest = client.get(f"/api/jobs?limit=4&before={page['next']}").get_json()
    assert len(rest["items"]) == 2
    assert rest["next"] is None
    assert [j["workflow_id"] for j in client.get("/api/jobs?q=fox").get_json()["items"]] == ["sd15-txt2img"]
    assert len(client.get("/api/jobs?workflow=image-resize").get_json()["items"]) == 5
    assert client.get("/api/jobs?status=bogus").status_code == 400


def test_people_only_see_their_own_jobs(app: Flask, client: FlaskClient, runtime: Runtime) -> None:
    client.post("/api/queue/pause")
    [mine] = run(client, "image-resize", {"image": upload_image(client)})
    gina = signed_in_user(app, client, "gina")
    assert gina.get(f"/api/jobs/{mine['id']}").status_code == 404
    assert gina.post(f"/api/jobs/{mine['id']}/cancel").status_code == 404
    assert gina.get("/api/jobs").get_json()["items"] == []
    [hers] = run(gina, "image-resize", {"image": upload_image(gina)})
    assert {j["id"] for j in client.get("/api/jobs").get_json()["items"]} == {mine["id"], hers["id"]}


def test_round_robin_between_people(settings: Settings, comfy_server: ComfyUITestServer) -> None:
    one_at_a_time = settings.model_copy(update={"comfyui_max_in_flight": 1})
    services = build_services(one_at_a_time)
    upgrade(services.engine)
    app = create_app(one_at_a_time, services)
    runtime = Runtime(app, services)
    runtime.start_in_thread()
    try:
        admin = signed_in_admin(app)
        admin.post("/api/queue/pause")
        hal = signed_in_user(app, admin, "hal")
        mine = run(admin, "image-resize", {"image": upload_image(admin)}, count=3)
        his = run(hal, "image-resize", {"image": upload_image(hal)}, count=2)
        admin.post("/api/queue/resume")
        finished = [wait_status(admin, job["id"]) for job in mine + his]
        order = [job["owner_id"] for job in sorted(finished, key=lambda j: j["submitted_at"])]
        admin_id, hal_id = mine[0]["owner_id"], his[0]["owner_id"]
        assert order[:4] in ([admin_id, hal_id, admin_id, hal_id], [hal_id, admin_id, hal_id, admin_id])
    finally:
        runtime.stop()


def test_reorder_waiting_jobs_and_who_may_jump_whom(app: Flask, client: FlaskClient, runtime: Runtime) -> None:
    client.post("/api/queue/pause")
    image = upload_image(client)
    a, b, c, d = (j["id"] for j in run(client, "image-resize", {"image": image}, count=4))

    def order(viewer: FlaskClient = client) -> list[str]:
        return [j["id"] for j in viewer.get("/api/queue").get_json()["queued"]]

    assert client.post(f"/api/jobs/{a}/move", json={"before": d}).status_code == 200
    assert order() == [b, c, a, d]
    client.post(f"/api/jobs/{b}/move", json={"before": None})
    assert order() == [c, a, d, b]
    client.post(f"/api/jobs/{d}/move", json={"before": c})
    assert order() == [d, c, a, b]
    assert client.post(f"/api/jobs/{d}/move", json={"before": "no-such-job"}).status_code == 409
    client.post(f"/api/jobs/{c}/cancel")
    assert client.post(f"/api/jobs/{c}/move", json={"before": None}).status_code == 409

    ivy = signed_in_user(app, client, "ivy")
    mine, second = (j["id"] for j in run(ivy, "image-resize", {"image": upload_image(ivy)}, count=2))
    refused = ivy.post(f"/api/jobs/{second}/move", json={"before": d})
    assert refused.status_code == 403  # ahead of the admin's job: not hers to decide
    assert ivy.post(f"/api/jobs/{second}/front").status_code == 200  # front of her own jobs
    assert order(ivy) == [second, mine]
    assert order()[:3] == [d, a, b]
    assert client.post(f"/api/jobs/{mine}/front").status_code == 200  # an admin may put anyone first
    assert order()[0] == mine
    client.post("/api/queue/resume")
    assert wait_status(client, mine)["status"] == "completed"

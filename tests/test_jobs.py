"""Jobs against the ComfyUI test server: the happy path, live progress and previews, validation,
and the outputs a person keeps."""

import io
import json
import zipfile

import pytest
from flask.testing import FlaskClient
from PIL import Image

from studio.runtime import Runtime
from studio.services import Services
from tests.comfy_versions import VERSIONS, versioned_comfy_server  # noqa: F401 - comfy_server by version
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer


@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)
def test_a_resize_job_runs_and_its_output_is_kept(client: FlaskClient, runtime: Runtime, services: Services) -> None:
    image = upload_image(client, (64, 48))
    again = upload_image(client, (64, 48))
    assert image == again  # the same picture is stored once

    [job] = run(client, "image-resize", {"image": image, "width": 32, "height": 24})
    assert job["status"] == "queued"
    done = wait_status(client, job["id"])

    assert done["status"] == "completed", done["error"]
    [output] = done["outputs"]
    assert (output["kind"], output["width"], output["height"]) == ("image", 32, 24)
    path = services.data_dir.outputs / "studio" / job["id"] / output["filename"]
    assert path.is_file()
    with client.get(output["url"]) as served:
        assert served.status_code == 200
        assert served.data == path.read_bytes()
    with Image.open(io.BytesIO(path.read_bytes())) as png:
        assert png.getpixel((0, 0)) == (200, 30, 30)
    with client.get(output["url"], headers={"Range": "bytes=0-9"}) as partial:
        assert partial.status_code == 206
        assert partial.data == path.read_bytes()[:10]


def test_a_sampler_job_reports_steps_previews_and_its_seed(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.step_delay_s = 0.15
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "seed": -1})
    seed = job["params"]["seed"]
    assert 0 <= seed < 2**53

    running = wait_status(client, job["id"], "running")
    assert running["started_at"]
    preview = wait_until(lambda: (r := client.get(f"/api/jobs/{job['id']}/preview")).status_code == 200 and r)
    assert preview.mimetype == "image/jpeg"
    assert preview.data[:2] == b"\xff\xd8"
    progress = wait_until(lambda: (p := client.get(f"/api/jobs/{job['id']}").get_json()["progress"]).get("total")
                          and p)
    assert progress["node_type"] == "KSampler"
    assert progress["node_title"] == "Sampler"
    assert progress["total"] == 4

    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    assert done["prompt"]["3"]["inputs"]["seed"] == seed
    assert done["prompt"]["9"]["inputs"]["filename_prefix"] == f"studio/{job['id']}/image"
    assert client.get(f"/api/jobs/{job['id']}/preview").status_code == 404  # previews are not kept


def test_generate_n_queues_n_jobs_each_with_its_own_seed(client: FlaskClient, runtime: Runtime) -> None:
    jobs = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "seed": -1}, count=3)
    assert len({job["id"] for job in jobs}) == 3
    assert len({job["params"]["seed"] for job in jobs}) == 3
    for job in jobs:
        assert wait_status(client, job["id"])["status"] == "completed"


def test_bad_values_are_named_field_by_field_and_nothing_is_queued(client: FlaskClient, services: Services) -> None:
    answer = client.post("/api/workflows/sd15-txt2img/run", json={"params": {
        "positive_prompt": "", "steps": 0, "cfg": "lots", "sampler_name": "warp", "checkpoint": "nope.safetensors",
        "resolution": {"w": 10, "h": 10}, "colour": "red"}})
    assert answer.status_code == 400
    fields = answer.get_json()["error"]["details"]["fields"]
    assert set(fields) == {"positive_prompt", "steps", "cfg", "sampler_name", "checkpoint", "resolution", "colour"}
    assert "at least 1" in fields["steps"]
    assert "not installed" in fields["checkpoint"]
    missing_image = client.post("/api/workflows/image-resize/run", json={"params": {"image": "studio/nothing.png"}})
    assert "image" in missing_image.get_json()["error"]["details"]["fields"]
    assert client.get("/api/jobs").get_json()["items"] == []
    assert client.post("/api/workflows/no-such/run", json={}).status_code == 404


def test_not_an_image_is_refused(client: FlaskClient) -> None:
    answer = client.post("/api/inputs", data={"image": (io.BytesIO(b"%PDF-1.4 nope"), "x.png")},
                         content_type="multipart/form-data")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"]["fields"]["image"] == "not an image"


def test_the_library_lists_readiness_by_name(client: FlaskClient, comfy_server: ComfyUITestServer) -> None:
    comfy_server.models["checkpoints"] = []
    client.application.extensions["studio"].comfy.invalidate_object_info()
    items = {w["id"]: w for w in client.get("/api/workflows").get_json()["items"]}
    assert items["image-resize"]["readiness"]["ready"] is True
    sd15 = items["sd15-txt2img"]["readiness"]
    assert sd15["ready"] is False
    assert "model v1-5-pruned-emaonly.safetensors is missing (folder checkpoints)" in sd15["problems"]
    refused = client.post("/api/workflows/sd15-txt2img/run", json={"params": SAMPLER_PARAMS})
    assert refused.status_code == 422
    assert "v1-5-pruned-emaonly.safetensors is missing" in refused.get_json()["error"]["message"]


def test_a_job_exports_as_a_zip_with_its_parameters_inputs_and_outputs(
    client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    image = upload_image(client, (40, 30))
    [job] = run(client, "image-resize", {"image": image, "width": 20, "height": 15})
    done = wait_status(client, job["id"])
    with client.get(f"/api/jobs/{job['id']}/export") as answer:
        assert answer.status_code == 200
        assert answer.headers["Content-Disposition"] == f'attachment; filename="job-{job["id"]}.zip"'
        data = answer.get_data()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted(archive.namelist())
        saved = json.loads(archive.read("job.json"))
        output_name = f"outputs/{done['outputs'][0]['filename']}"
        assert archive.read(output_name) == (services.data_dir.outputs / "studio" / job["id"]
                                             / done["outputs"][0]["filename"]).read_bytes()
    assert names == sorted(["job.json", f"inputs/{image.split('/')[1]}", output_name])
    assert saved["params"] == {"image": image, "width": 20, "height": 15, "method": "lanczos"}
    assert saved["prompt"]["2"]["inputs"]["width"] == 20


def test_image_to_image_and_inpainting_run_on_an_uploaded_picture(client: FlaskClient, runtime: Runtime) -> None:
    image = upload_image(client, (64, 64))
    for workflow in ("sd15-img2img", "sd15-inpaint"):
        [job] = run(client, workflow, {"image": image, "positive_prompt": "a watercolor",
                                       "checkpoint": "random_sd15.safetensors", "steps": 2})
        done = wait_status(client, job["id"])
        assert done["status"] == "completed", (workflow, done["error"])
        assert (done["outputs"][0]["width"], done["outputs"][0]["height"]) == (64, 64)
        assert done["prompt"]["1"]["inputs"]["image"] == image


def test_earlier_inputs_are_listed_and_served(client: FlaskClient) -> None:
    name = upload_image(client, (10, 10))
    assert name in [item["name"] for item in client.get("/api/inputs").get_json()["items"]]
    with client.get(f"/api/inputs/{name.split('/')[1]}") as answer:
        assert answer.status_code == 200
        assert answer.mimetype == "image/png"
    assert client.get("/api/inputs/..%2F..%2Fdb%2Fstudio.db").status_code == 404
    assert client.get("/api/inputs/nothing.png").status_code == 404


def test_people_only_list_the_inputs_their_own_jobs_used(app, client: FlaskClient, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    admins = upload_image(client, (12, 12), (1, 2, 3))
    jay = signed_in_user(app, client, "jay")
    assert jay.get("/api/inputs").get_json()["items"] == []
    his = upload_image(jay, (14, 14), (4, 5, 6))
    run(jay, "image-resize", {"image": his})
    assert [i["name"] for i in jay.get("/api/inputs").get_json()["items"]] == [his]
    assert admins not in [i["name"] for i in jay.get("/api/inputs").get_json()["items"]]

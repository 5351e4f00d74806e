"""The faults the job system must survive, each against the ComfyUI test server."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.app import create_app
from studio.config import Settings
from studio.db import upgrade
from studio.jobs.engine import LOST_REASON
from studio.jobs.models import JobOutput
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.comfy_versions import VERSIONS, versioned_comfy_server  # noqa: F401 - comfy_server by version
from tests.conftest import signed_in_admin, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, png_bytes, run, upload_image, wait_status
from tests.servers.comfy_newer import CAPTURED
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


@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)
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


@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)
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
        # Reconciled through the Jobs API where the server has one, through /history where not.
        asked_jobs_api = comfy_server.paths_asked.get(f"/jobs/{job['id']}", 0)
        assert bool(asked_jobs_api) == (comfy_server.version != CAPTURED)
        assert bool(comfy_server.paths_asked.get(f"/history/{job['id']}")) or asked_jobs_api
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


# -- a hostile or buggy ComfyUI, and links planted in the data folder -------------------------------

OTHER_JOB = "11111111-2222-3333-4444-555555555555"
HOSTILE_OUTPUTS = [
    ("../x.png", ""), ("../../other-job/x.png", "studio/{job}"), ("/etc/passwd", ""), ("{outside}/keep.txt", ""),
    ("a\x00b.png", ""), ("n" * 300 + ".png", ""), ("x.png", ".."), ("x.png", "../.."), ("x.png", "/abs"),
    ("..\\..\\x.png", ""), ("sub\\x.png", "studio/{job}"), ("y.png", "deep/er"), ("x.png", f"studio/{OTHER_JOB}"),
    ("\ud800.png", ""), ("....", ""), (" ", ""), ("x.png", "studio/{job}/../../" + OTHER_JOB),
]


def _tree(*roots: Path, skip: Path | None = None) -> dict[str, bytes]:
    """Every file below ``roots`` (links as their target's name), except below ``skip``."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if skip is not None and path.is_relative_to(skip):
                continue
            if path.is_symlink():
                found[str(path)] = str(path.readlink()).encode()
            elif path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def _kept_in_job_folder(services: Services, client: FlaskClient, done: dict) -> list[str]:
    folder = services.data_dir.outputs / "studio" / done["id"]
    names = []
    with Session(services.engine) as session:
        rows = list(session.exec(select(JobOutput).where(JobOutput.job_id == done["id"])))
    for row in rows:
        assert row.path == f"studio/{done['id']}/{row.filename}"
        path = folder / row.filename
        assert path.is_file()
        assert not path.is_symlink()
        names.append(row.filename)
    for output in done["outputs"]:
        with client.get(output["url"]) as served:
            assert served.status_code == 200
            assert served.data == (folder / output["filename"]).read_bytes()
    return sorted(names)


def test_hostile_output_names_land_in_the_job_folder_or_are_refused(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    other = services.data_dir.outputs / "studio" / OTHER_JOB
    other.mkdir(parents=True)
    (other / "x.png").write_bytes(b"the other job's file")
    served_by_comfy = comfy_server.root / "output"
    (served_by_comfy / "deep" / "er").mkdir(parents=True)
    (served_by_comfy / "deep" / "er" / "y.png").write_bytes(png_bytes((3, 3)))
    (served_by_comfy / "studio" / OTHER_JOB).mkdir(parents=True)
    (served_by_comfy / "studio" / OTHER_JOB / "x.png").write_bytes(png_bytes((4, 4)))

    def hostile(entry: dict) -> None:
        job_id = entry["prompt"][1]
        for ui in entry["outputs"].values():
            real = dict(ui["images"][0])
            ui["images"] += [{"filename": name.format(outside=outside), "subfolder": sub.format(job=job_id),
                              "type": "output"} for name, sub in HOSTILE_OUTPUTS] + [real]

    comfy_server.history_hook = hostile
    before = _tree(services.data_dir.outputs, outside)
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 8, "height": 8})
    done = wait_status(client, job["id"])

    assert done["status"] == "completed", done["error"]
    kept = _kept_in_job_folder(services, client, done)
    [copy] = [name for name in kept if name.startswith("x (")]  # one of the many "x.png", made unique
    assert sorted(set(kept) - {copy}) == ["image_00001_ (2).png", "image_00001_.png", "y.png"], kept
    folder = services.data_dir.outputs / "studio" / job["id"]
    assert (folder / copy).read_bytes() == png_bytes((4, 4))  # the other job's, fetched over /view, kept here
    assert _tree(services.data_dir.outputs, outside, skip=folder) == before  # nothing written anywhere else
    note = done["timeline"][-1]["note"]
    assert f"{len(HOSTILE_OUTPUTS) - 2} outputs not kept" in note, note  # all but y.png and the copy


def test_comfyui_sharing_the_output_folder_is_used_only_inside_the_jobs_own_folder(
    settings: Settings, tmp_path: Path
) -> None:
    outputs = settings.studio_dir / "assets" / "output"
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "keep.txt").write_text("untouched")
    (outside / "dir" / "deep.png").write_bytes(png_bytes((2, 2)))
    (outputs / "studio" / OTHER_JOB).mkdir(parents=True)
    (outputs / "studio" / OTHER_JOB / "x.png").write_bytes(png_bytes((5, 5)))

    def hostile(entry: dict) -> None:
        job_id = entry["prompt"][1]
        folder = outputs / "studio" / job_id
        (folder / "evil.png").symlink_to(outside / "keep.txt")  # planted where the job's files are
        (folder / "sub").symlink_to(outside / "dir")
        for ui in entry["outputs"].values():
            ui["images"] += [{"filename": name, "subfolder": sub.format(job=job_id), "type": "output"} for name, sub in
                             [("evil.png", "studio/{job}"), ("deep.png", "studio/{job}/sub"),
                              ("x.png", f"studio/{OTHER_JOB}"), ("image_00001_.png", "studio/{job}")]]

    with ComfyUITestServer(tmp_path / "shared-comfyui", output_dir=outputs) as shared:
        shared.history_hook = hostile
        local = settings.model_copy(update={"comfyui_url": shared.url})
        services = build_services(local)
        upgrade(services.engine)
        app = create_app(local, services)
        runtime = Runtime(app, services)
        runtime.start_in_thread()
        try:
            client = signed_in_admin(app)
            before = _tree(outside, outputs / "studio" / OTHER_JOB)
            [job] = run(client, "image-resize", {"image": upload_image(client), "width": 6, "height": 6})
            done = wait_status(client, job["id"])
            assert done["status"] == "completed", done["error"]
            kept = _kept_in_job_folder(services, client, done)
            assert kept == ["image_00001_ (2).png", "image_00001_.png", "x.png"], kept
            folder = outputs / "studio" / job["id"]
            assert (folder / "x.png").read_bytes() == png_bytes((5, 5))  # a copy: the other job's stays
            assert (folder / "image_00001_ (2).png").read_bytes() == (folder / "image_00001_.png").read_bytes()
            assert "2 outputs not kept" in done["timeline"][-1]["note"]
            assert _tree(outside, outputs / "studio" / OTHER_JOB) == before
            # Thumbnails are made in the background after the job: let them land before the delete.
            wait_until(lambda: len(list((folder / ".thumbs").glob("*.webp"))) == 2 * len(kept), timeout=15)
            assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
            assert not folder.exists()
            assert _tree(outside, outputs / "studio" / OTHER_JOB) == before  # links removed, not followed
        finally:
            runtime.stop()
            services.engine.dispose()


def test_planted_links_are_never_written_through_or_served(
    client: FlaskClient, runtime: Runtime, services: Services, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = png_bytes((7, 7), (1, 1, 1))
    (outside / "secret.png").write_bytes(secret)
    (outside / "part.png").write_bytes(b"not to be overwritten")
    inputs = services.data_dir.inputs / "studio"
    inputs.mkdir(parents=True, exist_ok=True)

    # an upload's temporary name, and its final name, planted as links
    data = png_bytes((9, 9), (2, 3, 4))
    name = f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    (inputs / f".{name}.part").symlink_to(outside / "part.png")
    (inputs / name).symlink_to(outside / "secret.png")
    assert client.get(f"/api/inputs/{name}").status_code == 404  # a link is not served
    answer = client.post("/api/inputs", data={"image": (io.BytesIO(data), "x.png")}, content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()
    assert not (inputs / name).is_symlink()
    with client.get(f"/api/inputs/{name}") as served:
        assert served.data == data

    # a job whose folder is swapped for a link after it finished
    [job] = run(client, "image-resize", {"image": f"studio/{name}", "width": 8, "height": 8})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed"
    folder = services.data_dir.outputs / "studio" / job["id"]
    filename = done["outputs"][0]["filename"]
    (folder / filename).rename(outside / filename)
    (folder / filename).symlink_to(outside / "secret.png")
    assert client.get(done["outputs"][0]["url"]).status_code == 404  # the file itself a link
    folder.rename(tmp_path / "moved")
    folder.symlink_to(outside)
    assert client.get(done["outputs"][0]["url"]).status_code == 404  # its folder a link
    with client.get(f"/api/jobs/{job['id']}/export") as exported, \
            zipfile.ZipFile(io.BytesIO(exported.get_data())) as archive:
        assert sorted(archive.namelist()) == ["inputs/" + name, "job.json"]
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert not folder.is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == sorted([filename, "part.png", "secret.png"])

    # the inputs folder itself a link: nothing written there, a 409 saying so
    (inputs / name).rename(tmp_path / name)
    inputs.rename(tmp_path / "inputs-moved")
    inputs.symlink_to(outside)
    refused = client.post("/api/inputs", data={"image": (io.BytesIO(png_bytes((3, 3))), "y.png")},
                          content_type="multipart/form-data")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "unsafe_folder"
    assert client.get("/api/inputs/secret.png").status_code == 404
    assert (outside / "part.png").read_bytes() == b"not to be overwritten"
    assert (outside / "secret.png").read_bytes() == secret
    assert sorted(p.name for p in outside.iterdir()) == sorted([filename, "part.png", "secret.png"])

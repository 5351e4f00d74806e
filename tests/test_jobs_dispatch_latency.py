"""The short path from a submitted job to ComfyUI: what Studio leaves out, and what it must still do.

A picture a job needs is sent to ComfyUI once per socket (its name is its content's hash), never
again while that socket lives; a new socket (ComfyUI restarted, or only the connection dropped)
sends it again. Leaving the upload out must never cost a job: a picture removed from ComfyUI's
folder meanwhile is sent again when ComfyUI refuses the job, and one removed from Studio's folder
still fails the job, whatever ComfyUI has. A job's output rows are written with its final status,
so whoever reacts to ``jobs/finished`` finds them.
"""

from __future__ import annotations

import io

from flask.testing import FlaskClient
from PIL import Image
from sqlmodel import Session, select

from studio.events.bus import Event
from studio.jobs.models import JobOutput
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.jobs_helpers import run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer


def uploads(comfy_server: ComfyUITestServer) -> int:
    return comfy_server.paths_asked.get("/upload/image", 0)


def resize(client: FlaskClient, image: str) -> dict:
    [job] = run(client, "image-resize", {"image": image, "width": 24, "height": 12})
    return wait_status(client, job["id"])


def test_a_picture_goes_to_comfyui_once_per_socket(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)
    first, second = resize(client, image), resize(client, image)
    assert (first["status"], second["status"]) == ("completed", "completed")
    assert uploads(comfy_server) == 1  # the second job found it in ComfyUI's folder already

    other = upload_image(client, color=(1, 200, 3))  # another picture is another name: sent
    assert resize(client, other)["status"] == "completed"
    assert uploads(comfy_server) == 2

    connects = services.stream.connects
    comfy_server.drop_sockets()  # a new socket may be a new ComfyUI: nothing is taken for granted
    wait_until(lambda: services.stream.connects > connects and services.stream.connected, timeout=10)
    third = resize(client, image)
    assert third["status"] == "completed"
    assert uploads(comfy_server) == 3
    with client.get(third["outputs"][0]["url"]) as served, Image.open(io.BytesIO(served.data)) as made:
        assert made.size == (24, 12)


def test_a_picture_removed_from_comfyuis_folder_is_sent_again(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)
    assert resize(client, image)["status"] == "completed"
    (comfy_server.root / "input" / image).unlink()  # someone cleaned ComfyUI's input folder

    again = resize(client, image)
    assert again["status"] == "completed", again.get("error")
    assert uploads(comfy_server) == 2
    assert (comfy_server.root / "input" / image).is_file()
    assert not any("refused" in str(entry.get("note", "")) for entry in again["timeline"])
    assert resize(client, image)["status"] == "completed"
    assert uploads(comfy_server) == 2  # sent again over the same socket: the next job needs no upload


def test_a_picture_removed_from_studio_fails_the_job_though_comfyui_has_it(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)
    assert resize(client, image)["status"] == "completed"
    assert client.post("/api/queue/pause").status_code == 200
    [job] = run(client, "image-resize", {"image": image})
    stored = services.inputs.path_of(image)
    assert stored is not None
    stored.unlink()
    client.post("/api/queue/resume")

    failed = wait_status(client, job["id"])
    assert failed["status"] == "failed"
    assert "no longer in Studio's input folder" in failed["error"]["message"]
    assert uploads(comfy_server) == 1
    assert (comfy_server.root / "input" / image).is_file()  # ComfyUI's copy was there, and not used


def test_a_finished_job_lists_its_outputs_the_moment_it_is_announced(
    client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    """A page (or a script) that fetches the job on ``jobs/finished`` finds its files there already."""
    seen: dict[str, list[str]] = {}

    def on_event(event: Event) -> None:
        if event.type == "jobs/finished":
            with Session(services.engine) as session:
                rows = session.exec(select(JobOutput).where(JobOutput.job_id == event.payload["id"]))
                seen[str(event.payload["id"])] = [row.filename for row in rows]

    stop = services.bus.subscribe(on_event)
    try:
        image = upload_image(client)
        jobs = run(client, "image-resize", {"image": image}, count=3)
        finished = [wait_status(client, job["id"]) for job in jobs]
        wait_until(lambda: all(job["id"] in seen for job in jobs))  # announced just after the status reads
    finally:
        stop()
    for job in finished:
        assert job["status"] == "completed"
        assert seen[job["id"]] == [output["filename"] for output in job["outputs"]] != []

"""Helpers for job tests: upload an input, plant a workflow, run it, wait for a job to reach a state,
and the ``events`` fixture (every event the bus publishes during a test)."""

from __future__ import annotations

import io
import json
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import wait_until

if TYPE_CHECKING:
    from studio.events.bus import Event
    from studio.services import Services

FINISHED = {"completed", "failed", "cancelled", "interrupted"}


def png_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def strict_json(text: str) -> Any:
    """Parses like a browser would: NaN and Infinity are not JSON."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a JSON answer")

    return json.loads(text, parse_constant=refuse)


def upload_image(
    client: FlaskClient, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)
) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    answer = client.post("/api/inputs", data={"image": (io.BytesIO(buffer.getvalue()), "photo.png")},
                         content_type="multipart/form-data")
    assert answer.status_code in (200, 201), answer.get_json()
    return str(answer.get_json()["name"])


@pytest.fixture
def events(services: Services) -> Iterator[list[Event]]:
    """Every event published while the test runs, in order (a test module imports it as
    ``from tests.jobs_helpers import events as events`` for pytest to find it)."""
    seen: list[Event] = []
    stop = services.bus.subscribe(seen.append)
    yield seen
    stop()


def plant_workflow(services: Services, workflow_id: str, prompt: str) -> None:
    """A workflow with no form: its prompt goes to ComfyUI exactly as written here."""
    folder = services.data_dir.workflows / workflow_id
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(f"id: {workflow_id}\nname: {workflow_id}\nrequired_nodes: [EmptyImage]\n"
                                          "inputs: []\n")
    (folder / "workflow.json").write_text(prompt)


def run(client: FlaskClient, workflow: str, params: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    answer = client.post(f"/api/workflows/{workflow}/run", json={"params": params, "count": count})
    assert answer.status_code == 202, answer.get_json()
    return list(answer.get_json()["items"])


def wait_status(client: FlaskClient, job_id: str, statuses: set[str] | str = frozenset(FINISHED),
                timeout: float = 15) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def reached() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        return job if job["status"] in wanted else None

    found = wait_until(reached, timeout=timeout, interval=0.02)
    assert isinstance(found, dict)
    return found


SAMPLER_PARAMS = {"positive_prompt": "a lighthouse at dusk", "checkpoint": "random_sd15.safetensors", "steps": 4,
                  "resolution": {"w": 64, "h": 64}}


def me(client: FlaskClient) -> int:
    """The signed-in person's user id."""
    return int(client.get("/api/auth/me").get_json()["user"]["id"])


def plant_job(engine: Any, *, owner_id: int, prompt: Any, params: dict[str, Any] | None = None,
              status: str = "queued", position: float = 0.0, workflow_id: str = "image-resize") -> str:
    """A job row written straight into the database, as an older Studio or a hand edit could have left
    it: nothing of today's request parsing or validation has seen its values."""
    from sqlmodel import Session

    from studio.jobs.models import Job, JobStatus

    job_id = str(uuid.uuid4())
    for node in prompt.values() if isinstance(prompt, dict) else []:
        if isinstance(node, dict) and node.get("class_type") == "SaveImage":
            node["inputs"]["filename_prefix"] = f"studio/{job_id}/image"
    with Session(engine) as session:
        session.add(Job(id=job_id, workflow_id=workflow_id, workflow_name="Planted", owner_id=owner_id,
                        status=JobStatus(status), params=params or {}, prompt=prompt, position=position,
                        timeline=[{"at": "2026-01-01T00:00:00+00:00", "status": status, "note": "planted"}]))
        session.commit()
    return job_id


def resize_prompt(image: str, width: Any = 16, height: Any = 16) -> dict[str, Any]:
    """image-resize's API prompt, as Studio builds it, with any value in width and height."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}, "_meta": {"title": "Load Image"}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "lanczos", "width": width,
                                                     "height": height, "crop": "disabled"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "studio/planted/image"}},
    }


def bomb_png(width: int, height: int, text: dict[str, str] | None = None) -> bytes:
    """A few hundred bytes that claim ``width`` x ``height`` pixels (a decompression bomb's header):
    valid chunks and CRCs, with image data far too short to ever decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    body = b"".join(chunk(b"tEXt", key.encode() + b"\0" + value.encode()) for key, value in (text or {}).items())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + body
            + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))

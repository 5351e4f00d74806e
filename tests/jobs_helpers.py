"""Helpers for job tests: upload an input, run a workflow, wait for a job to reach a state."""

from __future__ import annotations

import io
from typing import Any

from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import wait_until

FINISHED = {"completed", "failed", "cancelled", "interrupted"}


def upload_image(
    client: FlaskClient, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)
) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    answer = client.post("/api/inputs", data={"image": (io.BytesIO(buffer.getvalue()), "photo.png")},
                         content_type="multipart/form-data")
    assert answer.status_code in (200, 201), answer.get_json()
    return str(answer.get_json()["name"])


def run(client: FlaskClient, workflow: str, params: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    answer = client.post(f"/api/workflows/{workflow}/run", json={"params": params, "count": count})
    assert answer.status_code == 201, answer.get_json()
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

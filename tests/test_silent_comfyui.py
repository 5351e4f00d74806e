"""A ComfyUI that accepts connections and never answers costs one short timeout per page, not one per
workflow, and the page shows readiness as unknown until ComfyUI answers again.

From a second outside review, tested as a class on the real stack."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.db import upgrade
from studio.services import build_services
from tests.conftest import signed_in_admin, wait_until
from tests.servers.comfyui import ComfyUITestServer


@pytest.fixture
def hanging(settings: Settings, comfy_server: ComfyUITestServer) -> Iterator[tuple[FlaskClient, ComfyUITestServer]]:
    quick = settings.model_copy(update={"comfyui_timeout_s": 0.5})
    built = build_services(quick)
    upgrade(built.engine)
    app = create_app(quick, built)
    comfy_server.path_delays.update({"/object_info": 120.0, "/models": 120.0})
    yield signed_in_admin(app), comfy_server
    comfy_server.path_delays.clear()
    built.engine.dispose()


def test_a_silent_comfyui_costs_one_short_timeout_per_page_not_one_per_workflow(
    hanging: tuple[FlaskClient, ComfyUITestServer]
) -> None:
    client, comfy = hanging
    started = time.monotonic()
    listing = client.get("/api/workflows")
    took = time.monotonic() - started
    assert listing.status_code == 200
    items = listing.get_json()["items"]
    assert len(items) >= 4
    assert took < 5.0, took  # one 0.5 s wait, not one per workflow (nor 30 s each)
    for item in items:
        assert item["readiness"]["ready"] is None
        assert "ComfyUI cannot be asked" in item["readiness"]["problems"][0]
    assert comfy.paths_asked.get("/object_info") == 1

    started = time.monotonic()
    form = client.get("/api/workflows/sd15-txt2img")
    ran = client.post("/api/workflows/image-resize/run", json={"params": {"width": 8, "height": 8}})
    assert time.monotonic() - started < 3.0  # the failure is remembered: nobody waits again
    assert form.status_code == 200
    assert form.get_json()["readiness"]["ready"] is None
    assert ran.status_code in (202, 400), ran.get_json()
    assert comfy.paths_asked.get("/object_info") == 1

    comfy.path_delays.clear()  # ComfyUI answers again, the request held so far included
    ready = wait_until(lambda: (r := client.get("/api/workflows/image-resize").get_json())["readiness"]["ready"]
                       is not None and r, timeout=10)
    assert ready["readiness"]["ready"] is True

"""The ``comfy_server`` fixture by ComfyUI release: a test marked
``@pytest.mark.parametrize("comfy_server", VERSIONS, indirect=True)`` runs against the captured
0.3.64 and against the newer behaviour (``tests/servers/comfy_newer.py``). Importing
``versioned_comfy_server`` into a test module puts it in place of conftest's ``comfy_server`` there;
unmarked tests get 0.3.64, as everywhere else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.comfy_newer import CAPTURED, VERSIONS
from tests.servers.comfyui import ComfyUITestServer

__all__ = ["VERSIONS", "versioned_comfy_server"]


@pytest.fixture(name="comfy_server")
def versioned_comfy_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ComfyUITestServer]:
    server = ComfyUITestServer(tmp_path / "comfyui", version=getattr(request, "param", CAPTURED)).start()
    yield server
    server.stop()

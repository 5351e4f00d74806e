from flask.testing import FlaskClient

from studio import __version__
from studio.comfy.stream import ConnectionState
from tests.servers.comfyui import ComfyUITestServer


def test_health_is_ok_and_versioned(client: FlaskClient) -> None:
    assert client.get("/api/health").get_json() == {"ok": True, "version": __version__}


def test_status_reports_comfyui_queue_disk_and_uptime(client: FlaskClient, comfy_server: ComfyUITestServer) -> None:
    comfy_server.devices = [{"name": "cuda:0 NVIDIA RTX 4090", "type": "cuda", "index": 0,
                             "vram_total": 24 * 2**30, "vram_free": 20 * 2**30}]

    status = client.get("/api/status").get_json()

    comfy = status["comfyui"]
    assert comfy["reachable"] is True
    assert comfy["version"] == "0.3.64"
    assert comfy["devices"][0]["name"] == "cuda:0 NVIDIA RTX 4090"
    assert comfy["queue_remaining"] == 0
    assert status["studio"]["uptime_s"] >= 0
    assert status["telemetry"]["disk"]["free"] > 0
    assert status["telemetry"]["ram_total"] > 0


def test_status_says_when_comfyui_is_down_and_how_to_fix_it(
    client: FlaskClient, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.stop()

    comfy = client.get("/api/status").get_json()["comfyui"]

    assert comfy["reachable"] is False
    assert "cannot be reached" in comfy["error"]
    assert "Settings" in comfy["hint"]
    assert "COMFYUI_URL" not in comfy["hint"]


def test_pages_are_served_with_security_headers(client: FlaskClient) -> None:
    for path in ("/", "/queue", "/settings"):
        with client.get(path) as response:
            assert response.status_code == 200
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert b'<main id="page"' in response.data
    with client.get("/assets/js/lib/api.js") as response:
        assert response.status_code == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    with client.get("/assets/index.html") as response:
        assert response.status_code == 404


def test_telemetry_takes_gpus_from_comfyui_when_nvml_is_absent(runtime, services, comfy_server) -> None:  # type: ignore[no-untyped-def]
    comfy_server.devices = [
        {"name": "cpu", "type": "cpu", "index": None, "vram_total": 1, "vram_free": 1},
        {"name": "cuda:0 NVIDIA H100", "type": "cuda", "index": 0, "vram_total": 80 * 2**30, "vram_free": 60 * 2**30},
    ]
    assert services.stream.wait_for(ConnectionState.CONNECTED, 5)

    sample = services.telemetry.sample()

    assert sample["gpu_source"] == "comfyui"
    assert sample["gpus"] == [{"index": 0, "name": "cuda:0 NVIDIA H100", "utilization_percent": None,
                               "vram_total": 80 * 2**30, "vram_used": 20 * 2**30}]

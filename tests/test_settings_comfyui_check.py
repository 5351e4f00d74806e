"""Saving the ComfyUI address tries it and says what answered; it is saved either way."""

import socket
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from tests.conftest import canary
from tests.servers.comfyui import ComfyUITestServer
from tests.servers.files import FileServer

PASSWORD = canary("comfy-pass-4f1b2c")


@pytest.fixture
def plain() -> Iterator[FileServer]:
    server = FileServer().start()
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def save(client: FlaskClient, url: str | None) -> dict:
    answer = client.put("/api/settings", json={"comfyui_url": url})
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


def test_comfyui_answering_is_named_with_its_version(client: FlaskClient, comfy_server: ComfyUITestServer) -> None:
    answer = save(client, comfy_server.url)
    assert answer["comfyui_check"] == {"answered": "comfyui", "version": "0.3.64",
                                       "message": f"ComfyUI 0.3.64 answered at {comfy_server.url}."}
    assert answer["settings"]["comfyui_url"]["value"] == comfy_server.url


def test_nothing_answering_is_said_plainly_and_the_address_is_still_saved(client: FlaskClient) -> None:
    port = closed_port()
    answer = save(client, f"http://127.0.0.1:{port}")
    check = answer["comfyui_check"]
    assert check["answered"] == "nothing"
    assert check["message"].startswith(f"Nothing answered at http://127.0.0.1:{port}: connection refused.")
    assert "saved" in check["message"]
    stored = client.get("/api/settings").get_json()["settings"]["comfyui_url"]
    assert stored == {"value": f"http://127.0.0.1:{port}", "source": "settings page", "secret": False}


def test_a_server_that_is_not_comfyui_is_told_apart(client: FlaskClient, plain: FileServer) -> None:
    answer = save(client, plain.url(""))  # answers 404 to /system_stats and /object_info
    assert answer["comfyui_check"]["answered"] == "other"
    assert answer["comfyui_check"]["message"] == (f"Something answered at {plain.url('')}, but it is not ComfyUI: "
                                                  "check the address and port.")
    plain.files["/system_stats"] = b"<html><body>It works!</body></html>"  # a web page, not ComfyUI's JSON
    again = save(client, plain.url("") + "/")
    assert again["comfyui_check"]["answered"] == "other"
    assert [r["path"] for r in plain.requests] == ["/system_stats", "/object_info", "/system_stats"]


def test_the_check_never_shows_the_address_s_password(client: FlaskClient, comfy_server: ComfyUITestServer) -> None:
    port = comfy_server.url.rsplit(":", 1)[1]
    answer = save(client, f"http://studio:{PASSWORD}@127.0.0.1:{port}")
    assert answer["comfyui_check"]["message"] == f"ComfyUI 0.3.64 answered at http://…@127.0.0.1:{port}."
    assert PASSWORD not in str(answer)


def test_other_settings_are_saved_without_trying_comfyui(client: FlaskClient) -> None:
    answer = client.put("/api/settings", json={"download_concurrency": 3}).get_json()
    assert "comfyui_check" not in answer
    back = save(client, None)  # back to the configured address: that one is tried
    assert back["comfyui_check"]["answered"] == "comfyui"

"""civitai.com or civitai.red, chosen on the Settings page: the one client, the metadata links and the
downloads follow the choice at once (no restart), the API key goes to the chosen site only, only an
admin chooses; and the Run form's trained words (``/api/civitai/trained-words``), for signed-in people."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.config import Settings
from studio.downloads.credentials import auth_headers
from studio.services import Services
from tests.conftest import canary, signed_in_user
from tests.servers.civitai import CivitaiServer
from tests.test_civitai_metadata import put_file

KEY = canary("civitai-" + "s" * 32)
SPICY = b"a spicy lora " * 4000
INK = b"an ink lora " * 4000


@pytest.fixture(scope="module")
def civitai() -> Iterator[CivitaiServer]:
    server = CivitaiServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, civitai: CivitaiServer) -> Settings:
    civitai.requests.clear()
    return Settings(studio_dir=tmp_path / "studio", comfyui_url="http://127.0.0.1:9", hf_endpoint="http://127.0.0.1:9",
                    civitai_endpoint=civitai.url("com"), civitai_com_url=civitai.url("com"),
                    civitai_red_url=civitai.url("red"), civitai_api_key=KEY, civitai_cache_ttl_s=0)


def _site(client: FlaskClient) -> dict:
    return dict(client.get("/api/settings").get_json()["settings"]["civitai_site"])


def test_the_chosen_site_is_asked_at_once_and_alone_gets_the_key(
        client: FlaskClient, services: Services, civitai: CivitaiServer) -> None:
    spicy = civitai.add_version("spicy.safetensors", SPICY, model_name="Spicy", nsfw=True)
    assert _site(client) == {"value": "com", "source": "configuration", "secret": False}
    answer = client.get(f"/api/civitai/lookup?ref=model:{spicy.model_id}")
    assert answer.status_code == 404  # civitai.com leaves NSFW models out
    [asked] = civitai.api_requests()
    assert (asked["site"], asked["authorization"]) == ("com", f"Bearer {KEY}")

    civitai.requests.clear()
    saved = client.put("/api/settings", json={"civitai_site": "red"})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["settings"]["civitai_site"]["value"] == "red"
    answer = client.get(f"/api/civitai/lookup?ref=model:{spicy.model_id}")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["name"] == "Spicy"
    assert {(r["site"], r["authorization"]) for r in civitai.api_requests()} == {("red", f"Bearer {KEY}")}
    # The key belongs to the chosen site now: civitai.com (and the file host) would get nothing.
    tokens = services.civitai.tokens()
    assert auth_headers(f"{civitai.url('com')}/api/v1/models/1", tokens) == {}
    assert auth_headers(f"{civitai.storage.url}/file", tokens) == {}
    assert services.downloads.civitai_endpoint == civitai.url("red")  # downloads resolve versions there too

    assert client.put("/api/settings", json={"civitai_site": "configured"}).status_code == 200
    civitai.requests.clear()
    assert client.get(f"/api/civitai/lookup?ref=model:{spicy.model_id}").status_code == 404
    assert {r["site"] for r in civitai.api_requests()} == {"com"}  # CIVITAI_ENDPOINT again


def test_only_an_admin_chooses_the_site_and_nonsense_is_refused(app: Flask, client: FlaskClient) -> None:
    bea = signed_in_user(app, client, "bea")
    assert bea.put("/api/settings", json={"civitai_site": "red"}).status_code == 403
    answer = client.put("/api/settings", json={"civitai_site": "civitai.evil"})
    assert answer.status_code == 400
    assert "civitai_site" in answer.get_json()["error"]["details"]["fields"]
    assert _site(client)["value"] == "com"


def test_trained_words_by_the_name_comfyui_lists_a_lora_under(
        app: Flask, client: FlaskClient, anon: FlaskClient, services: Services, civitai: CivitaiServer) -> None:
    civitai.add_version("ink.safetensors", INK, trained_words=["ink drawing", "loose lines"])
    put_file(services, "loras/styles/ink.safetensors", INK)
    put_file(services, "loras/plain.safetensors", b"nobody knows me " * 100)
    put_file(services, "checkpoints/ink.safetensors", INK)  # the same file as a checkpoint: not a LoRA
    assert services.civitai_meta.refresh()["found"] >= 1
    expected = {"items": {"styles/ink.safetensors": ["ink drawing", "loose lines"]}}
    assert client.get("/api/civitai/trained-words").get_json() == expected
    assert signed_in_user(app, client, "bea").get("/api/civitai/trained-words").get_json() == expected
    assert anon.get("/api/civitai/trained-words").status_code == 401

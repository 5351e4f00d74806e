"""Local model metadata: every hashed file on disk looked up on the fake CivitAI in bulk, the answers
kept (name, version, base model, trained words, preview on disk, newer version), shown through
``/api/civitai/metadata``; an unknown file remembered as "not on CivitAI"; failures said in words;
only an admin starts a lookup."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary, signed_in_user, wait_until
from tests.servers.civitai import CivitaiServer, png
from tests.servers.comfyui import ComfyUITestServer

KEY = canary("civitai-" + "m" * 32)
LORA = b"ink lora " * 5000
CHECKPOINT = b"dream checkpoint " * 5000
UNKNOWN = b"made at home " * 5000
sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731 - a short name for the tests


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    server = CivitaiServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, comfy_server: ComfyUITestServer, civitai: CivitaiServer) -> Settings:
    return Settings(studio_dir=tmp_path / "studio", comfyui_url=comfy_server.url, comfyui_reconnect_max_s=0.5,
                    civitai_endpoint=civitai.url("red"), hf_endpoint="http://127.0.0.1:9")


def put_file(services: Services, relative: str, data: bytes) -> None:
    """A model file on disk whose hash the inventory knows (as after a download or a background hash)."""
    path = services.models_root.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    services.inventory.record(path, sha(data))


def library(civitai: CivitaiServer, services: Services) -> dict[str, int]:
    """A LoRA with a preview, trained words and a newer version; a checkpoint; a file CivitAI never saw."""
    ink = civitai.add_version("ink.safetensors", LORA, model_name="Ink Style", version_name="v1",
                              trained_words=["ink drawing", "sketch"], base_model="SDXL 1.0", preview=png())
    newer = civitai.add_version("ink_v2.safetensors", LORA + b"2", model_id=ink.model_id, version_name="v2")
    dream = civitai.add_version("dream.safetensors", CHECKPOINT, model_name="DreamShaper", model_type="Checkpoint")
    put_file(services, "loras/styles/ink.safetensors", LORA)
    put_file(services, "checkpoints/dream.safetensors", CHECKPOINT)
    put_file(services, "loras/home.safetensors", UNKNOWN)
    return {"ink": ink.id, "ink_model": ink.model_id, "newer": newer.id, "dream": dream.id}


def test_local_files_are_looked_up_in_bulk_and_shown_with_preview_and_newer_version(
    client: FlaskClient, services: Services, civitai: CivitaiServer
) -> None:
    ids = library(civitai, services)
    client.put("/api/settings", json={"civitai_api_key": KEY})

    summary = services.civitai_meta.refresh()
    assert summary == {"asked": 3, "found": 2, "not_found": 1, "previews": 1, "updates": 1}
    bulk = [r for r in civitai.requests if r["method"] == "POST"]
    assert len(bulk) == 1
    assert sorted(h.lower() for h in bulk[0]["body"]) == sorted([sha(LORA), sha(CHECKPOINT), sha(UNKNOWN)])
    assert all(r["authorization"] == f"Bearer {KEY}" for r in civitai.requests)

    answer = client.get("/api/civitai/metadata").get_json()
    ink = answer["items"][sha(LORA)]
    assert ink["model_name"] == "Ink Style"
    assert ink["version_name"] == "v1"
    assert ink["base_model"] == "SDXL 1.0"
    assert ink["trained_words"] == ["ink drawing", "sketch"]
    assert ink["update_available"] is True
    assert ink["latest_version_name"] == "v2"
    assert ink["url"] == f"{civitai.url('red')}/models/{ids['ink_model']}?modelVersionId={ids['ink']}"
    assert ink["update_url"].endswith(f"modelVersionId={ids['newer']}")
    dream = answer["items"][sha(CHECKPOINT)]
    assert dream["model_type"] == "Checkpoint"
    assert dream["update_available"] is False
    assert dream["preview"] is None
    assert answer["items"][sha(UNKNOWN)]["status"] == "not_found"
    assert answer["status"]["last_error"] is None

    picture = client.get(ink["preview"])
    data = picture.data
    picture.close()
    assert picture.status_code == 200
    assert picture.mimetype == "image/webp"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP"  # Studio's own copy, not CivitAI's bytes
    assert len(civitai.storage.requests) == 1
    assert civitai.storage.requests[0]["authorization"] is None  # the image host never sees the key


def test_an_unknown_file_is_not_asked_again_at_every_run(services: Services, civitai: CivitaiServer) -> None:
    library(civitai, services)
    services.civitai_meta.refresh()
    assert services.civitai_meta.refresh()["asked"] == 0
    assert len([r for r in civitai.requests if r["method"] == "POST"]) == 1

    later = datetime.now(UTC) + timedelta(days=8)
    services.civitai_meta.now = lambda: later
    assert services.civitai_meta.refresh()["asked"] == 2  # found files are checked again after a week
    much_later = datetime.now(UTC) + timedelta(days=31)
    services.civitai_meta.now = lambda: much_later
    assert services.civitai_meta.refresh()["asked"] == 3  # the unknown one only after a month


def test_a_file_gone_from_disk_is_not_listed_and_a_new_one_is_asked_about(
    client: FlaskClient, services: Services, civitai: CivitaiServer
) -> None:
    library(civitai, services)
    services.civitai_meta.refresh()
    (services.models_root.root / "checkpoints" / "dream.safetensors").unlink()
    assert sha(CHECKPOINT) not in client.get("/api/civitai/metadata").get_json()["items"]
    extra = civitai.add_version("extra.safetensors", b"extra " * 999, model_name="Extra")
    put_file(services, "loras/extra.safetensors", b"extra " * 999)
    assert services.civitai_meta.refresh()["asked"] == 1
    assert client.get("/api/civitai/metadata").get_json()["items"][sha(b"extra " * 999)]["version_id"] == extra.id


def test_a_failed_lookup_keeps_what_was_known_and_says_why(
    client: FlaskClient, services: Services, civitai: CivitaiServer
) -> None:
    library(civitai, services)
    services.civitai_meta.refresh()
    waits: list[float] = []
    services.civitai_meta.client.wait = waits.append  # never a real sleep in a test

    civitai.fail(10, status=503)
    assert services.civitai_meta.refresh(force=True) == {"failed": 1}
    answer = client.get("/api/civitai/metadata").get_json()
    assert answer["status"]["last_error"] == "CivitAI is not answering properly right now (HTTP 503); try again later."
    assert answer["items"][sha(LORA)]["model_name"] == "Ink Style"  # what was known stays
    assert waits == [1.0, 2.0]  # the app's client retries twice, with backoff

    civitai._faults.clear()
    civitai.throttle(1, retry_after="600")  # longer than the background waits: reported, tried later
    assert services.civitai_meta.refresh(force=True) == {"failed": 1}
    assert "limiting how often" in client.get("/api/civitai/metadata").get_json()["status"]["last_error"]

    assert services.civitai_meta.refresh(force=True)["found"] == 2
    assert client.get("/api/civitai/metadata").get_json()["status"]["last_error"] is None


def test_previews_above_the_allowed_nsfw_level_are_not_kept(services: Services, civitai: CivitaiServer) -> None:
    civitai.add_version("spicy.safetensors", LORA, model_name="Spicy", preview=png((9, 9, 9)), preview_nsfw_level=8)
    put_file(services, "loras/spicy.safetensors", LORA)
    assert services.civitai_meta.refresh()["previews"] == 0
    assert services.civitai_meta.listing()[sha(LORA)]["preview"] is None
    assert civitai.storage.requests == []


def test_only_an_admin_starts_a_lookup_and_it_runs_in_the_background(
    app: Flask, client: FlaskClient, anon: FlaskClient, runtime: Runtime, services: Services, civitai: CivitaiServer
) -> None:
    library(civitai, services)
    person = signed_in_user(app, client, "reader")
    refused = person.post("/api/civitai/metadata/refresh", json={})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "admin_only"
    assert anon.post("/api/civitai/metadata/refresh", json={}).status_code in (401, 403)
    assert anon.get("/api/civitai/metadata").status_code == 401
    assert civitai.requests == []  # nothing was asked for them
    assert person.get("/api/civitai/metadata").get_json()["items"] == {}

    started = client.post("/api/civitai/metadata/refresh", json={"force": True})
    assert started.status_code == 202
    wait_until(lambda: len(person.get("/api/civitai/metadata").get_json()["items"]) == 3, timeout=10)
    assert person.get("/api/civitai/metadata").get_json()["items"][sha(LORA)]["model_name"] == "Ink Style"


@pytest.mark.parametrize("name", ["../../secrets/key", "abc", "A" * 64, "0" * 63])
def test_the_preview_route_reaches_only_previews(client: FlaskClient, name: str) -> None:
    assert client.get(f"/api/civitai/previews/{name}.webp").status_code == 404


def test_newly_hashed_files_are_looked_up_in_the_background(services: Services, civitai: CivitaiServer) -> None:
    library(civitai, services)
    meta = services.civitai_meta
    meta.after_hashing_s = 0.0
    meta.start(first_run_in_s=3600)
    try:
        assert civitai.requests == []  # nothing at once: the first run is scheduled
        services.bus.publish("models/hashed", {"path": "loras/styles/ink.safetensors", "sha256": sha(LORA)})
        wait_until(lambda: len(meta.listing()) == 3, timeout=10)
    finally:
        meta.stop()
    assert len([r for r in civitai.requests if r["method"] == "POST"]) == 1

"""A CivitAI model's images saved into the gallery with what they were made with, and NSFW levels hidden
unless a person turns them on: on the CivitAI page's list and in the Gallery, each person's own setting;
the image comes through the client's file rules (no key to the image host, pictures only)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from studio.config import Settings
from studio.services import Services
from tests.conftest import canary, signed_in_user, wait_until
from tests.servers.civitai import CivitaiServer, png

KEY = canary("civitai-" + "g" * 32)
META = {"prompt": "a lighthouse on a cliff, café 東京", "negativePrompt": "blurry, lowres", "seed": 4242,
        "steps": 28, "cfgScale": 6.5, "sampler": "DPM++ 2M Karras", "Model": "dreamshaper_8",
        "resources": [{"name": "film_grain", "type": "lora", "weight": 0.6}]}


@pytest.fixture(scope="module")
def civitai() -> Iterator[CivitaiServer]:
    server = CivitaiServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, civitai: CivitaiServer) -> Settings:
    return Settings(studio_dir=tmp_path / "studio", comfyui_url="http://127.0.0.1:9", hf_endpoint="http://127.0.0.1:9",
                    civitai_endpoint=civitai.url("red"), civitai_com_url=civitai.url("com"),
                    civitai_red_url=civitai.url("red"), civitai_api_key=KEY, civitai_cache_ttl_s=0)


@pytest.fixture
def model(civitai: CivitaiServer) -> dict[str, int]:
    version = civitai.add_version("light.safetensors", b"light lora " * 500, model_name="Lighthouses")
    calm = civitai.add_image(png((30, 120, 200), (80, 60)), version_ids=[version.id], nsfw_level=1, meta=META)
    spicy = civitai.add_image(png((200, 30, 60)), version_ids=[version.id], nsfw_level=8,
                              meta={"prompt": "a spicy lighthouse", "seed": 7})
    return {"model": version.model_id, "calm": calm, "spicy": spicy}


def _gallery(client: FlaskClient, **query: str) -> list[dict]:
    answer = client.get("/api/gallery", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    return list(answer.get_json()["items"])


def test_a_models_image_is_saved_with_its_metadata_through_the_file_rules(
        client: FlaskClient, services: Services, civitai: CivitaiServer, model: dict[str, int]) -> None:
    listed = client.get(f"/api/civitai/models/{model['model']}/images").get_json()
    assert [i["id"] for i in listed["items"]] == [model["calm"]]  # level 8 left out by default …
    assert (listed["hidden"], listed["level"]) == (1, 1)  # … and counted
    assert listed["items"][0]["prompt"].startswith("a lighthouse on a cliff")
    assert listed["items"][0]["saved"] is False

    civitai.storage.requests.clear()
    saved = client.post("/api/gallery/civitai", json={"image_id": model["calm"]})
    assert saved.status_code == 201, saved.get_json()
    item = saved.get_json()
    assert (item["source"], item["nsfw_level"], item["civitai_image_id"]) == ("civitai", 1, model["calm"])
    assert (item["prompt"], item["negative"], item["seed"]) == (META["prompt"], "blurry, lowres", 4242)
    assert item["model"] == "dreamshaper_8"
    assert item["loras"] == [{"name": "film_grain", "strength": 0.6}]
    assert (item["params"]["steps"], item["params"]["sampler"]) == (28, "DPM++ 2M Karras")
    assert (item["width"], item["height"]) == (80, 60)
    assert [r["authorization"] for r in civitai.storage.requests] == [None]  # the image host never sees the key
    with client.get(item["url"]) as file:
        assert Image.open(io.BytesIO(file.get_data())).size == (80, 60)
    assert client.post("/api/gallery/civitai", json={"image_id": model["calm"]}).status_code == 200  # once only
    assert [i["id"] for i in _gallery(client, source="civitai")] == [item["id"]]
    assert [i["id"] for i in _gallery(client, q="lighthouse cliff")] == [item["id"]]
    assert [i["id"] for i in _gallery(client, lora="film_grain")] == [item["id"]]
    assert client.get(f"/api/civitai/models/{model['model']}/images").get_json()["items"][0]["saved"] is True
    assert services.gallery.index.wait_idle(10)
    thumb = wait_until(lambda: client.get(f"/api/gallery/items/{item['id']}").get_json()["thumbs"].get("256"))
    with client.get(str(thumb)) as answer:
        assert answer.status_code == 200
    assert services.gallery.index.reconcile() == {"dropped": 0, "added": 0, "replaced": 0}  # indexed already


def test_nsfw_is_hidden_until_each_person_turns_it_on_for_themselves(
        app: Flask, client: FlaskClient, model: dict[str, int]) -> None:
    spicy = client.post("/api/gallery/civitai", json={"image_id": model["spicy"]})
    assert spicy.status_code == 201  # saving is allowed: it is theirs …
    spicy_id = spicy.get_json()["id"]
    assert _gallery(client) == []  # … and hidden at the default level
    assert client.get("/api/gallery/viewer").get_json() == {"nsfw_level": 1}
    assert client.put("/api/gallery/viewer", json={"nsfw_level": 8}).get_json() == {"nsfw_level": 8}
    assert [i["id"] for i in _gallery(client)] == [spicy_id]
    listed = client.get(f"/api/civitai/models/{model['model']}/images").get_json()
    assert {i["id"] for i in listed["items"]} == {model["calm"], model["spicy"]}
    assert listed["hidden"] == 0
    assert client.put("/api/gallery/viewer", json={"nsfw_level": 3}).status_code == 400
    assert client.put("/api/gallery/viewer", json={"nsfw_level": "8"}).status_code == 400

    bea = signed_in_user(app, client, "bea")
    assert bea.get("/api/gallery/viewer").get_json() == {"nsfw_level": 1}  # the admin's choice is not hers
    assert bea.get(f"/api/gallery/items/{spicy_id}").status_code == 404  # nor their items
    hers = bea.post("/api/gallery/civitai", json={"image_id": model["calm"]})
    assert hers.status_code == 201
    assert [i["id"] for i in _gallery(bea)] == [hers.get_json()["id"]]
    assert bea.get(f"/api/civitai/models/{model['model']}/images").get_json()["hidden"] == 1
    assert bea.post("/api/gallery/delete", json={"ids": [spicy_id]}).status_code == 404


def test_what_is_not_a_picture_is_refused_and_leaves_nothing(
        client: FlaskClient, services: Services, civitai: CivitaiServer) -> None:
    fake = civitai.add_image(b"<html>not a picture</html>", nsfw_level=1, meta={"prompt": "x"})
    answer = client.post("/api/gallery/civitai", json={"image_id": fake})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "not_an_image"
    assert not (services.data_dir.outputs / "civitai").exists() or not any(
        (services.data_dir.outputs / "civitai").rglob("*.*"))
    assert client.get("/api/gallery?source=civitai").get_json()["items"] == []
    for body in ({"image_id": 0}, {"image_id": "12"}, {"image_id": 2**60}, {}, {"image_id": 1, "x": 1}):
        assert client.post("/api/gallery/civitai", json=body).status_code == 400, body
    assert client.post("/api/gallery/civitai", json={"image_id": 999_999_999}).status_code == 404

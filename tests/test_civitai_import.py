"""Importing an image into a runnable preset, end to end over real sockets: the fake CivitAI (images
with ``meta`` and ``meta.comfy``, tRPC generation data, downloads redirected to a file host), the
fake ComfyUI, the real download queue. A dropped PNG with A1111 ``parameters`` and a CivitAI image
with a ComfyUI graph each end with the missing model downloaded and a preset saved; the key never
reaches the file host; a plain user imports for themselves and cannot add to the catalogs."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, PngImagePlugin

from studio.services import Services
from tests.conftest import canary, signed_in_user, wait_until
from tests.servers.civitai import CivitaiServer
from tests.servers.comfyui import ComfyUITestServer
from tests.test_civitai_metadata import civitai, settings  # noqa: F401 - shared fixtures

KEY = canary("civitai-" + "i" * 32)
LORA = b"ink lora weights " * 3000
CHECKPOINT = b"dream checkpoint weights " * 3000
sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731 - a short name for the tests
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def queue(services: Services) -> Iterator[Services]:
    services.downloads.start()
    yield services
    services.downloads.stop()


def put_file(services: Services, relative: str, data: bytes) -> None:
    path = services.models_root.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    services.inventory.record(path, sha(data))


def png_with(**texts: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (32, 48), (10, 120, 200)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def upload(client: FlaskClient, action: str, data: bytes, **form: str) -> Any:
    return client.post(f"/api/civitai/import/{action}/file",
                       data={"file": (io.BytesIO(data), "made.png"), **form}, content_type="multipart/form-data")


def finished(services: Services, download_id: str) -> Any:
    wait_until(lambda: services.downloads.get(download_id).status.value in ("completed", "failed"), timeout=20)
    return services.downloads.get(download_id)


A1111 = ("masterpiece, a lighthouse at dusk, <lora:ink:0.8>, ink drawing\n"
         "Negative prompt: blurry, lowres\n"
         "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 123456789, Size: 512x768, "
         "Model hash: {ckpt}, Model: dreamshaper_8, Clip skip: 2, Lora hashes: \"ink: {lora}\", Version: v1.10.1")


def test_a_dropped_a1111_png_becomes_a_preset_with_its_missing_lora_downloaded(
    app: Flask, client: FlaskClient, queue: Services, civitai: CivitaiServer, comfy_server: ComfyUITestServer  # noqa: F811
) -> None:
    services = queue
    # what ComfyUI will list once the LoRA is downloaded (its model lists are read once and cached)
    comfy_server.models.update({"checkpoints": ["dreamshaper_8.safetensors", "v1-5-pruned-emaonly.safetensors"],
                                "loras": ["ink.safetensors"]})
    civitai.add_version("ink.safetensors", LORA, model_name="Ink", version_name="v1", base_model="SD 1.5",
                        trained_words=["ink drawing"])
    put_file(services, "checkpoints/dreamshaper_8.safetensors", CHECKPOINT)
    client.put("/api/settings", json={"civitai_api_key": KEY})
    image = png_with(parameters=A1111.format(ckpt=sha(CHECKPOINT)[:10], lora=sha(LORA)[:10]))
    user = signed_in_user(app, client, "ada")

    answer = upload(user, "plan", image)
    assert answer.status_code == 200, answer.get_json()
    plan = answer.get_json()["plan"]
    assert plan["kind"] == "txt2img"
    assert plan["workflow"]["id"] == "sd15-txt2img"
    assert "t2i" in plan["workflow"]["reason"] or "txt2img" in plan["workflow"]["reason"]
    assert {c["id"] for c in plan["candidates"]} >= {"sd15-txt2img", "sd15-img2img"}
    gen = plan["generation"]
    assert gen["prompt"] == "masterpiece, a lighthouse at dusk, ink drawing"  # the LoRA tag taken out
    assert (gen["seed"], gen["steps"], gen["cfg"], gen["width"], gen["height"], gen["clip_skip"]) == (
        123456789, 28, 6.5, 512, 768, 2)
    by_role = {r["role"]: r for r in plan["resources"]}
    assert by_role["checkpoint"]["status"] == "present"
    assert by_role["checkpoint"]["via"] == "hash"  # AutoV2 matched against the local SHA-256
    assert by_role["checkpoint"]["path"] == "checkpoints/dreamshaper_8.safetensors"
    lora = by_role["lora"]
    assert (lora["status"], lora["weight"], lora["file"], lora["folder"]) == ("missing", 0.8, "ink.safetensors",
                                                                                 "loras")
    assert lora["size_bytes"] == pytest.approx(len(LORA), rel=0.01)
    assert plan["missing_count"] == 1
    assert plan["missing_bytes"] == lora["size_bytes"]
    params = plan["params"]
    assert params["positive_prompt"] == gen["prompt"]
    assert params["sampler_name"] == "dpmpp_2m"  # "DPM++ 2M Karras" in ComfyUI's words
    assert params["checkpoint"] == "dreamshaper_8.safetensors"
    assert params["resolution"] == {"w": 512, "h": 768}
    assert any("scheduler" in note for note in plan["left_out"])  # said, not dropped silently
    assert any("LoRA ink" in note for note in plan["left_out"])

    refused = upload(user, "download", image)  # a plain user: the LoRA is in no catalog yet
    assert refused.status_code == 200
    assert refused.get_json()["queued"] == []
    assert refused.get_json()["refused"][0]["code"] == "admin_only"
    assert services.downloads.list() == []

    queued = upload(client, "download", image)  # the admin: added to the LoRA catalog and queued
    assert queued.status_code == 201, queued.get_json()
    body = queued.get_json()
    assert body["added_to_catalogs"] == ["ink.safetensors"]
    assert body["total_bytes"] == pytest.approx(len(LORA), rel=0.01)
    entry = services.catalogs()["loras"].find("ink.safetensors")
    assert entry is not None
    assert entry[1].sha256 == sha(LORA)
    assert entry[1].dest == "loras"
    done = finished(services, body["queued"][0]["id"])
    assert done.status.value == "completed", done.error
    assert (services.models_root.root / "loras" / "ink.safetensors").read_bytes() == LORA
    assert civitai.storage.requests
    assert all(r["authorization"] is None for r in civitai.storage.requests)
    assert all(KEY not in r["path"] for r in civitai.storage.requests)
    assert civitai.api_requests("/api/download/")[-1]["authorization"] == f"Bearer {KEY}"

    again = upload(user, "plan", image).get_json()["plan"]
    assert again["ready"] is True
    assert {r["role"]: r["status"] for r in again["resources"]} == {"checkpoint": "present", "lora": "present"}

    saved = upload(user, "preset", image, name="Lighthouse", private="true")
    assert saved.status_code == 201, saved.get_json()
    preset = saved.get_json()["preset"]
    assert preset["owner"] == "ada"
    assert preset["workflow_id"] == "sd15-txt2img"
    assert preset["source"] == {"type": "file", "file_name": "made.png", "detected_type": "txt2img"}
    assert preset["params"]["seed"] == 123456789
    assert preset["seed_policy"] == "fixed"
    on_disk = json.loads((services.data_dir.presets / f"{preset['id']}.json").read_text())
    assert on_disk["source"]["type"] == "file"  # the original's field, in the original's file
    other = signed_in_user(app, client, "bob")
    assert other.get(f"/api/presets/{preset['id']}").status_code == 404  # ada's private preset stays hers

    ran = upload(user, "run", image)  # everything is here now: one job at once, hers
    assert ran.status_code == 202, ran.get_json()
    job_id = ran.get_json()["jobs"][0]["id"]
    assert user.get(f"/api/jobs/{job_id}").status_code == 200
    assert other.get(f"/api/jobs/{job_id}").status_code in (403, 404)  # not bob's
    assert services.downloads.get(body["queued"][0]["id"]).requested_by == 1  # the admin's download


def comfy_graph() -> dict[str, Any]:
    graph = json.loads((ROOT / "workflows" / "sd15-txt2img" / "workflow.json").read_text())
    graph["4"]["inputs"]["ckpt_name"] = "dream.safetensors"
    graph["5"]["inputs"].update({"width": 512, "height": 512})
    graph["7"]["inputs"]["text"] = "blurry"
    graph["6"]["inputs"]["text"] = "a red fox in snow"
    graph["10"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1],
                                                          "lora_name": "ink.safetensors", "strength_model": 0.7,
                                                          "strength_clip": 0.7}}
    graph["3"]["inputs"].update({"model": ["10", 0], "seed": 42, "steps": 12, "sampler_name": "euler_ancestral"})
    graph["6"]["inputs"]["clip"] = ["10", 1]
    return graph


def test_a_civitai_image_with_a_comfyui_graph_imports_as_a_workflow_with_its_checkpoint_downloaded(
    app: Flask, client: FlaskClient, queue: Services, civitai: CivitaiServer  # noqa: F811
) -> None:
    services = queue
    checkpoint = civitai.add_version("dream.safetensors", CHECKPOINT, model_name="Dream", model_type="Checkpoint",
                                     base_model="SD 1.5")
    lora = civitai.add_version("ink.safetensors", LORA, model_name="Ink")
    put_file(services, "loras/ink.safetensors", LORA)
    graph = comfy_graph()
    meta = {"prompt": "a red fox in snow", "negativePrompt": "blurry", "seed": 42, "steps": 12, "cfgScale": 7,
            "sampler": "Euler a", "comfy": {"prompt": copy.deepcopy(graph), "workflow": None}}
    from tests.servers.civitai import png
    image_id = civitai.add_image(png(), version_ids=[checkpoint.id, lora.id], meta=meta)
    client.put("/api/settings", json={"civitai_api_key": KEY})
    address = f"https://civitai.com/images/{image_id}?period=AllTime"
    user = signed_in_user(app, client, "ada")

    plan = user.post("/api/civitai/import/plan", json={"image": address})
    assert plan.status_code == 200, plan.get_json()
    plan = plan.get_json()["plan"]
    assert plan["comfy_graph"] is True
    assert "ComfyUI graph" in plan["workflow"]["reason"]
    assert plan["source"]["civitai_image_id"] == image_id
    assert sorted(r["role"] for r in plan["resources"]) == ["checkpoint", "lora"]  # graph and CivitAI: one each
    by_role = {r["role"]: r for r in plan["resources"]}
    assert by_role["lora"]["status"] == "present"
    assert by_role["lora"]["path"] == "loras/ink.safetensors"
    assert by_role["checkpoint"]["status"] == "missing"
    assert by_role["checkpoint"]["version_id"] == checkpoint.id
    assert by_role["checkpoint"]["folder"] == "checkpoints"
    assert plan["missing_bytes"] == pytest.approx(len(CHECKPOINT), rel=0.01)

    refused = user.post("/api/civitai/import/preset", json={"image": str(image_id)})
    assert refused.status_code == 403  # importing a workflow is an admin's
    assert refused.get_json()["error"]["code"] == "admin_only"
    assert not [w for w in services.library.all() if not w.bundled]
    mine = user.post("/api/civitai/import/preset", json={"image": str(image_id), "as_workflow": False,
                                                         "workflow_id": "sd15-txt2img"})
    assert mine.status_code == 201, mine.get_json()
    assert mine.get_json()["preset"]["params"]["sampler_name"] == "euler_ancestral"
    assert mine.get_json()["workflow"]["reason"] == "you chose it"

    running = user.post("/api/civitai/import/run", json={"image": str(image_id)})
    assert running.status_code == 409  # the checkpoint is not here yet
    assert running.get_json()["error"]["details"]["missing"] == ["Dream"]

    queued = client.post("/api/civitai/import/download", json={"image": address})
    assert queued.status_code == 201, queued.get_json()
    body = queued.get_json()
    assert [item["name"] for item in body["queued"]] == [body["queued"][0]["name"]]
    assert body["queued"][0]["path"] == "checkpoints/dream.safetensors"
    assert services.catalogs()["models"].find("dream.safetensors") is not None
    assert finished(services, body["queued"][0]["id"]).status.value == "completed"
    assert all(r["authorization"] is None for r in civitai.storage.requests)
    assert [r for r in civitai.api_requests() if r["authorization"] != f"Bearer {KEY}"] == []

    saved = client.post("/api/civitai/import/preset", json={"image": address, "name": "Fox"})
    assert saved.status_code == 201, saved.get_json()
    answer = saved.get_json()
    workflow_id = answer["workflow"]["id"]
    assert answer["workflow"]["reason"] == "imported from the image's ComfyUI graph"
    workflow = services.library.get(workflow_id)
    assert not workflow.bundled
    assert workflow.prompt["10"]["inputs"]["lora_name"] == "ink.safetensors"
    preset = answer["preset"]
    assert preset["params"]["lora"] == "ink.safetensors"  # the LoRA into the graph's own LoRA slot, with its weight
    assert preset["params"]["loraloader_strength_model"] == 0.8
    assert (preset["params"]["width"], preset["params"]["height"]) == (512, 512)
    assert answer["left_out"] == []
    assert preset["workflow_id"] == workflow_id
    assert preset["source"] == {"type": "civitai", "civitai_image_id": image_id,
                                "civitai_url": f"{civitai.url('red')}/images/{image_id}", "detected_type": "txt2img"}
    assert answer["plan"]["ready"] is True


def test_hostile_metadata_is_cut_and_refused_in_words(client: FlaskClient, services: Services,
                                                       civitai: CivitaiServer) -> None:  # noqa: F811
    huge = "word " * 50_000
    text = (f"<lora:x:1e308> {huge}\nNegative prompt: n\nSteps: 99999999, Sampler: Nonsense, CFG scale: nan, "
            "Seed: -5, Size: 99999x2, Clip skip: 1e400")
    plan = upload(client, "plan", png_with(parameters=text)).get_json()["plan"]
    gen = plan["generation"]
    assert len(gen["prompt"]) <= 20_000
    assert (gen["steps"], gen["cfg"], gen["seed"], gen["width"], gen["clip_skip"]) == (None, None, None, None, None)
    assert [r["weight"] for r in plan["resources"] if r["role"] == "lora"] == [1.0]  # not 1e308
    assert "sampler_name" not in plan["params"]

    for data, field in ((png_with(), "no metadata"), (b"not an image at all", "unsupported file"),
                        (b"{not json", "not JSON"), (b'{"a": [1]}', "no metadata")):
        answer = upload(client, "plan", data)
        assert answer.status_code == 400
        assert answer.get_json()["error"]["details"]["fields"]["file"] == field
    for ref in ("https://civitai.com/models/12", "javascript:alert(1)", "image:0", "99999999999999999"):
        answer = client.post("/api/civitai/import/plan", json={"image": ref})
        assert answer.status_code == 400, ref
    assert client.post("/api/civitai/import/plan", json={"image": "1", "workflow_id": "../etc"}).status_code == 400
    assert client.post("/api/civitai/import/plan", json={"image": "x" * 3000}).status_code == 400
    missing = client.post("/api/civitai/import/plan", json={"image": "image:424242"})
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "civitai_not_found"
    assert civitai.storage.requests == []


def test_a_civitai_version_is_added_to_the_right_catalog_and_moved_to_the_loras(
    app: Flask, client: FlaskClient, services: Services, civitai: CivitaiServer  # noqa: F811
) -> None:
    flux = civitai.add_version("flux_dev_fp8.safetensors", CHECKPOINT, model_name="Flux Dev", model_type="Checkpoint",
                               base_model="Flux.1 D")
    style = civitai.add_version("style.safetensors", LORA, model_name="Style", model_type="LoCon",
                                trained_words=["stylish"])
    emb = civitai.add_version("easyneg.safetensors", b"emb" * 999, model_name="EasyNegative",
                              model_type="TextualInversion")
    user = signed_in_user(app, client, "ada")
    assert user.post("/api/civitai/catalog", json={"ref": str(flux.id)}).status_code == 403
    assert services.catalogs()["models"].find("flux_dev_fp8.safetensors") is None

    added = client.post("/api/civitai/catalog",
                        json={"ref": f"https://civitai.com/models/{flux.model_id}?modelVersionId={flux.id}"})
    assert added.status_code == 201, added.get_json()
    entry = added.get_json()["entry"]
    assert (entry["dest"], entry["source"], entry["civitai_version_id"], entry["sha256"]) == (
        "diffusion_models", "civitai", flux.id, sha(CHECKPOINT))
    assert entry["size_gb"] == pytest.approx(len(CHECKPOINT) / 1024**3, abs=1e-4)
    assert added.get_json()["kind"] == "models"
    lora = client.post("/api/civitai/catalog", json={"ref": f"https://civitai.com/models/{style.model_id}"})
    assert lora.get_json()["kind"] == "loras"
    assert lora.get_json()["entry"]["dest"] == "loras"
    assert lora.get_json()["entry"]["trainedWords"] == ["stylish"]
    assert client.post("/api/civitai/catalog", json={"ref": f"version:{emb.id}"}).get_json()["entry"]["dest"] == \
        "embeddings"

    looked = client.get(f"/api/civitai/lookup?ref=model:{flux.model_id}").get_json()
    assert looked["versions"][0]["in_catalog"] is True
    assert looked["versions"][0]["folder"] == "diffusion_models"
    assert looked["versions"][0]["present"] is None

    assert user.post("/api/civitai/catalog/move-to-loras", json={"file": "easyneg.safetensors"}).status_code == 403
    moved = client.post("/api/civitai/catalog/move-to-loras", json={"file": "easyneg.safetensors"})
    assert moved.status_code == 200, moved.get_json()
    catalogs = services.catalogs()
    assert catalogs["models"].find("easyneg.safetensors") is None
    assert catalogs["loras"].find("easyneg.safetensors")[1].dest == "loras"
    assert client.post("/api/civitai/catalog/move-to-loras", json={"file": "nothing.safetensors"}).status_code == 409

"""What a workflow needs: models from the workflow's own models[] list, from CivitAI by hash and by
name (a fake CivitAI over loopback), and missing custom nodes named with their repository."""

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from studio.workflows.sources import model_sources, node_sources, repository
from tests.conftest import wait_until
from tests.servers.comfyui import ComfyUITestServer
from tests.servers.files import FileServer
from tests.ui_workflows import sampler_ui

CHECKPOINT = os.urandom(256 * 1024)
LORA = os.urandom(128 * 1024)
TWEAKER = os.urandom(64 * 1024)


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    server.files["/ckpt.safetensors"] = CHECKPOINT
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, comfy_server: ComfyUITestServer, files: FileServer) -> Settings:
    comfy_server.models = {"checkpoints": [], "loras": []}
    return Settings(studio_dir=tmp_path / "studio", comfyui_url=comfy_server.url, comfyui_reconnect_max_s=0.5,
                    civitai_endpoint=files.url("", host="localhost"), hf_endpoint="http://127.0.0.1:9")


def wait_completed(client: FlaskClient, download_id: str) -> dict:
    def finished() -> dict | None:
        item = next(i for i in client.get("/api/downloads").get_json()["items"] if i["id"] == download_id)
        return item if item["status"] in ("completed", "failed") else None

    found = wait_until(finished, timeout=20, interval=0.02)
    assert isinstance(found, dict)
    return found


def test_sources_are_read_from_the_ui_workflow() -> None:
    ui = sampler_ui()
    ui["models"] = [{"name": "random_sd15.safetensors", "url": "https://huggingface.co/a/b/resolve/main/x.safetensors",
                     "directory": "checkpoints", "hash": "AB" * 32, "hash_type": "SHA256"},
                    {"name": "no-url.safetensors", "directory": "vae"}]
    ui["nodes"][0]["properties"].update({"cnr_id": "comfy-core", "ver": "0.3.60"})
    ui["nodes"][1]["properties"].update({"cnr_id": "comfyui-kjnodes", "aux_id": "kijai/ComfyUI-KJNodes",
                                         "models": [{"name": "sub/vae.safetensors", "url": "https://x.test/v",
                                                     "directory": "vae"}]})
    assert model_sources(ui) == [
        {"name": "random_sd15.safetensors", "url": "https://huggingface.co/a/b/resolve/main/x.safetensors",
         "directory": "checkpoints", "sha256": "ab" * 32},
        {"name": "vae.safetensors", "url": "https://x.test/v", "directory": "vae"}]
    assert node_sources(ui) == {"EmptyLatentImage": {"cnr_id": "comfyui-kjnodes", "aux_id": "kijai/ComfyUI-KJNodes"}}
    assert repository({"aux_id": "kijai/ComfyUI-KJNodes"}) == "https://github.com/kijai/ComfyUI-KJNodes"
    assert repository({"cnr_id": "comfyui-kjnodes"}) == "https://registry.comfy.org/nodes/comfyui-kjnodes"
    assert repository({}) is None


def test_an_imported_workflow_installs_its_models_from_the_urls_it_names(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer, comfy_server: ComfyUITestServer
) -> None:
    ui = sampler_ui()
    ui["models"] = [{"name": "random_sd15.safetensors", "url": files.url("/ckpt.safetensors"),
                     "directory": "checkpoints", "hash": hashlib.sha256(CHECKPOINT).hexdigest(),
                     "hash_type": "SHA256"}]
    answer = client.post("/api/workflows", data={"file": (io.BytesIO(json.dumps(ui).encode()), "castle.json"),
                                                 "name": "Castle"}, content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()
    plan = client.get("/api/workflows/castle/missing").get_json()
    assert plan["unknown"] == []
    [item] = plan["resolvable"]
    assert (item["file"], item["dest"], item["via"], item["source"]) == (
        "random_sd15.safetensors", "checkpoints", "workflow", "url")
    assert item["sha256"] == hashlib.sha256(CHECKPOINT).hexdigest()
    assert plan["unknown_size"] == ["random_sd15.safetensors"]

    assert client.get("/api/workflows/castle").get_json()["readiness"]["ready"] is False
    comfy_server.models["checkpoints"] = ["random_sd15.safetensors"]  # what ComfyUI lists once the file is there
    installed = client.post("/api/workflows/castle/install-missing")
    assert installed.status_code == 201
    [queued] = installed.get_json()["queued"]
    assert wait_completed(client, queued["id"])["status"] == "completed"
    assert (services.models_root.root / "checkpoints" / "random_sd15.safetensors").read_bytes() == CHECKPOINT
    # the finished download dropped Studio's cached copy of ComfyUI's model lists
    assert client.get("/api/workflows/castle").get_json()["readiness"]["ready"] is True


def write_workflow(services: Services) -> None:
    folder = services.data_dir.workflows / "needs-test"
    folder.mkdir(parents=True)
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "add_detail.safetensors", "strength_model": 1,
                                                     "strength_clip": 1, "model": ["1", 0], "clip": ["1", 1]}},
        "3": {"class_type": "LoraLoader", "inputs": {"lora_name": "sdxl/detail_tweaker_xl.safetensors",
                                                     "strength_model": 1, "strength_clip": 1, "model": ["2", 0],
                                                     "clip": ["2", 1]}},
        "4": {"class_type": "LoraLoader", "inputs": {"lora_name": "unheard_of.safetensors", "strength_model": 1,
                                                     "strength_clip": 1, "model": ["3", 0], "clip": ["3", 1]}},
        "5": {"class_type": "FancyUpscaler", "inputs": {"scale": 2}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}},
    }
    (folder / "workflow.json").write_text(json.dumps(prompt))
    (folder / "manifest.yaml").write_text(
        "id: needs-test\nname: Needs\noutputs: [{id: image, node_id: '6'}]\n"
        "node_sources:\n  FancyUpscaler: {aux_id: someone/fancy-nodes, ver: 1.2.0}\n")
    services.library.refresh(force=True)


def test_civitai_finds_models_by_hash_and_by_name_and_nodes_are_named_with_their_repository(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.civitai_versions[128713] = {"name": "dreamshaper_8.safetensors", "data": CHECKPOINT,
                                      "model_name": "DreamShaper", "type": "Checkpoint"}
    files.civitai_versions[62833] = {"name": "add_detail.safetensors", "data": LORA, "model_name": "Add More Details",
                                     "type": "LORA"}
    files.civitai_versions[135867] = {"name": "DetailTweakerXL.safetensors", "data": TWEAKER,
                                      "model_name": "Detail Tweaker XL", "type": "LORA"}
    # The catalog knows the checkpoint's hash but not where to get it: CivitAI is asked by hash.
    (services.data_dir.catalogs / "models.json").write_text(json.dumps({"version": 1, "categories": [
        {"id": "checkpoints", "models": [{"name": "DreamShaper 8", "file": "dreamshaper_8.safetensors",
                                          "dest": "checkpoints", "source": "url", "size_gb": 2,
                                          "sha256": hashlib.sha256(CHECKPOINT).hexdigest()}]}]}))
    write_workflow(services)
    offline = client.get("/api/workflows/needs-test/missing?civitai=false").get_json()
    assert offline["unknown"] == ["dreamshaper_8.safetensors", "add_detail.safetensors",
                                  "sdxl/detail_tweaker_xl.safetensors", "unheard_of.safetensors"]
    assert not any(r["path"].startswith("/api/v1/") for r in files.requests)
    plan = client.get("/api/workflows/needs-test/missing").get_json()
    found = {item["file"]: item for item in plan["resolvable"]}
    assert {name: item["via"] for name, item in found.items()} == {
        "dreamshaper_8.safetensors": "civitai_hash", "add_detail.safetensors": "civitai_name",
        "detail_tweaker_xl.safetensors": "civitai_name"}
    assert found["detail_tweaker_xl.safetensors"]["dest"] == "loras/sdxl"  # ComfyUI's sub folder is kept
    assert found["add_detail.safetensors"]["sha256"] == hashlib.sha256(LORA).hexdigest()
    assert plan["unknown"] == ["unheard_of.safetensors"]
    assert plan["nodes"] == [{"class_type": "FancyUpscaler", "aux_id": "someone/fancy-nodes", "ver": "1.2.0",
                              "repository": "https://github.com/someone/fancy-nodes"}]
    searches = [r["query"] for r in files.requests if r["path"].startswith("/api/v1/models?")]
    assert any("types=LORA" in q for q in searches)

    answer = client.post("/api/workflows/needs-test/install-missing").get_json()
    assert len(answer["queued"]) == 3
    # the second round was answered from what the first one learned
    assert len([r for r in files.requests if "/by-hash/" in r["path"]]) == 1
    for queued in answer["queued"]:
        assert wait_completed(client, queued["id"])["status"] == "completed"
    root = services.models_root.root
    assert (root / "checkpoints" / "dreamshaper_8.safetensors").read_bytes() == CHECKPOINT
    assert (root / "loras" / "sdxl" / "detail_tweaker_xl.safetensors").read_bytes() == TWEAKER


def test_custom_loaders_and_power_lora_slots_are_checked_against_comfyuis_folders(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.install_node("UnetLoaderGGUF", {
        "input": {"required": {"unet_name": [["wan_q4.gguf"]]}}, "input_order": {"required": ["unet_name"]},
        "output": ["MODEL"], "output_is_list": [False], "output_name": ["MODEL"], "name": "UnetLoaderGGUF",
        "display_name": "Unet Loader (GGUF)", "description": "", "python_module": "custom_nodes.ComfyUI-GGUF",
        "category": "bootleg", "output_node": False})
    comfy_server.install_node("Power Lora Loader (rgthree)", {
        "input": {"required": {}, "optional": {"model": ["MODEL"]}}, "input_order": {"optional": ["model"]},
        "output": ["MODEL"], "output_is_list": [False], "output_name": ["MODEL"], "name": "Power Lora Loader (rgthree)",
        "display_name": "Power Lora Loader (rgthree)", "description": "", "python_module": "custom_nodes.rgthree",
        "category": "rgthree", "output_node": False})
    comfy_server.models.update({"diffusion_models": ["wan_q4.gguf"], "loras": ["here.safetensors"]})
    services.comfy.invalidate_object_info()
    folder = services.data_dir.workflows / "gguf"
    folder.mkdir(parents=True)
    (folder / "workflow.json").write_text(json.dumps({
        "1": {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": "wan_q8.gguf"}},
        "2": {"class_type": "Power Lora Loader (rgthree)", "inputs": {
            "model": ["1", 0], "lora_1": {"on": True, "lora": "here.safetensors", "strength": 1},
            "lora_2": {"on": True, "lora": "gone.safetensors", "strength": 1},
            "lora_3": {"on": False, "lora": "switched_off.safetensors", "strength": 1}}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}))
    (folder / "manifest.yaml").write_text("id: gguf\nname: GGUF\noutputs: [{id: image, node_id: '3'}]\n")
    services.library.refresh(force=True)
    ready = client.get("/api/workflows/gguf").get_json()["readiness"]
    assert {(m["name"], m["folder"], m["present"]) for m in ready["models"]} == {
        ("wan_q8.gguf", "diffusion_models", False), ("here.safetensors", "loras", True),
        ("gone.safetensors", "loras", False)}
    assert ready["problems"] == ["model wan_q8.gguf is missing (folder diffusion_models)",
                                 "model gone.safetensors is missing (folder loras)"]


def test_a_comfyui_without_the_models_api_still_gets_readiness(
    client: FlaskClient, comfy_server: ComfyUITestServer
) -> None:
    comfy_server.models_api = False
    ready = client.get("/api/workflows/sd15-txt2img").get_json()["readiness"]
    assert ready["ready"] is False  # known loaders are still checked through /object_info
    assert ready["missing_models"] == ["v1-5-pruned-emaonly.safetensors"]

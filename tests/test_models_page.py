"""The Models page's API: a file no catalog lists is named, placed in its folder, sized, and tied to the
workflows that can use it; the folders a download may go to."""

from dataclasses import replace

from flask.testing import FlaskClient

from studio.services import Services
from tests.downloads_helpers import write_catalog


def test_a_file_no_catalog_lists_has_a_name_a_folder_a_size_and_its_workflows(
    client: FlaskClient, services: Services
) -> None:
    root = services.models_root.root
    (root / "checkpoints" / "sd15").mkdir(parents=True)
    (root / "checkpoints" / "sd15" / "dream_shaper_v8.safetensors").write_bytes(b"x" * 1234)
    (root / "upscale_models").mkdir()
    (root / "upscale_models" / "4x-Ultra.pth").write_bytes(b"y" * 10)
    (root / "checkpoints" / "notes.txt").write_text("not a model")
    answer = client.get("/api/models").get_json()
    by_path = {u["path"]: u for u in answer["unlisted"]}
    assert set(by_path) == {"checkpoints/sd15/dream_shaper_v8.safetensors", "upscale_models/4x-Ultra.pth"}
    dream = by_path["checkpoints/sd15/dream_shaper_v8.safetensors"]
    assert (dream["name"], dream["folder"], dream["sub_folder"], dream["file"], dream["size"]) == (
        "dream shaper v8", "checkpoints", "sd15", "sd15/dream_shaper_v8.safetensors", 1234)
    upscaler = by_path["upscale_models/4x-Ultra.pth"]
    assert (upscaler["name"], upscaler["folder"], upscaler["file"]) == ("4x-Ultra", "upscale_models", "4x-Ultra.pth")
    uses = answer["uses"]
    assert {u["workflow_id"] for u in uses["checkpoints"]} == {"sd15-txt2img", "sd15-img2img", "sd15-inpaint"}
    assert all(u["param"] == "checkpoint" for u in uses["checkpoints"])
    assert "upscale_models" not in uses  # no bundled workflow picks an upscaler: the page says so


def test_the_folders_offered_are_comfyui_s_then_the_catalogs_and_the_disk_s(
    client: FlaskClient, services: Services
) -> None:
    write_catalog(services, "models", [{"name": "X", "file": "x.safetensors", "dest": "my_own/sub", "source": "url",
                                        "url": "http://127.0.0.1:9/x"}])
    (services.models_root.root / "ipadapter").mkdir(parents=True)
    (services.models_root.root / "ipadapter" / "ip.safetensors").write_bytes(b"z")
    folders = client.get("/api/models").get_json()["folders"]
    assert folders[:3] == ["checkpoints", "loras", "vae"]
    assert folders.index("my_own") > folders.index("upscale_models")
    assert "ipadapter" in folders
    assert "my_own/sub" not in folders
    assert len(folders) == len(set(folders))


def test_hidden_inputs_and_lora_pair_pickers_are_not_offered(services: Services) -> None:
    from studio.models.uses import uses_by_folder

    workflow = services.library.get("sd15-txt2img")
    manifest = workflow.manifest.model_copy(deep=True)
    checkpoint = next(spec for spec in manifest.inputs if spec.id == "checkpoint")
    checkpoint.hidden = True
    pair = checkpoint.model_copy(update={"id": "pairs", "type": "lora_picker", "hidden": False})
    lora = checkpoint.model_copy(update={"id": "extra", "type": "lora_picker_dynamic", "hidden": False,
                                         "name": "LoRAs"})
    manifest.inputs.extend([pair, lora])
    changed = replace(workflow, manifest=manifest)
    assert uses_by_folder([changed]) == {"loras": [{"workflow_id": "sd15-txt2img",
                                                    "workflow_name": manifest.name, "param": "extra",
                                                    "param_name": "LoRAs"}]}

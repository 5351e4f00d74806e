"""What is on disk: extra_model_paths.yaml, background hashes, disk usage, deleting files, catalog
import and removal, batch downloads and LoRA pairs."""

import hashlib
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.config import Settings
from studio.events import Event
from studio.models.inventory import ModelHash, ModelInventory
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.servers.files import FileServer


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_extra_model_paths_yaml_is_read_like_comfyui_reads_it(tmp_path: Path) -> None:
    from studio.models.extra_paths import read_extra_model_paths

    yaml_file = tmp_path / "comfy" / "extra_model_paths.yaml"
    yaml_file.parent.mkdir()
    yaml_file.write_text(
        "a111:\n"
        "    base_path: ../webui\n"
        "    checkpoints: models/Stable-diffusion\n"
        "    loras: |\n"
        "         models/Lora\n"
        "         models/LyCORIS\n"
        "    is_default: true\n"
        "other:\n"
        f"    base_path: {tmp_path / 'other'}\n"
        "    unet: unet\n"
        "    clip: /abs/clip\n"
    )
    assert read_extra_model_paths(yaml_file) == [
        ("checkpoints", (tmp_path / "webui" / "models" / "Stable-diffusion").resolve()),
        ("loras", (tmp_path / "webui" / "models" / "Lora").resolve()),
        ("loras", (tmp_path / "webui" / "models" / "LyCORIS").resolve()),
        ("diffusion_models", (tmp_path / "other" / "unet").resolve()),
        ("text_encoders", Path("/abs/clip")),
    ]
    yaml_file.write_text("a111: [unclosed\n")
    assert read_extra_model_paths(yaml_file) == []  # logged, nothing listed, Studio still starts


@pytest.fixture
def extra_folder(tmp_path: Path) -> Path:
    return tmp_path / "webui" / "models" / "Lora"


@pytest.fixture
def settings(tmp_path: Path, comfy_server, extra_folder: Path) -> Settings:  # type: ignore[no-untyped-def]
    yaml_file = tmp_path / "extra_model_paths.yaml"
    yaml_file.write_text(f"a111:\n    base_path: {tmp_path / 'webui'}\n    loras: models/Lora\n")
    return Settings(studio_dir=tmp_path / "studio", comfyui_url=comfy_server.url, comfyui_reconnect_max_s=0.5,
                    comfyui_extra_model_paths=yaml_file, hf_endpoint="http://127.0.0.1:9",
                    civitai_endpoint="http://127.0.0.1:9")


LORAS = {"version": 2, "date": "2026-11-01 10:00", "categories": [{"id": "loras", "name": "LoRAs", "models": [
    {"name": "Motion (High)", "file": "motion_high.safetensors", "dest": "loras", "source": "url", "size_gb": 0.1,
     "base_model": "WAN 2.2", "pair_id": "motion", "pair_role": "high", "url": "https://example.invalid/h"},
    {"name": "Motion (Low)", "file": "motion_low.safetensors", "dest": "loras", "source": "url", "size_gb": 0.1,
     "base_model": "WAN 2.2", "pair_id": "motion", "pair_role": "low", "url": "https://example.invalid/l"},
    {"name": "Detail", "file": "detail.safetensors", "dest": "loras", "source": "url", "size_gb": 0.1,
     "base_model": "SDXL", "url": "https://example.invalid/d", "trainedWords": ["detailed"]},
]}]}


def test_files_in_extra_folders_count_as_installed_and_cannot_be_deleted(
    client: FlaskClient, services: Services, extra_folder: Path
) -> None:
    (services.data_dir.catalogs / "loras.json").write_text(json.dumps(LORAS))
    write(extra_folder / "motion_high.safetensors", b"h" * 100)
    write(services.models_root.root / "loras" / "wan" / "motion_low.safetensors", b"l" * 50)  # a sub folder
    write(services.models_root.root / "checkpoints" / "own.safetensors", b"c" * 10)
    answer = client.get("/api/models").get_json()
    by_file = {e["file"]: e for e in answer["catalogs"]["loras"]["entries"]}
    assert by_file["motion_high.safetensors"]["status"] == "present"
    assert by_file["motion_high.safetensors"]["found_at"] == "loras/motion_high.safetensors"
    assert by_file["motion_low.safetensors"]["found_at"] == "loras/wan/motion_low.safetensors"
    assert by_file["detail.safetensors"]["status"] == "missing"
    assert [(u["path"], u["location"]) for u in answer["unlisted"]] == [("checkpoints/own.safetensors", "models")]

    refused = client.delete("/api/models/files?path=loras/motion_high.safetensors")  # lives in the extra folder
    assert refused.status_code == 400
    assert (extra_folder / "motion_high.safetensors").exists()
    for bad in ("../studio/db/studio.db", "/etc/passwd", "checkpoints/../../x.safetensors", "checkpoints"):
        assert client.delete("/api/models/files", query_string={"path": bad}).status_code == 400, bad
    user = signed_in_user(client.application, client, "alice")
    assert user.delete("/api/models/files?path=checkpoints/own.safetensors").status_code == 403
    assert client.delete("/api/models/files?path=checkpoints/own.safetensors").get_json() == {
        "deleted": "checkpoints/own.safetensors"}
    assert not (services.models_root.root / "checkpoints" / "own.safetensors").exists()


def test_hashes_are_computed_in_the_background_cached_and_redone_when_a_file_changes(
    services: Services, extra_folder: Path
) -> None:
    inventory: ModelInventory = services.inventory
    big = write(services.models_root.root / "checkpoints" / "big.safetensors", b"b" * (9 * 1024 * 1024))
    write(extra_folder / "style.safetensors", b"s" * 1000)
    write(services.models_root.root / "loras" / ".quarantine" / "bad.safetensors", b"q")
    hashed: list[Event] = []
    services.bus.subscribe(lambda event: hashed.append(event) if event.type == "models/hashed" else None)
    assert all(f["sha256"] is None for f in inventory.files())
    assert inventory.hash_pending() == 2  # quarantined files are not models
    files = {f["path"]: f for f in inventory.files()}
    assert files["checkpoints/big.safetensors"]["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert files["loras/style.safetensors"]["sha256"] == hashlib.sha256(b"s" * 1000).hexdigest()
    assert {e.payload["path"] for e in hashed} == set(files)
    assert inventory.hash_pending() == 0  # cached by path, size and mtime

    big.write_bytes(b"B" * 100)  # replaced: the old hash must not be shown for the new content
    assert {f["path"]: f for f in inventory.files()}["checkpoints/big.safetensors"]["sha256"] is None
    assert inventory.hash_pending() == 1
    assert {f["path"]: f for f in inventory.files()}["checkpoints/big.safetensors"]["sha256"] == \
        hashlib.sha256(b"B" * 100).hexdigest()
    big.unlink()
    inventory.hash_pending()
    with Session(services.engine) as session:  # a deleted file's hash is forgotten
        remembered = set(session.exec(select(ModelHash.sha256)))
    assert hashlib.sha256(b"B" * 100).hexdigest() not in remembered
    assert hashlib.sha256(b"s" * 1000).hexdigest() in remembered


def test_disk_report_counts_bytes_per_folder_and_lists_the_largest_files(
    client: FlaskClient, services: Services, extra_folder: Path
) -> None:
    write(services.models_root.root / "checkpoints" / "a.safetensors", b"a" * 3000)
    write(services.models_root.root / "checkpoints" / "b.gguf", b"b" * 1000)
    write(services.models_root.root / "vae" / "v.safetensors", b"v" * 2000)
    write(services.models_root.root / "vae" / "notes.txt", b"n" * 99999)  # not a model
    write(extra_folder / "l.safetensors", b"l" * 500)
    report = client.get("/api/models/disk").get_json()
    assert report["by_category"] == [{"category": "checkpoints", "bytes": 4000, "files": 2},
                                     {"category": "vae", "bytes": 2000, "files": 1},
                                     {"category": "loras", "bytes": 500, "files": 1}]
    assert [f["path"] for f in report["largest"]] == ["checkpoints/a.safetensors", "vae/v.safetensors",
                                                      "checkpoints/b.gguf", "loras/l.safetensors"]
    assert report["models_bytes"] == 6500
    assert report["free"] > 0
    assert report["total"] >= report["free"]
    assert report["extra_folders"] == [{"category": "loras", "folder": str(extra_folder.resolve())}]


def test_a_finished_download_records_its_hash_without_reading_the_file_again(
    app: Flask, client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    data = b"m" * (2 * 1024 * 1024)
    server = FileServer().start()
    try:
        server.files["/m.safetensors"] = data
        hashed: list[Event] = []
        services.bus.subscribe(lambda event: hashed.append(event) if event.type == "models/hashed" else None)
        item = client.post("/api/downloads", json={"url": server.url("/m.safetensors"), "dest": "checkpoints",
                                                   "file": "m.safetensors"}).get_json()

        def recorded() -> str | None:
            files = {f["path"]: f for f in client.get("/api/models").get_json()["unlisted"]}
            return files.get("checkpoints/m.safetensors", {}).get("sha256")

        assert wait_until(recorded, timeout=20) == hashlib.sha256(data).hexdigest()
        assert services.inventory.stale() == []
        assert hashed == []
        assert item["status"] == "queued"
    finally:
        server.stop()


def test_import_a_catalog_merges_by_file_keeps_unknown_fields_and_names_bad_entries(
    client: FlaskClient, services: Services
) -> None:
    first = client.post("/api/catalogs/loras", json={"catalog": LORAS})
    assert first.get_json() == {"added": 3, "replaced": 0, "problems": []}
    update = {"version": 3, "categories": [{"id": "loras", "name": "LoRAs", "models": [
        {**LORAS["categories"][0]["models"][2], "name": "Detail v2"},
        {"name": "No file", "dest": "loras", "source": "url", "size_gb": 0},
    ]}, {"id": "styles", "name": "Styles", "models": [
        {"name": "Ink", "file": "ink.safetensors", "dest": "loras/styles", "source": "civitai", "size_gb": 0.2,
         "civitai_version_id": 42}]}]}
    merged = client.post("/api/catalogs/loras", json={"catalog": update}).get_json()
    assert merged == {"added": 1, "replaced": 1, "problems": ["loras/No file: file: Field required"]}
    entries = {e["file"]: e for e in client.get("/api/models").get_json()["catalogs"]["loras"]["entries"]}
    assert entries["detail.safetensors"]["name"] == "Detail v2"
    assert entries["ink.safetensors"]["category"] == "styles"
    on_disk = json.loads((services.data_dir.catalogs / "loras.json").read_text())
    assert on_disk["categories"][0]["models"][2]["trainedWords"] == ["detailed"]  # fields Studio does not know

    assert client.delete("/api/catalogs/loras/entries/motion_low.safetensors").status_code == 200
    assert client.delete("/api/catalogs/loras/entries/motion_low.safetensors").status_code == 404
    assert "motion_low.safetensors" not in {
        e["file"] for e in client.get("/api/models").get_json()["catalogs"]["loras"]["entries"]}

    replaced = client.post("/api/catalogs/loras", json={"catalog": update, "mode": "replace"}).get_json()
    assert replaced["added"] == 2
    assert sorted(e["file"] for e in client.get("/api/models").get_json()["catalogs"]["loras"]["entries"]) == [
        "detail.safetensors", "ink.safetensors"]

    assert client.post("/api/catalogs/loras", json={"catalog": {"models": []}}).status_code == 400
    nothing = client.post("/api/catalogs/loras", json={"catalog": {"version": 1, "categories": [
        {"id": "x", "models": [{"name": "bad"}]}]}})
    assert nothing.status_code == 422
    assert "x/bad: file: Field required" in nothing.get_json()["error"]["message"]
    user = signed_in_user(client.application, client, "bob")
    assert user.post("/api/catalogs/loras", json={"catalog": LORAS}).status_code == 403
    assert user.delete("/api/catalogs/loras/entries/ink.safetensors").status_code == 403


def test_batch_download_queues_what_it_can_and_names_what_it_cannot(client: FlaskClient, services: Services) -> None:
    (services.data_dir.catalogs / "loras.json").write_text(json.dumps(LORAS))
    write(services.models_root.root / "loras" / "detail.safetensors", b"d")
    answer = client.post("/api/downloads/batch", json={"catalog_files": [
        "motion_high.safetensors", "motion_low.safetensors", "detail.safetensors", "nope.safetensors"]})
    assert answer.status_code == 201
    body = answer.get_json()
    assert sorted(q["path"] for q in body["queued"]) == ["loras/motion_high.safetensors",
                                                         "loras/motion_low.safetensors"]
    assert [(r["file"], r["code"]) for r in body["refused"]] == [("detail.safetensors", "already_installed"),
                                                                 ("nope.safetensors", "not_in_catalog")]


def test_lora_pairs_group_high_and_low_by_pair_id_and_filter_by_base_model(
    client: FlaskClient, services: Services, extra_folder: Path
) -> None:
    (services.data_dir.catalogs / "loras.json").write_text(json.dumps(LORAS))
    write(extra_folder / "motion_high.safetensors", b"h")
    wan = client.get("/api/loras/pairs?base_model=wan").get_json()["items"]
    assert len(wan) == 1
    pair = wan[0]
    assert (pair["pair_id"], pair["name"], pair["complete"], pair["installed"]) == ("motion", "Motion", True, False)
    assert pair["high"]["file"] == "motion_high.safetensors"
    assert pair["high"]["status"] == "present"
    assert pair["low"]["status"] == "missing"
    everything = client.get("/api/loras/pairs").get_json()["items"]
    assert [p["name"] for p in everything] == ["Detail", "Motion"]
    assert everything[0]["both"]["file"] == "detail.safetensors"


def test_the_bundled_catalogs_load_cleanly_and_cover_the_bundled_workflows(services: Services) -> None:
    from studio.models.catalog import BUNDLED_DIR, load_catalogs

    catalogs = load_catalogs(services.data_dir.catalogs / "none-here", BUNDLED_DIR)
    assert all(not catalog.problems for catalog in catalogs.values())
    entries = [entry for catalog in catalogs.values() for _, entry in catalog.entries]
    assert entries
    for entry in entries:
        assert services.downloads.source_url(entry), entry.name
        services.models_root.target(entry.dest, entry.file)  # a safe place inside the models folder
    files = {entry.file for entry in entries}
    for workflow in services.library.all():
        for node in workflow.prompt.values():
            if node["class_type"] == "CheckpointLoaderSimple":
                assert node["inputs"]["ckpt_name"] in files, workflow.id


def test_a_catalog_entry_can_pin_a_hugging_face_revision(services: Services) -> None:
    from studio.models.catalog import CatalogEntry

    pinned = CatalogEntry(name="X", file="x.safetensors", dest="vae", source="huggingface", hf_repo="a/b",
                          hf_file="sub/x.safetensors", revision="4b0b0ac4")
    assert services.downloads.source_url(pinned) == "http://127.0.0.1:9/a/b/resolve/4b0b0ac4/sub/x.safetensors"
    unpinned = pinned.model_copy(update={"revision": None})
    assert services.downloads.source_url(unpinned) == "http://127.0.0.1:9/a/b/resolve/main/sub/x.safetensors"


def test_files_on_disk_are_checked_against_the_catalogs_hash(client: FlaskClient, services: Services) -> None:
    good, other = b"g" * 4096, b"o" * 4096
    catalog = {"version": 1, "categories": [{"id": "vae", "models": [
        {"name": name, "file": f"{name}.safetensors", "dest": "vae", "source": "url", "size_gb": 0,
         "url": "http://127.0.0.1:9/x", "sha256": hashlib.sha256(good).hexdigest().upper()}
        for name in ("good", "other", "unhashed")]}]}
    (services.data_dir.catalogs / "models.json").write_text(json.dumps(catalog))
    write(services.models_root.root / "vae" / "good.safetensors", good)
    write(services.models_root.root / "vae" / "other.safetensors", other)
    services.inventory.hash_pending()
    write(services.models_root.root / "vae" / "unhashed.safetensors", other)  # not hashed yet: no verdict
    entries = {e["file"]: e for e in client.get("/api/models").get_json()["catalogs"]["models"]["entries"]}
    assert (entries["good.safetensors"]["verified"], entries["good.safetensors"]["hash_mismatch"]) == (True, False)
    assert (entries["other.safetensors"]["verified"], entries["other.safetensors"]["hash_mismatch"]) == (False, True)
    assert (entries["unhashed.safetensors"]["verified"], entries["unhashed.safetensors"]["hash_mismatch"]) == (
        False, False)


def test_a_pair_is_named_without_its_role_but_keeps_role_words_inside_the_name() -> None:
    from studio.models.listing import pairs

    entries = [{"file": f"{role}.safetensors", "name": name, "base_model": "WAN", "pair_id": "p", "pair_role": role,
                "status": "missing"} for role, name in (("high", "High Detail (High)"), ("low", "High Detail (Low)"))]
    assert [p["name"] for p in pairs(entries)] == ["High Detail"]

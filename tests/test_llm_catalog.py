"""The LLM catalog: bundled in the original's format, its entries downloaded where llama-server
looks, a vision model's mmproj companion coming with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from studio.models.catalog import BUNDLED_DIR, companions, load_catalogs
from studio.runtime import Runtime
from studio.services import Services
from tests.downloads_helpers import items, serving, wait_download, write_catalog
from tests.servers.files import FileServer

GGUF = b"GGUF" + bytes(64 * 1024)
PROJECTOR = b"GGUF" + bytes(16 * 1024)


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving()


def test_the_bundled_catalogs_all_exist_and_llm_entries_go_to_the_llm_folder(tmp_path: object) -> None:
    catalogs = load_catalogs(BUNDLED_DIR / "missing-user-dir")
    assert set(catalogs) == {"models", "loras", "llm"}
    assert all(not catalog.problems for catalog in catalogs.values())
    llm = catalogs["llm"]
    assert len(llm.entries) >= 3
    assert {entry.dest for _, entry in llm.entries} == {"llm"}  # the original's dest "" made concrete
    assert all(entry.file.endswith(".gguf") and entry.hf_repo for _, entry in llm.entries)
    vision = [entry for category, entry in llm.entries if category == "vision"]
    assert vision
    extra, problems = companions(vision[0])
    assert problems == []
    assert [(c.file.startswith("mmproj"), c.dest) for c in extra] == [(True, "llm")]


def test_an_llm_entry_downloads_with_its_mmproj_where_the_llm_page_finds_both(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.files["/tiny-vision.gguf"] = GGUF
    files.files["/mmproj-tiny-vision.gguf"] = PROJECTOR
    write_catalog(services, "llm", [{
        "name": "Tiny vision", "file": "tiny-vision.gguf", "dest": "", "source": "url", "size_gb": 0.0001,
        "url": files.url("/tiny-vision.gguf"), "tags": ["vision"],
        "companions": [{"role": "mmproj", "file": "mmproj-tiny-vision.gguf", "source": "url",
                        "url": files.url("/mmproj-tiny-vision.gguf"), "size_gb": 0.00002},
                       {"role": "broken", "file": "../escape.gguf", "source": "url",
                        "url": files.url("/mmproj-tiny-vision.gguf")}]}])
    answer = client.post("/api/downloads", json={"catalog_file": "tiny-vision.gguf"})
    assert answer.status_code == 201, answer.get_json()
    queued = items(client)
    assert sorted(item["name"] for item in queued.values()) == ["Tiny vision", "Tiny vision (mmproj)"]
    for download_id in queued:
        assert wait_download(client, download_id, {"completed", "failed"})["status"] == "completed"
    folder = services.models_root.root / "llm"
    assert (folder / "tiny-vision.gguf").read_bytes() == GGUF
    assert (folder / "mmproj-tiny-vision.gguf").read_bytes() == PROJECTOR
    assert not (services.models_root.root / "escape.gguf").exists()  # a companion's bad name goes nowhere

    listed = {m["file"]: m["role"] for m in client.get("/api/llm/server").get_json()["models"]}
    assert listed == {"tiny-vision.gguf": "model", "mmproj-tiny-vision.gguf": "mmproj"}
    again = client.post("/api/downloads", json={"catalog_file": "tiny-vision.gguf"})
    assert again.status_code == 409  # installed: the companion already there does not matter
    assert len(items(client)) == 2

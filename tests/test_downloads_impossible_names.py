"""Names that can never become files: refused at every way in (a URL, a repository, a catalog entry),
a bad catalog entry named and skipped without failing the rest, and an old row with such a name
never stopping the actions over all rows or the queue.

From an outside review of downloads and the models folder, tested as a class."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from studio.downloads.models import Download, DownloadStatus
from studio.runtime import Runtime
from studio.services import Services
from tests.downloads_helpers import entry, items, serving, start, user_id, wait_download, write_catalog
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


# -- names that can never become files --------------------------------------------------------

LONG_UTF8 = "é" * 124 + ".safetensors"  # 136 characters, 260 bytes
HOSTILE_FILES = {
    "NUL": "a\x00b.safetensors",
    "300 characters": "n" * 288 + ".safetensors",
    "251 bytes (no room for .part)": "l" * 239 + ".safetensors",
    "255 bytes": "l" * 243 + ".safetensors",
    "260 bytes in 136 characters": LONG_UTF8,
    "lone surrogate": "\ud800.safetensors",
    "control character": "a\x01b.safetensors",
    "dot": ".",
    "dot dot": "..",
    "slash": "a/b.safetensors",
    "backslash": "a\\b.safetensors",
    "trailing dot": "model.",
    "leading space": " model.safetensors",
    "empty": "",
}
HOSTILE_DESTS = {
    "NUL": "loras/a\x00b", "300 characters": "d" * 300, "260-byte part": "loras/" + "é" * 130,
    "dot dot": "loras/../..", "absolute": "/etc", "drive": "C:/models", "backslash": "a\\..\\..",
    "empty part": "loras//x", "dot": "loras/./x", "lone surrogate": "loras/\udc80", "control": "lo\x1bras",
}
HOSTILE_DISPLAY_NAMES = {"NUL": "a\x00b", "300 characters": "n" * 300, "control": "bell\x07",
                         "lone surrogate": "\ud800", "blank": "   "}


def refused_naming(answer: Any, field: str) -> bool:
    """A 400 that names ``field``; a lone surrogate may already be refused as unusable JSON."""
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    return field in ((error.get("details") or {}).get("fields") or {}) or error["code"] == "invalid_json"


def test_names_that_can_never_be_files_are_refused_at_every_way_in(
    client: FlaskClient, services: Services, files: FileServer
) -> None:
    url = files.url("/model.safetensors")
    for case, bad in HOSTILE_FILES.items():
        answer = client.post("/api/downloads", json={"url": url, "dest": "loras", "file": bad})
        assert refused_naming(answer, "file"), case
        if case not in ("slash", "empty"):  # in a repository those are a sub folder and the folder itself
            answer = client.post("/api/downloads", json={"hf_repo": "a/b", "hf_file": f"sub/{bad}"})
            assert refused_naming(answer, "hf_file"), case
    for case, bad in HOSTILE_DESTS.items():
        answer = client.post("/api/downloads", json={"url": url, "dest": bad, "file": "ok.safetensors"})
        assert refused_naming(answer, "dest"), case
    for case, bad in HOSTILE_DISPLAY_NAMES.items():
        answer = client.post("/api/downloads", json={"url": url, "dest": "loras", "file": "ok.safetensors",
                                                     "name": bad})
        assert refused_naming(answer, "name"), case
    assert items(client) == {}
    # the longest name that still fits, with room for ".part", is accepted
    longest = "k" * (255 - 8 - len(".safetensors")) + ".safetensors"
    assert client.post("/api/downloads", json={"url": url, "dest": "loras", "file": longest}).status_code == 201


def bad_catalog_entries(files: FileServer) -> dict[str, dict[str, Any]]:
    """Entries each invalid in one way; the key is how the problem names it."""
    bad: dict[str, dict[str, Any]] = {}
    for index, (case, name) in enumerate(HOSTILE_FILES.items()):
        if name:
            bad[f"file {case}"] = {**entry(files, "x.safetensors"), "name": f"badfile{index}", "file": name}
    for index, dest in enumerate(HOSTILE_DESTS.values()):
        bad[f"baddest{index}"] = {**entry(files, f"baddest{index}.safetensors"), "name": f"baddest{index}",
                                  "dest": dest}
    for index, hf_file in enumerate(("sub/a\x00b.safetensors", "sub/" + "h" * 300, "../x.safetensors")):
        bad[f"badhf{index}"] = {**entry(files, f"badhf{index}.safetensors"), "name": f"badhf{index}",
                                "source": "huggingface", "hf_repo": "a/b", "hf_file": hf_file}
    for index, size in enumerate((1e308, -1, 10**400)):
        bad[f"badsize{index}"] = {**entry(files, f"badsize{index}.safetensors"), "name": f"badsize{index}",
                                  "size_gb": size}
    bad["badversion"] = {**entry(files, "badversion.safetensors"), "name": "badversion", "source": "civitai",
                         "civitai_version_id": 2**60}
    bad["badurl"] = {**entry(files, "badurl.safetensors"), "name": "badurl", "url": "file:///etc/passwd"}
    return bad


def test_a_bad_catalog_entry_is_named_and_skipped_and_never_fails_the_rest(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.files["/good.safetensors"] = MODEL
    good = [entry(files, "good.safetensors"), entry(files, "model.safetensors", dest="vae")]
    bad = bad_catalog_entries(files)
    # on disk, with what only a file can hold (NaN, ±Infinity), as an old or hand-edited catalog would
    on_disk = [*good, *bad.values(), *({**entry(files, f"nan{i}.safetensors"), "name": f"nan{i}", "size_gb": value}
                                       for i, value in enumerate((float("nan"), float("inf"), float("-inf"))))]
    services.data_dir.catalogs.mkdir(parents=True, exist_ok=True)
    (services.data_dir.catalogs / "models.json").write_text(json.dumps(
        {"version": 1, "categories": [{"id": "c", "models": on_disk}, {"id": "odd", "models": 7}, "not a category"]}))
    listing = client.get("/api/models")
    assert listing.status_code == 200
    models = listing.get_json()["catalogs"]["models"]
    assert sorted(e["file"] for e in models["entries"]) == ["good.safetensors", "model.safetensors"]
    assert len(models["problems"]) == len(bad) + 3 + 2
    for label in [f"badfile{i}" for i in range(len(HOSTILE_FILES) - 1)] + [k for k in bad if k.startswith("bad")]:
        assert any(f"c/{label}:" in problem for problem in models["problems"]), label

    wanted = ["good.safetensors", *(e["file"] for e in bad.values()), "baddest0.safetensors"]
    batch = client.post("/api/downloads/batch", json={"catalog_files": [w for w in wanted if "\ud800" not in w]})
    assert batch.status_code == 201, batch.get_json()
    assert [q["path"] for q in batch.get_json()["queued"]] == ["loras/good.safetensors"]
    assert {r["code"] for r in batch.get_json()["refused"]} == {"not_in_catalog"}
    for name in ("baddest0.safetensors", "badsize0.safetensors", "nan0.safetensors"):
        assert client.post("/api/downloads", json={"catalog_file": name}).status_code == 404
    assert client.post("/api/downloads", json={"catalog_file": "model.safetensors"}).status_code == 201

    # The same entries imported through the API: the good ones added, every bad one named.
    # (less what a strict JSON parser refuses for the whole request: lone surrogates, 400-digit numbers)
    sendable = [e for e in bad.values() if "\\ud" not in json.dumps(e) and e.get("size_gb") != 10**400]
    imported = client.post("/api/catalogs/loras", json={"catalog": {"version": 1, "categories": [
        {"id": "c", "models": [*good, *sendable]}]}})
    assert imported.status_code == 200, imported.get_json()
    result = imported.get_json()
    assert (result["added"], len(result["problems"])) == (2, len(sendable))
    stored = json.loads((services.data_dir.catalogs / "loras.json").read_text())
    assert [m["file"] for m in stored["categories"][0]["models"]] == ["good.safetensors", "model.safetensors"]


def test_install_missing_skips_a_bad_catalog_entry_instead_of_failing(
    client: FlaskClient, services: Services, files: FileServer, comfy_server: Any
) -> None:
    comfy_server.models["checkpoints"] = []
    services.comfy.invalidate_object_info()
    for hostile in ({"size_gb": 1e308}, {"size_gb": -1}, {"dest": "checkpoints/\x00"}, {"dest": "c" * 300},
                    {"file": "v1-5-pruned-emaonly.safetensors" + "x" * 250}):
        write_catalog(services, "models", [{**entry(files, "v1-5-pruned-emaonly.safetensors", dest="checkpoints"),
                                            **hostile}])
        plan = client.get("/api/workflows/sd15-txt2img/missing?civitai=false")
        assert plan.status_code == 200, hostile
        assert plan.get_json()["resolvable"] == [], hostile
        answer = client.post("/api/workflows/sd15-txt2img/install-missing")
        assert answer.status_code < 500, hostile
        assert answer.get_json()["queued"] == [], hostile
    assert items(client) == {}


def test_one_bad_row_never_stops_cancel_all_retry_failed_or_the_queue(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows written before names were checked (or edited by hand): a name that can never exist on
    disk, or a CivitAI address without a version number, must not stop the actions over all rows, nor
    hold a worker slot."""
    services.preferences.update({"download_concurrency": 1}, actor="test")
    admin_id = user_id(services, "admin")
    legacy = []
    odd = "legacy-civitai"  # a failure nothing expected: the row fails saying so, the log names it
    with Session(services.engine) as session:
        session.add(Download(id=odd, name="odd", path="loras/odd.safetensors", source="civitai",
                             url=files.url("/api/download/models/latest"), status=DownloadStatus.FAILED,
                             requested_by=admin_id, error="old"))
        for index, path in enumerate(("loras/" + "z" * 251 + ".safetensors", "loras/a\x00b.safetensors",
                                      "loras/../../escape.safetensors", "")):
            row = Download(id=f"legacy-{index}", name=f"legacy {index}", path=path, url=files.url("/model.safetensors"),
                           status=DownloadStatus.FAILED, requested_by=admin_id, error="old")
            session.add(row)
            legacy.append(row.id)
        session.commit()
    failed = start(client, url=files.url("/later.safetensors"), dest="loras", file="later.safetensors")
    wait_download(client, failed["id"], {"failed"})  # not on the server yet
    files.files["/later.safetensors"] = MODEL

    retried = client.post("/api/downloads/retry-failed")
    assert retried.status_code == 200
    assert retried.get_json() == {"changed": len(legacy) + 2}
    assert wait_download(client, failed["id"], {"completed", "failed"})["status"] == "completed"
    assert wait_download(client, odd, {"failed"})["error"] == "The download failed unexpectedly (ValueError)."
    assert f"download {odd}: unexpected failure" in [r.getMessage() for r in caplog.records]
    for download_id in legacy:  # each fails again, with the reason, and the queue went on
        again = wait_download(client, download_id, {"failed"})
        assert again["error"].startswith("This download cannot be written"), again["error"]

    files.delays["/slow.safetensors"] = 1.0
    files.files["/slow.safetensors"] = MODEL
    slow = start(client, url=files.url("/slow.safetensors"), dest="loras", file="slow.safetensors")
    cancelled = client.post("/api/downloads/cancel-all")
    assert cancelled.status_code == 200
    assert cancelled.get_json() == {"changed": len(legacy) + 2}
    now = items(client)
    assert {now[i]["status"] for i in [*legacy, odd, slow["id"]]} == {"cancelled"}

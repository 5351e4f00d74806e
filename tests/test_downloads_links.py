"""Links planted in the models folder or the catalogs folder are never followed: a download, a
removal or a catalog write never reads or writes outside through them.

From an outside review of downloads and the models folder, tested as a class."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.downloads_helpers import FINISHED, entry, items, serving, start, wait_download
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


# -- links planted in the models folder ------------------------------------------------------


def test_links_planted_in_the_models_folder_are_never_followed(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer, tmp_path: Path
) -> None:
    services.preferences.update({"download_concurrency": 1}, actor="test")
    root = services.models_root.root
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.bin"
    victim.write_bytes(b"precious")
    (root / "loras").mkdir(parents=True)
    (root / "vae").mkdir(parents=True)

    # Refused up front when the link is already there.
    (root / "linked").symlink_to(outside, target_is_directory=True)
    answer = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "linked/sub",
                                                 "file": "x.safetensors"})
    assert answer.status_code == 400
    assert "dest" in answer.get_json()["error"]["details"]["fields"]
    (root / "vae" / "there.safetensors").symlink_to(victim)
    answer = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "vae",
                                                 "file": "there.safetensors"})
    assert answer.status_code == 409  # a link where the file goes: that name is taken, and never followed
    (root / "linked").unlink()

    # Planted while the downloads wait behind a slow one: each run must fail, with the reason.
    files.files["/blocker.safetensors"] = MODEL
    files.delays["/blocker.safetensors"] = 0.2
    blocker = start(client, url=files.url("/blocker.safetensors"), dest="checkpoints", file="blocker.safetensors")
    wait_download(client, blocker["id"], {"downloading"})
    url = files.url("/model.safetensors")
    corpus = {
        "part is a link": (start(client, url=url, dest="loras", file="a.safetensors"),
                           lambda: (root / "loras" / "a.safetensors.part").symlink_to(victim)),
        "part is a dangling link": (start(client, url=url, dest="loras", file="f.safetensors"),
                                    lambda: (root / "loras" / "f.safetensors.part").symlink_to(outside / "new.bin")),
        "part is a hard link": (start(client, url=url, dest="loras", file="b.safetensors"),
                                lambda: os.link(victim, root / "loras" / "b.safetensors.part")),
        "quarantine is a link": (start(client, url=url, dest="loras", file="c.safetensors", sha256="0" * 64),
                                 lambda: (root / "loras" / ".quarantine").symlink_to(outside, True)),
        "dest folder is a link": (start(client, url=url, dest="linked/sub", file="d.safetensors"),
                                  lambda: (root / "linked").symlink_to(outside, True)),
        "target is a link": (start(client, url=url, dest="vae", file="e.safetensors"),
                             lambda: (root / "vae" / "e.safetensors").symlink_to(victim)),
    }
    for _, plant in corpus.values():
        plant()
    assert all(item["status"] == "queued" for item in items(client).values() if item["id"] != blocker["id"])
    files.delays["/blocker.safetensors"] = 0.0
    for case, (item, _) in corpus.items():
        failed = wait_download(client, item["id"], FINISHED)
        assert failed["status"] == "failed", case
        assert "symbolic link" in failed["error"] or "hard links" in failed["error"], (case, failed["error"])
    # The sentence names what is wrong and where, as the person has to find and remove it.
    said = {case: wait_download(client, item["id"], FINISHED)["error"] for case, (item, _) in corpus.items()}
    assert "the partial file has other hard links (at loras/b.safetensors.part)" in said["part is a hard link"]
    assert "the target is a symbolic link or not a file (at vae/e.safetensors)" in said["target is a link"]
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.bin"]  # nothing written, moved or created
    assert (root / "loras" / "a.safetensors.part").is_symlink()
    assert (root / "vae" / "e.safetensors").is_symlink()
    assert not (root / "loras" / "c.safetensors.part").exists()  # the bad file was deleted, not moved outside

    # Cancelling removes the link itself, never what it points to.
    for item, _ in corpus.values():
        assert client.post(f"/api/downloads/{item['id']}/cancel").get_json()["status"] == "cancelled"
    assert not (root / "loras" / "a.safetensors.part").is_symlink()
    assert victim.read_bytes() == b"precious"

    # Deleting a model file: never through a folder link; a link itself is removed, its target kept.
    (outside / "x.safetensors").write_bytes(b"outside model")
    assert client.delete("/api/models/files?path=linked/x.safetensors").status_code == 400
    assert (outside / "x.safetensors").read_bytes() == b"outside model"
    (root / "loras" / "mine.safetensors").symlink_to(outside / "x.safetensors")
    assert client.delete("/api/models/files?path=loras/mine.safetensors").status_code == 200
    assert not (root / "loras" / "mine.safetensors").is_symlink()
    assert (outside / "x.safetensors").read_bytes() == b"outside model"


def test_catalog_files_are_never_read_or_written_through_a_link(
    client: FlaskClient, services: Services, files: FileServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    outside_catalog = {"version": 1, "categories": [{"id": "loras", "models": [entry(files, "secret.safetensors")]}]}
    outside.write_text(json.dumps(outside_catalog))
    before = outside.read_bytes()
    catalogs = services.data_dir.catalogs
    catalogs.mkdir(parents=True, exist_ok=True)
    (catalogs / "loras.json").symlink_to(outside)
    incoming = {"version": 2, "categories": [{"id": "loras", "models": [entry(files, "new.safetensors")]}]}

    listing = client.get("/api/models")
    assert listing.status_code == 200
    loras = listing.get_json()["catalogs"]["loras"]
    assert loras["entries"] == []
    assert "symbolic link" in loras["problems"][0]
    assert client.post("/api/catalogs/loras", json={"catalog": incoming}).status_code == 400  # merge reads it
    assert client.delete("/api/catalogs/loras/entries/secret.safetensors").status_code == 400
    assert outside.read_bytes() == before
    assert client.post("/api/catalogs/loras", json={"catalog": incoming, "mode": "replace"}).status_code == 200
    assert outside.read_bytes() == before  # the link was replaced by a file of ours, not written through
    assert not (catalogs / "loras.json").is_symlink()
    assert [e["file"] for e in client.get("/api/models").get_json()["catalogs"]["loras"]["entries"]] == [
        "new.safetensors"]

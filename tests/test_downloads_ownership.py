"""Whose downloads a person may steer: a plain user (by cookie or by token) pauses, resumes, retries
and cancels only their own, the …-all actions reach only the caller's rows, an admin steers anyone's,
every state-changing download, model and catalog route is admin-only or owner-scoped, and nobody
else can take or remove a partial download kept for a retry.

From the outside reviews of downloads and the models folder, each tested as a class."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from studio.downloads.models import Download, DownloadStatus
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary, signed_in_user, wait_until
from tests.downloads_helpers import entry, items, listed, serving, start, user_id, wait_download, write_catalog
from tests.jobs_helpers import me
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


def token_client(app: Flask, client: FlaskClient) -> FlaskClient:
    """A client that authenticates with a full-scope API token of the person ``client`` is."""
    answer = client.post("/api/auth/tokens", json={"name": "script"})
    assert answer.status_code == 201, answer.get_json()
    token = canary(answer.get_json()["token"])
    scripted = app.test_client()
    scripted.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return scripted


# -- whose downloads a person may steer -------------------------------------------------------

CONTROLS = ("pause", "resume", "retry", "cancel")
ALL_ACTIONS = ("pause-all", "resume-all", "retry-failed", "cancel-all")


def test_a_plain_user_steers_only_their_own_downloads_and_an_admin_steers_anyone_s(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    app = client.application
    services.preferences.update({"download_concurrency": 4}, actor="test")
    root = services.models_root.root
    for path in ("/slow.safetensors", "/held.safetensors", "/alice_slow.safetensors"):
        files.files[path] = MODEL
        files.delays[path] = 1.0  # 64 KiB a second: still running when the test ends

    # The admin's downloads, one in every state a control can act on.
    done = start(client, url=files.url("/model.safetensors"), dest="loras", file="done.safetensors")
    gone = start(client, url=files.url("/gone.safetensors"), dest="loras", file="gone.safetensors")
    slow = start(client, url=files.url("/slow.safetensors"), dest="loras", file="slow.safetensors")
    held = start(client, url=files.url("/held.safetensors"), dest="loras", file="held.safetensors")
    parts = [root / "loras" / "slow.safetensors.part", root / "loras" / "held.safetensors.part"]
    wait_until(lambda: all(p.is_file() and p.stat().st_size > 0 for p in parts))  # both under way
    assert client.post(f"/api/downloads/{held['id']}/pause").get_json()["status"] == "paused"
    wait_download(client, done["id"], {"completed"})
    wait_download(client, gone["id"], {"failed"})
    wait_download(client, slow["id"], {"downloading"})
    admin_rows = {done["id"]: "completed", gone["id"]: "failed", slow["id"]: "downloading", held["id"]: "paused"}

    def admin_unchanged() -> None:
        now = items(client)
        assert {i: now[i]["status"] for i in admin_rows} == admin_rows
        assert all(p.is_file() for p in parts), "a partial file of the admin's was deleted"
        assert (root / "loras" / "done.safetensors").read_bytes() == MODEL

    alice = signed_in_user(app, client, "alice")
    scripted = token_client(app, alice)
    for caller in (alice, scripted):  # a cookie session and a full-scope token of the same plain user
        for download_id in admin_rows:
            for action in CONTROLS:
                answer = caller.post(f"/api/downloads/{download_id}/{action}")
                assert answer.status_code == 404, (action, answer.get_json())
        for action in ALL_ACTIONS:
            answer = caller.post(f"/api/downloads/{action}")
            assert answer.status_code == 200
            assert answer.get_json() == {"changed": 0}, action
        admin_unchanged()

    # Alice's own downloads (a plain user installs what the catalogs list).
    write_catalog(services, "loras", [entry(files, "alice_slow.safetensors"), entry(files, "alice_gone.safetensors")])
    mine = alice.post("/api/downloads/batch", json={"catalog_files": ["alice_slow.safetensors",
                                                                      "alice_gone.safetensors"]})
    assert mine.status_code == 201, mine.get_json()
    alice_slow, alice_gone = (next(q for q in mine.get_json()["queued"] if q["path"] == f"loras/{name}")
                              for name in ("alice_slow.safetensors", "alice_gone.safetensors"))
    assert alice_slow["requested_by"] == user_id(services, "alice")
    wait_download(client, alice_slow["id"], {"downloading"})
    wait_download(client, alice_gone["id"], {"failed"})

    # Her …-all actions reach her rows only.
    assert alice.post("/api/downloads/pause-all").get_json() == {"changed": 1}
    assert wait_download(client, alice_slow["id"], {"paused"})
    assert scripted.post("/api/downloads/resume-all").get_json() == {"changed": 1}  # not the admin's paused one
    assert alice.post("/api/downloads/retry-failed").get_json() == {"changed": 1}  # not the admin's failed one
    wait_download(client, alice_gone["id"], {"failed"})
    admin_unchanged()

    # An admin may steer hers.
    wait_download(client, alice_slow["id"], {"downloading"})
    alice_part = root / "loras" / "alice_slow.safetensors.part"
    wait_until(alice_part.is_file)
    assert client.post(f"/api/downloads/{alice_slow['id']}/pause").get_json()["status"] == "paused"
    assert client.post(f"/api/downloads/{alice_slow['id']}/resume").get_json()["status"] == "queued"
    assert client.post(f"/api/downloads/{alice_slow['id']}/cancel").get_json()["status"] == "cancelled"
    wait_until(lambda: not alice_part.exists())
    assert client.post(f"/api/downloads/{alice_gone['id']}/retry").status_code == 200
    wait_download(client, alice_gone["id"], {"failed"})

    # And her cancel-all cancels only what is hers.
    assert alice.post("/api/downloads/cancel-all").get_json() == {"changed": 1}
    assert items(client)[alice_gone["id"]]["status"] == "cancelled"
    admin_unchanged()
    client.post("/api/downloads/cancel-all")  # the admin's: everyone's
    assert {items(client)[i]["status"] for i in (slow["id"], held["id"], gone["id"])} == {"cancelled"}


STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Every state-changing route of the downloads and models blueprints, and how it is scoped (tested below
# and in the test above). A new route fails here until it is added, with its rule, and tested.
SCOPED_ROUTES = {
    ("POST", "/api/downloads"): "a URL or repository: admins; a catalog entry: anyone, owned by them",
    ("POST", "/api/downloads/batch"): "catalog entries: anyone, owned by them",
    ("POST", "/api/downloads/<download_id>/<any(pause, resume, retry, cancel):action>"): "owner or admin",
    ("POST", "/api/downloads/pause-all"): "the caller's own rows (an admin's: all)",
    ("POST", "/api/downloads/resume-all"): "the caller's own rows (an admin's: all)",
    ("POST", "/api/downloads/retry-failed"): "the caller's own rows (an admin's: all)",
    ("POST", "/api/downloads/cancel-all"): "the caller's own rows (an admin's: all)",
    ("DELETE", "/api/models/files"): "admins",
    ("POST", "/api/models/rehash"): "admins",
    ("POST", "/api/catalogs/<any(models, loras, llm):kind>"): "admins",
    ("DELETE", "/api/catalogs/<any(models, loras, llm):kind>/entries/<path:file_name>"): "admins",
}


def test_every_state_changing_download_and_model_route_is_admin_only_or_owner_scoped(
    client: FlaskClient, services: Services, files: FileServer
) -> None:
    app = client.application
    found = {(method, rule.rule) for rule in app.url_map.iter_rules()
             if rule.endpoint.split(".")[0] in ("downloads", "models")
             for method in (rule.methods or set()) & STATE_CHANGING}
    assert found == set(SCOPED_ROUTES)

    root = services.models_root.root
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "own.safetensors").write_bytes(b"c" * 10)
    write_catalog(services, "loras", [entry(files, "ink.safetensors"), entry(files, "inked.safetensors")])
    catalog_before = (services.data_dir.catalogs / "loras.json").read_bytes()
    alice = signed_in_user(app, client, "alice")
    for caller in (alice, token_client(app, alice)):
        assert caller.delete("/api/models/files?path=checkpoints/own.safetensors").status_code == 403
        assert caller.post("/api/models/rehash").status_code == 403
        assert caller.post("/api/catalogs/loras", json={"catalog": {"version": 1, "categories": []},
                                                        "mode": "replace"}).status_code == 403
        assert caller.delete("/api/catalogs/loras/entries/ink.safetensors").status_code == 403
        assert caller.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "loras",
                                                   "file": "x.safetensors"}).status_code == 403
        assert caller.post("/api/downloads", json={"hf_repo": "a/b", "hf_file": "x.safetensors"}).status_code == 403
    assert (root / "checkpoints" / "own.safetensors").read_bytes() == b"c" * 10
    assert (services.data_dir.catalogs / "loras.json").read_bytes() == catalog_before
    assert items(client) == {}

    mine = alice.post("/api/downloads", json={"catalog_file": "ink.safetensors"})
    batch = alice.post("/api/downloads/batch", json={"catalog_files": ["inked.safetensors"]})
    assert mine.status_code == 201
    assert batch.status_code == 201
    owners = {item["requested_by"] for item in items(client).values()}
    assert len(owners) == 1
    assert owners != {None}
    # an admin may do each of them
    assert client.delete("/api/models/files?path=checkpoints/own.safetensors").status_code == 200
    assert client.post("/api/models/rehash").status_code == 200
    assert client.delete("/api/catalogs/loras/entries/ink.safetensors").status_code == 200


# -- someone else's partial download ----------------------------------------------------------


def test_nobody_else_can_take_or_remove_a_partial_download_kept_for_a_retry(
    app: Any, client: FlaskClient, runtime: Runtime, services: Services, files: FileServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    files.files["/m.safetensors"] = MODEL
    files.delays["/m.safetensors"] = 0.05
    write_catalog(services, "models", [entry(files, "m.safetensors")])
    bob = signed_in_user(app, client, "bob")
    part = services.models_root.root / "loras" / "m.safetensors.part"

    mine = client.post("/api/downloads", json={"catalog_file": "m.safetensors"})
    assert mine.status_code == 201, mine.get_json()
    admin_download = mine.get_json()["id"]
    wait_until(lambda: listed(client, admin_download)["bytes_done"] > 0, timeout=10)
    assert client.post(f"/api/downloads/{admin_download}/pause", json={}).status_code == 200
    wait_until(lambda: listed(client, admin_download)["status"] == "paused" and part.is_file())
    kept = part.read_bytes()
    assert 0 < len(kept) < len(MODEL)

    # Paused, then failed: each state keeps the partial file, and each refuses a second download of it.
    for state in ("paused", "failed"):
        if state == "failed":
            del files.files["/m.safetensors"]  # the retry meets a 404: failed for good, file kept
            assert client.post(f"/api/downloads/{admin_download}/resume", json={}).status_code == 200
            wait_until(lambda: listed(client, admin_download)["status"] == "failed", timeout=10)
        refused = bob.post("/api/downloads", json={"catalog_file": "m.safetensors"})
        assert refused.status_code == 409, refused.get_json()
        error = refused.get_json()["error"]
        assert error["code"] == "already_queued"
        assert error["details"]["status"] == state
        assert state in error["message"]
        assert part.read_bytes()[:len(kept)] == kept

    # A second row for the same path, as an older Studio let bob queue: his cancel and resume never
    # touch the admin's file.
    bobs = "b0b0b0b0-0000-0000-0000-000000000000"
    with Session(services.engine) as session:
        session.add(Download(id=bobs, name="m", path="loras/m.safetensors", url=files.url("/m.safetensors"),
                             status=DownloadStatus.FAILED, requested_by=me(bob)))
        session.commit()
    resumed = bob.post(f"/api/downloads/{bobs}/resume", json={})
    assert resumed.status_code == 409, resumed.get_json()
    caplog.set_level(logging.INFO, logger="studio.downloads.manager")
    assert bob.post(f"/api/downloads/{bobs}/cancel", json={}).status_code == 200
    assert listed(client, bobs)["status"] == "cancelled"
    assert (f"download {bobs} cancelled; its partial file is kept for download {admin_download} (failed)"
            in [r.getMessage() for r in caplog.records])  # the log says whose file it is
    assert part.is_file()
    assert part.read_bytes()[:len(kept)] == kept
    # The admin's own cancel removes it: nobody else needs it now.
    assert client.post(f"/api/downloads/{admin_download}/cancel", json={}).status_code == 200
    assert not part.exists()
    files.files["/m.safetensors"] = MODEL
    again = bob.post("/api/downloads", json={"catalog_file": "m.safetensors"})
    assert again.status_code == 201, again.get_json()

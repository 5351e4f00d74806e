"""What an outside review broke in downloads and the models folder, each tested as a class:
whose downloads a person may steer, links planted in the models folder, If-Range on resume,
which host sees which credential, and names that can never become files."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from studio.config import Settings
from studio.downloads.manager import DownloadManager
from studio.downloads.models import Download, DownloadStatus
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import canary, signed_in_user, wait_until
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(MODEL).hexdigest()
FINISHED = {"completed", "failed", "cancelled"}


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    server.files["/model.safetensors"] = MODEL
    yield server
    server.stop()


def start(client: FlaskClient, **body: object) -> dict[str, Any]:
    answer = client.post("/api/downloads", json=body)
    assert answer.status_code == 201, answer.get_json()
    return dict(answer.get_json())


def items(client: FlaskClient) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in client.get("/api/downloads").get_json()["items"]}


def wait_download(client: FlaskClient, download_id: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        item = items(client)[download_id]
        return item if item["status"] in statuses else None

    found = wait_until(reached, timeout=timeout, interval=0.02)
    assert isinstance(found, dict)
    return found


def write_catalog(services: Services, kind: str, entries: list[dict[str, Any]]) -> None:
    services.data_dir.catalogs.mkdir(parents=True, exist_ok=True)
    (services.data_dir.catalogs / f"{kind}.json").write_text(json.dumps(
        {"version": 1, "categories": [{"id": kind, "name": kind, "models": entries}]}))


def entry(files: FileServer, file_name: str, **extra: Any) -> dict[str, Any]:
    return {"name": file_name.split(".")[0], "file": file_name, "dest": "loras", "source": "url", "size_gb": 0.003,
            "url": files.url(f"/{file_name}"), **extra}


def user_id(services: Services, username: str) -> int:
    return int(next(u["id"] for u in services.users.list_users() if u["username"] == username))


def token_client(app: Flask, client: FlaskClient) -> FlaskClient:
    """A client that authenticates with a full-scope API token of the person ``client`` is."""
    answer = client.post("/api/auth/tokens", json={"name": "script"})
    assert answer.status_code == 201, answer.get_json()
    token = canary(answer.get_json()["token"])
    scripted = app.test_client()
    scripted.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return scripted


# -- 1. whose downloads a person may steer -------------------------------------------------------

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


# -- 2. links planted in the models folder ------------------------------------------------------


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


# -- 3. If-Range on resume ----------------------------------------------------------------------

NEW = os.urandom(len(MODEL))


@pytest.mark.parametrize(("etag", "last_modified", "ignore_if_range", "new", "if_range"), [
    ("strong", True, False, NEW, "etag"),
    (None, True, False, NEW, "date"),
    ("weak", True, False, NEW, "date"),  # a weak ETag may not be used in If-Range: the date is
    ("strong", True, True, NEW, "etag"),  # the server ignores If-Range, but its 206 names another ETag
    (None, False, False, NEW + b"longer", None),  # no validator at all: the total size gives it away
    ("strong", True, False, MODEL, "etag"),  # unchanged: resumed, not restarted
], ids=["strong-etag", "last-modified", "weak-etag", "server-ignores-if-range", "no-validator", "unchanged"])
def test_a_file_changed_on_the_server_between_attempts_starts_over(
    services: Services, files: FileServer, etag: str | None, last_modified: bool, ignore_if_range: bool,
    new: bytes, if_range: str | None,
) -> None:
    files.etag, files.last_modified, files.ignore_if_range = etag, last_modified, ignore_if_range
    files.files["/m.safetensors"] = MODEL
    files.drop_after = 1024 * 1024
    files.after_drop = lambda: files.files.__setitem__("/m.safetensors", new)
    manager = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1,
                              tokens=dict)
    manager.start()
    try:
        item = manager.enqueue(url=files.url("/m.safetensors"), dest="vae", file_name="m.safetensors")  # no hash
        wait_until(lambda: manager.get(item["id"]).status in (DownloadStatus.COMPLETED, DownloadStatus.FAILED),
                   timeout=20)
        done = manager.get(item["id"])
    finally:
        manager.stop()
    assert done.status is DownloadStatus.COMPLETED, done.error
    assert (services.models_root.root / "vae" / "m.safetensors").read_bytes() == new
    assert done.sha256 == hashlib.sha256(new).hexdigest()
    tries = [r for r in files.requests if r["path"] == "/m.safetensors"]
    assert tries[0]["range"] is None
    resumed = tries[1]
    assert resumed["range"] is not None
    first_etag, first_date = files.validators(MODEL)
    assert resumed["if_range"] == {"etag": first_etag, "date": first_date, None: None}[if_range]
    if new == MODEL:
        assert [r["status"] for r in tries] == [200, 206]
    elif not ignore_if_range and if_range:
        assert resumed["status"] == 200  # the server saw the change and sent the whole new file
    else:
        assert tries[-1]["range"] is None  # Studio saw the change and asked again from zero


def test_the_validator_survives_a_restart_and_is_sent_when_resuming(
    settings: Settings, services: Services, files: FileServer
) -> None:
    files.files["/m.safetensors"] = MODEL
    files.delays["/m.safetensors"] = 0.01
    first = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1, tokens=dict)
    first.start()
    item = first.enqueue(url=files.url("/m.safetensors"), dest="unet", file_name="m.safetensors")
    part = services.models_root.root / "unet" / "m.safetensors.part"
    wait_until(lambda: part.is_file() and part.stat().st_size > 256 * 1024)
    first.stop()  # as if the process died mid-download
    assert first.get(item["id"]).validator == files.validators(MODEL)[0]

    files.delays.clear()
    files.files["/m.safetensors"] = NEW  # replaced on the server while Studio was down
    reborn = build_services(settings, engine=services.engine)
    reborn.downloads.start()
    try:
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value in ("completed", "failed"), timeout=20)
        done = reborn.downloads.get(item["id"])
    finally:
        reborn.downloads.stop()
    assert done.status is DownloadStatus.COMPLETED, done.error
    assert (services.models_root.root / "unet" / "m.safetensors").read_bytes() == NEW
    assert done.sha256 == hashlib.sha256(NEW).hexdigest()
    resumed = [r for r in files.requests if r["path"] == "/m.safetensors"][-1]
    assert resumed["if_range"] == files.validators(MODEL)[0]
    assert resumed["status"] == 200


# -- 4. which host sees which credential ---------------------------------------------------------

# host → which secret it may receive (None: no Authorization header at all).
# Reached over plain http:// (through the fake server as a proxy): even the real API hosts get no
# credential unless the request is https on port 443 (or the configured endpoint's exact origin).
CREDENTIAL_HOSTS = {
    "huggingface.co": None, "hf.co": None, "HuggingFace.CO": None,
    "cdn-lfs.hf.co": None, "cdn-lfs-us-1.hf.co": None, "cas-bridge.xethub.hf.co": None,
    "cdn-lfs.huggingface.co": None, "s3.huggingface.co": None,
    "huggingface.co.evil.com": None, "hf.co.evil.com": None, "evilhuggingface.co": None, "evilhf.co": None,
    "huggingface.co.": None, "xn--huggingface-9ya.co": None,
    "civitai.com": None, "civitai.red": None,
    "image.civitai.com": None, "civitai.com.evil.com": None, "evilcivitai.com": None, "civitai.red.evil.com": None,
    "evil.com\\@huggingface.co": None,  # urllib.parse reads huggingface.co; the connection goes to evil.com
}


def test_each_credential_reaches_only_its_own_api_hosts(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    hf = canary("hf_" + "q" * 34)
    civitai = canary("civitai-" + "w" * 30)
    assert client.put("/api/settings", json={"hf_token": hf, "civitai_api_key": civitai}).status_code == 200
    services.downloads.session.proxies = {"http": files.url("")}  # every host name reaches the fake server
    services.downloads.session.trust_env = False
    secrets = {"hf": f"Bearer {hf}", "civitai": f"Bearer {civitai}", None: None}
    started = []
    for index, host in enumerate(CREDENTIAL_HOSTS):
        started.append(start(client, url=f"http://{host}/model.safetensors", dest="loras",
                             file=f"h{index}.safetensors"))
    # Redirects: each hop is judged by its own host.
    hops = {"/to-cdn": "http://cdn-lfs.hf.co/model.safetensors",
            "/to-look-alike": "http://civitai.com.evil.com/model.safetensors",
            "/to-backslash": "http://evil.com\\@huggingface.co/model.safetensors"}
    files.redirects.update(hops)
    for index, (path, origin) in enumerate((("/to-cdn", "huggingface.co"), ("/to-look-alike", "civitai.com"),
                                            ("/to-backslash", "hf.co"))):
        started.append(start(client, url=f"http://{origin}{path}", dest="loras", file=f"r{index}.safetensors"))
    for item in started:
        wait_download(client, item["id"], FINISHED)

    received = {(r["host"], r["path"]): r["authorization"] for r in files.requests}
    for host, secret in CREDENTIAL_HOSTS.items():
        expected_host = "evil.com" if "\\@" in host else host.lower()
        path = "/%5C@huggingface.co/model.safetensors" if "\\@" in host else "/model.safetensors"
        assert received[(expected_host, path)] == secrets[secret], host
    assert received[("huggingface.co", "/to-cdn")] is None
    assert received[("cdn-lfs.hf.co", "/model.safetensors")] is None
    assert received[("civitai.com", "/to-look-alike")] is None
    assert received[("civitai.com.evil.com", "/model.safetensors")] is None
    assert received[("hf.co", "/to-backslash")] is None
    assert received[("evil.com", "/%5C@huggingface.co/model.safetensors")] is None


def test_the_hub_token_never_reaches_the_hub_s_storage_hosts(
    settings: Settings, services: Services, files: FileServer
) -> None:
    token = canary("hf_" + "s" * 34)
    files.hub_files[("studio/tiny", "unet/model.safetensors")] = MODEL
    files.hub_private["studio/tiny"] = token
    files.hub_storage_host = "cas-bridge.xethub.hf.co"  # the Hub's real storage host name, via the proxy
    hub = settings.model_copy(update={"hf_endpoint": files.url("", host="localhost")})
    reborn = build_services(hub, engine=services.engine)
    reborn.preferences.update({"hf_token": token}, actor="test")
    reborn.downloads.session.proxies = {"http": files.url("")}
    reborn.downloads.session.trust_env = False
    reborn.downloads.start()
    try:
        from studio.downloads.hub import hub_url

        item = reborn.downloads.enqueue(url=hub_url(hub.hf_endpoint, "studio/tiny", "unet/model.safetensors"),
                                        dest="unet", file_name="model.safetensors", source="huggingface")
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value in ("completed", "failed"), timeout=20)
        done = reborn.downloads.get(item["id"])
    finally:
        reborn.downloads.stop()
    assert done.status is DownloadStatus.COMPLETED, done.error
    assert done.sha256 == SHA
    heads = [r for r in files.requests if r.get("method") == "HEAD"]
    assert heads
    assert all(r["authorization"] == f"Bearer {token}" for r in heads)
    storage = [r for r in files.requests if r["path"].startswith("/cdn/")]
    assert storage
    assert {r["host"] for r in storage} == {"cas-bridge.xethub.hf.co"}
    assert all(r["authorization"] is None for r in storage)


# -- 5. names that can never become files --------------------------------------------------------

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
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    """Rows written before names were checked (or edited by hand): a name that can never exist on
    disk must not stop the actions over all rows, nor hold a worker slot."""
    services.preferences.update({"download_concurrency": 1}, actor="test")
    admin_id = user_id(services, "admin")
    legacy = []
    with Session(services.engine) as session:
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
    assert retried.get_json() == {"changed": len(legacy) + 1}
    assert wait_download(client, failed["id"], {"completed", "failed"})["status"] == "completed"
    for download_id in legacy:  # each fails again, with the reason, and the queue went on
        again = wait_download(client, download_id, {"failed"})
        assert again["error"].startswith("This download cannot be written"), again["error"]

    files.delays["/slow.safetensors"] = 1.0
    files.files["/slow.safetensors"] = MODEL
    slow = start(client, url=files.url("/slow.safetensors"), dest="loras", file="slow.safetensors")
    cancelled = client.post("/api/downloads/cancel-all")
    assert cancelled.status_code == 200
    assert cancelled.get_json() == {"changed": len(legacy) + 1}
    now = items(client)
    assert {now[i]["status"] for i in [*legacy, slow["id"]]} == {"cancelled"}

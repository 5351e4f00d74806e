"""The download queue against a local HTTP server: resume, hashes, retries, tokens, safety."""

import hashlib
import os
import subprocess
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from studio.config import Settings
from studio.db import upgrade
from studio.downloads.manager import DownloadManager, view
from studio.downloads.transfer import Stall
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import canary, wait_until
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(MODEL).hexdigest()


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    server.files["/model.safetensors"] = MODEL
    yield server
    server.stop()


def start(client: FlaskClient, **body: object) -> dict:
    answer = client.post("/api/downloads", json=body)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def wait_download(client: FlaskClient, download_id: str, statuses: set[str], timeout: float = 20) -> dict:
    def reached() -> dict | None:
        item = next(i for i in client.get("/api/downloads").get_json()["items"] if i["id"] == download_id)
        return item if item["status"] in statuses else None

    found = wait_until(reached, timeout=timeout, interval=0.02)
    assert isinstance(found, dict)
    return found


def test_a_download_lands_in_the_models_folder_with_its_hash(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    item = start(client, url=files.url("/model.safetensors"), dest="checkpoints/sd15", file="model.safetensors",
                 sha256=SHA)
    done = wait_download(client, item["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    assert done["sha256"] == SHA
    assert done["verified"] is True  # the hash given with the request
    target = services.models_root.root / "checkpoints" / "sd15" / "model.safetensors"
    assert target.read_bytes() == MODEL
    assert not target.with_name("model.safetensors.part").exists()
    again = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "checkpoints/sd15",
                                                "file": "model.safetensors"})
    assert again.status_code == 409


def test_one_flipped_byte_is_caught_and_quarantined(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.files["/bad.safetensors"] = MODEL[:100] + bytes([MODEL[100] ^ 1]) + MODEL[101:]
    item = start(client, url=files.url("/bad.safetensors"), dest="loras", file="bad.safetensors", sha256=SHA)
    failed = wait_download(client, item["id"], {"completed", "failed"})
    assert failed["status"] == "failed"
    assert "SHA-256" in failed["error"]
    assert not (services.models_root.root / "loras" / "bad.safetensors").exists()
    assert (services.models_root.root / "loras" / ".quarantine" / "bad.safetensors").exists()


def test_a_dropped_connection_is_retried_and_resumed_with_range(
    client: FlaskClient, runtime: Runtime, files: FileServer
) -> None:
    files.drop_after = 1024 * 1024
    item = start(client, url=files.url("/model.safetensors"), dest="vae", file="model.safetensors", sha256=SHA)
    done = wait_download(client, item["id"], {"completed", "failed"}, timeout=30)
    assert done["status"] == "completed", done["error"]
    ranges = [r["range"] for r in files.requests if r["path"] == "/model.safetensors"]
    assert ranges[0] is None
    assert ranges[-1] is not None
    assert ranges[-1].startswith("bytes=")
    assert int(ranges[-1][6:-1]) >= 1024 * 1024 - 64 * 1024


def test_a_stalled_connection_is_dropped_by_the_watchdog_and_resumed(
    services: Services, files: FileServer
) -> None:
    files.trickle_after = 1024 * 1024  # then a byte every 10 ms: alive, but it would take days
    manager = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1,
                              tokens=dict, stall=Stall(window_s=0.5, min_bytes=64 * 1024))
    manager.start()
    try:
        item = manager.enqueue(url=files.url("/model.safetensors"), dest="vae", file_name="model.safetensors",
                               expected_sha256=SHA)
        wait_until(lambda: manager.get(item["id"]).status.value in ("completed", "failed"), timeout=20)
        done = manager.get(item["id"])
    finally:
        manager.stop()
    assert done.status.value == "completed", done.error
    assert len([r for r in files.requests if r["path"] == "/model.safetensors"]) == 2  # dropped, reconnected
    assert done.attempts == 1  # the stalled attempt had moved the file on: it does not count towards giving up
    assert (services.models_root.root / "vae" / "model.safetensors").read_bytes() == MODEL
    resumed = [r["range"] for r in files.requests if r["path"] == "/model.safetensors"][-1]
    assert resumed is not None
    assert int(resumed[6:-1]) >= 1024 * 1024


def test_a_server_that_ignores_range_starts_over_cleanly(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.ignore_range = True
    part = services.models_root.root / "vae" / "model.safetensors.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"stale bytes from another file")
    item = start(client, url=files.url("/model.safetensors"), dest="vae", file="model.safetensors", sha256=SHA)
    assert wait_download(client, item["id"], {"completed", "failed"})["status"] == "completed"
    assert (services.models_root.root / "vae" / "model.safetensors").read_bytes() == MODEL


def test_studio_stopped_mid_download_resumes_after_restart(
    settings: Settings, services: Services, files: FileServer
) -> None:
    files.delay_per_chunk = 0.01
    first = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 2,
                            tokens=dict)
    first.start()
    item = first.enqueue(url=files.url("/model.safetensors"), dest="unet", file_name="model.safetensors",
                         expected_sha256=SHA)
    part = services.models_root.root / "unet" / "model.safetensors.part"
    wait_until(lambda: part.is_file() and part.stat().st_size > 512 * 1024)
    first.stop()  # as if the process died: the row still says "downloading"
    assert first.get(item["id"]).status.value == "downloading"
    kept = part.stat().st_size

    files.delay_per_chunk = 0.0
    reborn = build_services(settings)
    upgrade(reborn.engine)
    seen: list[str] = []
    reborn.bus.subscribe(lambda e: seen.append(e.payload["status"]) if e.type == "downloads/update" else None)
    reborn.downloads.start()
    try:
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value == "completed", timeout=20)
    finally:
        reborn.downloads.stop()
    # the kept part is re-read (and shown as verifying) before the transfer carries on
    assert seen.index("verifying") < len(seen) - 1 - seen[::-1].index("downloading")
    assert (services.models_root.root / "unet" / "model.safetensors").read_bytes() == MODEL
    resumed = [r["range"] for r in files.requests][-1]
    assert resumed is not None
    assert int(resumed[6:-1]) >= kept


def test_pause_resume_and_cancel(client: FlaskClient, runtime: Runtime, services: Services, files: FileServer) -> None:
    files.delay_per_chunk = 0.02
    item = start(client, url=files.url("/model.safetensors"), dest="loras", file="model.safetensors")
    wait_download(client, item["id"], {"downloading"})
    assert client.post(f"/api/downloads/{item['id']}/pause").get_json()["status"] == "paused"
    part = services.models_root.root / "loras" / "model.safetensors.part"
    wait_until(lambda: part.is_file())
    files.delay_per_chunk = 0.0
    client.post(f"/api/downloads/{item['id']}/resume")
    assert wait_download(client, item["id"], {"completed"})["status"] == "completed"

    files.delay_per_chunk = 0.02
    files.files["/other.safetensors"] = MODEL
    other = start(client, url=files.url("/other.safetensors"), dest="loras", file="other.safetensors")
    wait_download(client, other["id"], {"downloading"})
    assert client.post(f"/api/downloads/{other['id']}/cancel").get_json()["status"] == "cancelled"
    other_part = services.models_root.root / "loras" / "other.safetensors.part"
    wait_until(lambda: not other_part.exists())
    assert not (services.models_root.root / "loras" / "other.safetensors").exists()

    # for all at once: a failed one is retried, then everything unfinished is cancelled
    files.delay_per_chunk = 0.0
    missing = start(client, url=files.url("/gone.safetensors"), dest="loras", file="gone.safetensors")
    assert wait_download(client, missing["id"], {"failed"})["error"] == "The server has no such file (HTTP 404)."
    files.files["/gone.safetensors"] = MODEL
    assert client.post("/api/downloads/retry-failed").get_json() == {"changed": 1}
    assert wait_download(client, missing["id"], {"completed"})["status"] == "completed"
    files.delay_per_chunk = 0.05
    files.files["/slow.safetensors"] = MODEL
    slow = start(client, url=files.url("/slow.safetensors"), dest="loras", file="slow.safetensors")
    assert client.post("/api/downloads/cancel-all").get_json() == {"changed": 1}
    assert wait_download(client, slow["id"], {"cancelled"})["status"] == "cancelled"


def test_tokens_go_only_to_their_own_host(
    client: FlaskClient, runtime: Runtime, files: FileServer
) -> None:
    token = canary("civitai-" + "t" * 30)
    client.put("/api/settings", json={"civitai_api_key": token})
    services = client.application.extensions["studio"]
    services.downloads.tokens = lambda: {files.url("", host="localhost"): token}
    files.tokens["/private.safetensors"] = token
    files.files["/private.safetensors"] = MODEL
    files.redirects["/go"] = files.url("/elsewhere.safetensors", host="127.0.0.1")
    files.files["/elsewhere.safetensors"] = MODEL
    ok = start(client, url=files.url("/private.safetensors", host="localhost"), dest="loras",
               file="private.safetensors")
    assert wait_download(client, ok["id"], {"completed", "failed"})["status"] == "completed"
    moved = start(client, url=files.url("/go", host="localhost"), dest="loras", file="moved.safetensors")
    assert wait_download(client, moved["id"], {"completed", "failed"})["status"] == "completed"
    by_path = {r["path"]: r["authorization"] for r in files.requests}
    assert by_path["/private.safetensors"] == f"Bearer {token}"
    assert by_path["/go"] == f"Bearer {token}"
    assert by_path["/elsewhere.safetensors"] is None  # the redirect went to another host: no token
    refused = start(client, url=files.url("/private.safetensors", host="127.0.0.1"), dest="loras",
                    file="refused.safetensors")
    failed = wait_download(client, refused["id"], {"completed", "failed"})
    assert failed["status"] == "failed"
    assert "HTTP 401" in failed["error"]
    assert token not in str(client.get("/api/downloads").get_json())


def test_unsafe_names_and_pickles_are_refused(client: FlaskClient, services: Services, files: FileServer) -> None:
    for dest, file_name in (("../..", "x.safetensors"), ("checkpoints", "../../x.safetensors"),
                            ("/etc", "x.safetensors"), ("checkpoints/../../..", "x.safetensors"),
                            ("a\\..\\..", "x.safetensors"), ("loras", "x\x00.safetensors"), ("loras", "..")):
        answer = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": dest,
                                                     "file": file_name})
        assert answer.status_code == 400, (dest, file_name)
    pickle = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "checkpoints",
                                                 "file": "old.ckpt"})
    assert pickle.status_code == 409
    assert pickle.get_json()["error"]["code"] == "pickle_needs_confirmation"
    confirmed = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "checkpoints",
                                                    "file": "old.ckpt", "allow_pickle": True})
    assert confirmed.status_code == 201


def test_not_enough_space_is_refused_up_front(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    services.downloads.margin = 10**18
    item = start(client, url=files.url("/model.safetensors"), dest="checkpoints", file="huge.safetensors")
    failed = wait_download(client, item["id"], {"completed", "failed"})
    assert failed["status"] == "failed"
    assert failed["error"].startswith("Not enough disk space")
    assert not (services.models_root.root / "checkpoints" / "huge.safetensors").exists()

    services.downloads.margin = 0  # a catalog entry says its size: refused before anything is queued
    huge = {"version": 1, "categories": [{"id": "checkpoints", "models": [
        {"name": "Huge", "file": "huge2.safetensors", "dest": "checkpoints", "source": "url", "size_gb": 10**6,
         "url": files.url("/model.safetensors")}]}]}
    (services.data_dir.catalogs / "models.json").write_text(__import__("json").dumps(huge))
    refused = client.post("/api/downloads", json={"catalog_file": "huge2.safetensors"})
    assert refused.status_code == 507
    assert refused.get_json()["error"]["code"] == "not_enough_space"
    assert refused.get_json()["error"]["message"].startswith("Not enough disk space for huge2.safetensors: it needs")


def test_the_models_list_shows_catalog_status_problems_and_unlisted_files(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    (services.data_dir.catalogs / "models.json").write_text(json_catalog(files))
    (services.models_root.root / "checkpoints").mkdir(parents=True, exist_ok=True)
    (services.models_root.root / "checkpoints" / "mine.safetensors").write_bytes(b"x" * 10)
    answer = client.get("/api/models").get_json()
    models = answer["catalogs"]["models"]
    assert models["problems"] == ["checkpoints/Broken: file: Field required"]
    by_file = {e["file"]: e for e in models["entries"]}
    assert by_file["model.safetensors"]["status"] == "missing"
    assert [u["path"] for u in answer["unlisted"]] == ["checkpoints/mine.safetensors"]
    assert answer["disk"]["free"] > 0

    item = start(client, catalog_file="model.safetensors")
    assert wait_download(client, item["id"], {"completed", "failed"})["status"] == "completed"
    by_file = {e["file"]: e for e in client.get("/api/models").get_json()["catalogs"]["models"]["entries"]}
    assert by_file["model.safetensors"]["status"] == "present"


def json_catalog(files: FileServer) -> str:
    import json

    return json.dumps({"version": 3, "date": "2026-11-27 10:00", "categories": [{"id": "checkpoints", "name": "C",
        "models": [{"name": "Test model", "file": "model.safetensors", "dest": "checkpoints", "source": "url",
                    "size_gb": 0.003, "url": files.url("/model.safetensors"), "sha256": SHA},
                   {"name": "Broken", "dest": "checkpoints", "source": "url", "size_gb": 1}]}]})


def test_hugging_face_files_resolve_through_huggingface_hub(
    settings: Settings, services: Services, files: FileServer
) -> None:
    token = canary("hf_" + "k" * 34)
    files.hub_files[("studio/tiny", "unet/model.safetensors")] = MODEL
    files.hub_private["studio/tiny"] = token
    files.single_use_signatures = True  # every retry must ask the Hub for a fresh storage URL
    files.drop_after = 512 * 1024
    hub = settings.model_copy(update={"hf_endpoint": files.url("", host="localhost")})
    reborn = build_services(hub, engine=services.engine)
    reborn.preferences.update({"hf_token": token}, actor="test")
    reborn.downloads.start()
    try:
        from studio.downloads.hub import hub_url

        item = reborn.downloads.enqueue(url=hub_url(hub.hf_endpoint, "studio/tiny", "unet/model.safetensors"),
                                        dest="diffusion_models", file_name="model.safetensors", source="huggingface")
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value in ("completed", "failed"), timeout=30)
        done = reborn.downloads.get(item["id"])
        assert done.status.value == "completed", done.error
        assert done.sha256 == SHA  # checked against the Hub's LFS ETag
        assert view(done)["verified"] is True
        assert view(done)["revision"] == "4b0b0ac4" * 5  # the commit the Hub said it came from
        heads = [r for r in files.requests if r.get("method") == "HEAD"]
        assert len(heads) >= 2  # resolved again after the dropped connection
        assert all(r["authorization"] == f"Bearer {token}" for r in heads)
        cdn = [r for r in files.requests if r["path"].startswith("/cdn/")]
        assert cdn
        assert all(r["authorization"] is None for r in cdn)  # the token never reached the storage host

        files.hub_private["studio/tiny"] = "another token"
        refused = reborn.downloads.enqueue(url=hub_url(hub.hf_endpoint, "studio/tiny", "unet/model.safetensors"),
                                           dest="diffusion_models", file_name="other.safetensors",
                                           source="huggingface")
        wait_until(lambda: reborn.downloads.get(refused["id"]).status.value in ("completed", "failed"))
        assert "token" in (reborn.downloads.get(refused["id"]).error or "")
    finally:
        reborn.downloads.stop()


def test_civitai_files_by_version_with_the_key_only_on_civitai(
    settings: Settings, services: Services, files: FileServer
) -> None:
    key = canary("civitai-key-" + "z" * 24)
    files.civitai_versions[9208] = {"name": "easynegative.safetensors", "data": MODEL}
    civitai = settings.model_copy(update={"civitai_endpoint": files.url("", host="localhost")})
    reborn = build_services(civitai, engine=services.engine)
    reborn.downloads.start()
    try:
        from studio.downloads.civitai import version_url

        files.civitai_key = key
        refused = reborn.downloads.enqueue(url=version_url(civitai.civitai_endpoint, 9208), dest="embeddings",
                                           file_name="refused.safetensors", source="civitai")
        wait_until(lambda: reborn.downloads.get(refused["id"]).status.value in ("completed", "failed"))
        assert reborn.downloads.get(refused["id"]).error == (
            "CivitAI wants a login for this model: set a CivitAI API key in Settings.")

        reborn.preferences.update({"civitai_api_key": key}, actor="test")
        before = len(files.requests)
        item = reborn.downloads.enqueue(url=version_url(civitai.civitai_endpoint, 9208), dest="embeddings",
                                        file_name="easynegative.safetensors", source="civitai")
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value in ("completed", "failed"), timeout=20)
        done = reborn.downloads.get(item["id"])
        assert done.status.value == "completed", done.error
        assert done.sha256 == SHA
        for request in files.requests[before:]:
            on_civitai = request["path"].startswith("/api/")
            assert (request["authorization"] == f"Bearer {key}") == on_civitai, request["path"]
            assert key not in request["path"]  # never in a URL
    finally:
        reborn.downloads.stop()


def test_a_disk_that_fills_up_pauses_the_download_and_keeps_the_part(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    small = services.models_root.root / "small"  # a 1 MB disk mounted inside the models folder
    small.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        services.downloads.margin = -(10**12)  # skip the up-front check: fill the disk for real
        item = start(client, url=files.url("/model.safetensors"), dest="small", file="model.safetensors")
        paused = wait_download(client, item["id"], {"paused", "failed", "completed"})
        assert paused["status"] == "paused"
        assert paused["error"] == ("The disk filled up: the download is paused and its partial file kept. "
                                   "Free some space, then resume.")  # what to do, too
        assert (small / "model.safetensors.part").stat().st_size > 0
        assert not (small / "model.safetensors").exists()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_sigkill_mid_download_then_restart_resumes_and_verifies(tmp_path, files: FileServer) -> None:  # type: ignore[no-untyped-def]
    import signal
    import sys

    import requests

    from tests.test_cli import free_port, studio_env

    files.delay_per_chunk = 0.02
    port = free_port()
    env = studio_env(tmp_path, STUDIO_ADMIN_PASSWORD="kill test password", STUDIO_MODELS_DIR=str(tmp_path / "m"))

    def serve() -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=30, interval=0.05)
        return process

    def signed_in() -> requests.Session:
        session = requests.Session()
        answer = session.post(f"http://127.0.0.1:{port}/api/auth/login",
                              json={"username": "admin", "password": "kill test password"}, timeout=5)
        session.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        return session

    first = serve()
    try:
        session = signed_in()
        item = session.post(f"http://127.0.0.1:{port}/api/downloads", timeout=5, json={
            "url": files.url("/model.safetensors"), "dest": "checkpoints", "file": "model.safetensors",
            "sha256": SHA}).json()
        part = tmp_path / "m" / "checkpoints" / "model.safetensors.part"
        wait_until(lambda: part.is_file() and part.stat().st_size > 256 * 1024, timeout=20)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    kept = part.stat().st_size
    files.delay_per_chunk = 0.0

    second = serve()
    try:
        session = signed_in()

        def status() -> str:
            items = session.get(f"http://127.0.0.1:{port}/api/downloads", timeout=5).json()["items"]
            return next(i["status"] for i in items if i["id"] == item["id"])

        wait_until(lambda: status() in ("completed", "failed"), timeout=30)
        assert status() == "completed"
    finally:
        second.terminate()
        second.wait(15)
    assert (tmp_path / "m" / "checkpoints" / "model.safetensors").read_bytes() == MODEL
    resumed = [r["range"] for r in files.requests if r["path"] == "/model.safetensors"][-1]
    assert resumed is not None
    assert int(resumed[6:-1]) >= kept


def test_install_what_a_workflow_is_missing_from_the_catalog(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer, comfy_server
) -> None:  # type: ignore[no-untyped-def]
    import json

    comfy_server.models["checkpoints"] = []
    services.comfy.invalidate_object_info()
    catalog = {"version": 1, "categories": [{"id": "checkpoints", "name": "Checkpoints", "models": [
        {"name": "SD 1.5", "file": "v1-5-pruned-emaonly.safetensors", "dest": "checkpoints", "source": "url",
         "size_gb": 0.003, "url": files.url("/model.safetensors"), "sha256": SHA}]}]}
    (services.data_dir.catalogs / "models.json").write_text(json.dumps(catalog))
    plan = client.get("/api/workflows/sd15-txt2img/missing").get_json()
    assert [m["file"] for m in plan["resolvable"]] == ["v1-5-pruned-emaonly.safetensors"]
    assert plan["unknown"] == []
    assert plan["total_gb"] == 0.003

    answer = client.post("/api/workflows/sd15-txt2img/install-missing")
    assert answer.status_code == 201
    [queued] = answer.get_json()["queued"]
    done = wait_download(client, queued["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    assert (services.models_root.root / "checkpoints" / "v1-5-pruned-emaonly.safetensors").read_bytes() == MODEL

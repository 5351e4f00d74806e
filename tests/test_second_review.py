"""What a second outside review found, each tested as a class on the real stack: files served from
Studio's own origin, a deleted user's jobs, a ComfyUI that never answers, someone else's partial
download, credentials over plain HTTP or another port, an import shadowing a workflow, and dates on
the jobs listing."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from studio.app import create_app
from studio.config import Settings
from studio.db import upgrade
from studio.downloads.credentials import credentials, token_for
from studio.downloads.models import Download, DownloadStatus
from studio.events.hub import ClientQueue
from studio.jobs.outputs import safe_name
from studio.jobs.serving import INLINE_TYPES, SANDBOX_POLICY, preview_type
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import canary, signed_in_admin, signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, me, plant_job, resize_prompt, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer
from tests.servers.files import FileServer

FINISHED = {"completed", "failed", "cancelled", "interrupted"}


def assert_sandboxed(answer: Any) -> None:
    """The headers every file Studio serves carries, whatever it is."""
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Content-Security-Policy"] == SANDBOX_POLICY


def assert_download_only(answer: Any) -> None:
    assert answer.status_code == 200, answer.status_code
    assert answer.mimetype == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith("attachment"), answer.headers["Content-Disposition"]
    assert_sandboxed(answer)


def assert_inline(answer: Any, media_type: str, status: int = 200) -> None:
    assert answer.status_code == status, answer.status_code
    assert answer.mimetype == media_type
    assert answer.headers["Content-Disposition"].startswith("inline"), answer.headers["Content-Disposition"]
    assert_sandboxed(answer)


# -- 1. files served from Studio's own origin -------------------------------------------------------

ACTIVE_CONTENT = b"<html><script>fetch('/api/auth/tokens',{method:'POST'})</script></html>"
# name ComfyUI gives → (name Studio keeps, media type when shown inline; None: download only)
HOSTILE_OUTPUTS = {
    "evil.html": ("evil.html", None), "EVIL.HTM": ("EVIL.HTM", None), "pic.svg": ("pic.svg", None),
    "page.xhtml": ("page.xhtml", None), "a.js": ("a.js", None), "b.mjs": ("b.mjs", None),
    "notes.txt": ("notes.txt", None), "data.json": ("data.json", None), "x.xml": ("x.xml", None),
    "noext": ("noext", None), "film.mkv": ("film.mkv", None), "page.html.png.html": ("page.html.png.html", None),
    "spoof\u202egnp.exe": ("spoofgnp.exe", None), "zero\u200bwidth\ufeff.png": ("zerowidth.png", "image/png"),
    "iso\u2066late\u2069.html": ("isolate.html", None),
    "photo.JPG": ("photo.JPG", "image/jpeg"), "clip.mov": ("clip.mov", "video/quicktime"),
    "song.opus": ("song.opus", "audio/ogg"), "beat.mp3": ("beat.mp3", "audio/mpeg"),
    "still.avif": ("still.avif", "image/avif"), "loop.webm": ("loop.webm", "video/webm"),
}


def test_outputs_are_shown_inline_only_for_allowed_media_types_chosen_by_studio(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    comfy_output = comfy_server.root / "output"
    comfy_output.mkdir(parents=True, exist_ok=True)
    for name in HOSTILE_OUTPUTS:
        (comfy_output / name).write_bytes(ACTIVE_CONTENT)  # whatever the name, the bytes are a page

    def hostile(entry: dict[str, Any]) -> None:
        for ui in entry["outputs"].values():
            ui["images"] += [{"filename": name, "subfolder": "", "type": "output"} for name in HOSTILE_OUTPUTS]

    comfy_server.history_hook = hostile
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 8, "height": 8})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done["error"]

    served = {output["filename"]: output for output in done["outputs"]}
    expected = dict(HOSTILE_OUTPUTS.values())
    assert sorted(served) == sorted([*expected, "image_00001_.png"])
    for name, media in {**expected, "image_00001_.png": "image/png"}.items():
        assert not any(0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069 for ch in name)
        with client.get(served[name]["url"]) as answer:
            if media is None:
                assert_download_only(answer)
            else:
                assert_inline(answer, media)
    # A range of an inline file keeps every header.
    with client.get(served["image_00001_.png"]["url"], headers={"Range": "bytes=0-3"}) as part:
        assert_inline(part, "image/png", status=206)
        assert part.data == b"\x89PNG"
    # The ZIP export is a download too.
    with client.get(f"/api/jobs/{job['id']}/export") as exported:
        assert exported.mimetype == "application/zip"
        assert exported.headers["Content-Disposition"].startswith("attachment")
        assert_sandboxed(exported)
        names = zipfile.ZipFile(io.BytesIO(exported.data)).namelist()
    assert "outputs/spoofgnp.exe" in names


def test_whatever_the_data_folder_holds_an_input_is_shown_inline_only_as_an_allowed_image(
    client: FlaskClient, services: Services
) -> None:
    real = upload_image(client).removeprefix("studio/")
    folder = services.data_dir.inputs / "studio"
    planted = {"x.html": None, "x.svg": None, "x.xhtml": None, "x.js": None, "x.txt": None, "x.htm": None,
               "x.png.html": None, "x.gif": "image/gif", "x.webp": "image/webp", "x.bmp": "image/bmp"}
    for name in planted:
        (folder / name).write_bytes(ACTIVE_CONTENT)
    for name, media in planted.items():
        with client.get(f"/api/inputs/{name}") as answer:
            if media is None:
                assert_download_only(answer)
            else:
                assert_inline(answer, media)
    with client.get(f"/api/inputs/{real}") as answer:
        assert_inline(answer, "image/png")


PREVIEW_TYPES = {
    "image/png": "image/png", "image/jpeg": "image/jpeg", "image/webp": "image/webp", "IMAGE/PNG": "image/png",
    "image/jpeg; q=1": "image/jpeg",
    "text/html": None, "image/svg+xml": None, "application/xhtml+xml": None, "text/javascript": None,
    "image/gif": None, "": None, "image/png\r\nX-Evil: 1": None, None: None, 42: None,
}


def test_a_preview_type_is_used_only_for_png_jpeg_and_webp() -> None:
    for claimed, expected in PREVIEW_TYPES.items():
        assert preview_type(claimed) == expected, claimed


@pytest.mark.parametrize(("claimed", "served"), [("text/html", None), ("image/svg+xml", None),
                                                 ("image/webp", "image/webp")])
def test_a_preview_frame_claiming_another_type_is_dropped(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    claimed: str, served: str | None
) -> None:
    comfy_server.step_delay_s = 0.1
    comfy_server.preview_meta = {"image_type": claimed}
    watcher = services.hub.connect(is_admin=True, user_id=None)
    try:
        [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 12})
        answers = []

        def two_steps_in() -> bool:
            answers.append(client.get(f"/api/jobs/{job['id']}/preview"))
            progress = client.get(f"/api/jobs/{job['id']}").get_json()["progress"]
            return int(progress.get("step") or 0) >= 3

        wait_until(two_steps_in, timeout=15)
        events = [json.loads(frame) for frame in watcher.get_batch(0.1)]
    finally:
        services.hub.disconnect(watcher)
    previews = [e for e in events if e["type"] == "jobs/preview" and e["payload"]["id"] == job["id"]]
    if served is None:
        assert all(answer.status_code == 404 for answer in answers)
        assert not previews  # dropped: no event either
    else:
        shown = [answer for answer in answers if answer.status_code == 200]
        assert shown
        assert previews
        assert_inline(shown[-1], served)
    wait_status(client, job["id"])


def test_output_names_lose_control_and_format_characters() -> None:
    corpus = {"spoof\u202egnp.exe": "spoofgnp.exe", "a\u200db.png": "ab.png", "\ufeffbom.png": "bom.png",
              "x\u2067y\u2069.png": "xy.png", "c1\x85\x9b.png": "c1.png", "tab\there.png": "tabhere.png",
              "\u061cmark.png": "mark.png", "soft\u00adhyphen.png": "softhyphen.png", "ok.png": "ok.png"}
    for raw, kept in corpus.items():
        assert safe_name(raw) == kept, raw


def test_the_inline_allow_list_is_media_only() -> None:
    assert set(INLINE_TYPES.values()) <= {
        "image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/avif", "video/mp4", "video/webm",
        "video/quicktime", "audio/wav", "audio/mpeg", "audio/flac", "audio/ogg"}


# -- 2. a deleted user's jobs ------------------------------------------------------------------------


def _about(queue: ClientQueue, job_ids: set[str]) -> list[dict[str, Any]]:
    found = []
    for frame in queue.get_batch(0.05):
        event = json.loads(frame)
        if isinstance(event.get("payload"), dict) and event["payload"].get("id") in job_ids:
            found.append(event)
    return found


def test_deleting_a_user_stops_their_jobs_and_nobody_but_admins_sees_them(
    app: Any, client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    services.users.on_deleted(services.jobs.owner_deleted)  # a second call, if build_services wires it, is a no-op
    carol = signed_in_user(app, client, "carol")
    bob = signed_in_user(app, client, "bob")
    bob_id, carol_id = me(bob), me(carol)
    comfy_server.step_delay_s = 0.2
    jobs = run(bob, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 50}, count=3)  # running, in ComfyUI, waiting
    ids = {job["id"] for job in jobs}
    wait_status(client, jobs[0]["id"], "running")
    admin_feed = services.hub.connect(is_admin=True)
    carol_feed = services.hub.connect(user_id=carol_id)
    reused_feed = None
    try:
        assert client.delete(f"/api/users/{bob_id}").status_code == 200
        # Whoever gets bob's id next (SQLite may hand it out again) sees nothing of his from now on.
        reused_feed = services.hub.connect(user_id=bob_id)
        ends = {job_id: wait_status(client, job_id, FINISHED, timeout=10)["status"] for job_id in ids}
        assert ends[jobs[0]["id"]] == "interrupted"  # stopped in ComfyUI, not left running for nobody
        assert set(ends.values()) <= {"interrupted", "cancelled"}
        assert comfy_server.worker is not None
        wait_until(lambda: not comfy_server.worker.running and not comfy_server.worker.pending)  # type: ignore[union-attr]
        admin_saw = _about(admin_feed, ids)
        assert {e["payload"]["id"] for e in admin_saw if e["type"] == "jobs/update"} == ids
        assert not _about(carol_feed, ids)
        assert not _about(reused_feed, ids)
    finally:
        for feed in (admin_feed, carol_feed, reused_feed):
            if feed is not None:
                services.hub.disconnect(feed)

    dave = signed_in_user(app, client, "dave")  # SQLite hands out bob's old id again
    for person in (carol, dave):
        assert not {j["id"] for j in person.get("/api/jobs").get_json()["items"]} & ids
        assert person.get(f"/api/jobs/{jobs[0]['id']}").status_code == 404
        queue = person.get("/api/queue").get_json()
        assert not {j["id"] for j in queue["running"] + queue["queued"]} & ids
    listed = {j["id"]: j for j in client.get("/api/jobs").get_json()["items"]}
    assert ids <= set(listed)
    assert all(listed[job_id]["owner_id"] is None for job_id in ids)


def test_jobs_left_without_an_owner_never_run_and_are_cancelled_at_start(
    client: FlaskClient, services: Services
) -> None:
    image = upload_image(client)
    admin_id = me(client)
    job_id = plant_job(services.engine, owner_id=admin_id, prompt=resize_prompt(image))
    with Session(services.engine) as session:  # as an older Studio left it after deleting its owner
        from studio.jobs.models import Job

        row = session.get(Job, job_id)
        assert row is not None
        row.owner_id = None
        session.add(row)
        session.commit()
    running = Runtime(client.application, services)
    running.start_in_thread()
    try:
        assert wait_status(client, job_id, FINISHED)["status"] == "cancelled"
    finally:
        running.stop()


# -- 3. a ComfyUI that accepts connections and never answers -------------------------------------


@pytest.fixture
def hanging(settings: Settings, comfy_server: ComfyUITestServer) -> Iterator[tuple[FlaskClient, ComfyUITestServer]]:
    quick = settings.model_copy(update={"comfyui_timeout_s": 0.5})
    built = build_services(quick)
    upgrade(built.engine)
    app = create_app(quick, built)
    comfy_server.path_delays.update({"/object_info": 120.0, "/models": 120.0})
    yield signed_in_admin(app), comfy_server
    comfy_server.path_delays.clear()
    built.engine.dispose()


def test_a_silent_comfyui_costs_one_short_timeout_per_page_not_one_per_workflow(
    hanging: tuple[FlaskClient, ComfyUITestServer]
) -> None:
    client, comfy = hanging
    started = time.monotonic()
    listing = client.get("/api/workflows")
    took = time.monotonic() - started
    assert listing.status_code == 200
    items = listing.get_json()["items"]
    assert len(items) >= 4
    assert took < 5.0, took  # one 0.5 s wait, not one per workflow (nor 30 s each)
    for item in items:
        assert item["readiness"]["ready"] is None
        assert "ComfyUI cannot be asked" in item["readiness"]["problems"][0]
    assert comfy.paths_asked.get("/object_info") == 1

    started = time.monotonic()
    form = client.get("/api/workflows/sd15-txt2img")
    ran = client.post("/api/workflows/image-resize/run", json={"params": {"width": 8, "height": 8}})
    assert time.monotonic() - started < 3.0  # the failure is remembered: nobody waits again
    assert form.status_code == 200
    assert form.get_json()["readiness"]["ready"] is None
    assert ran.status_code in (201, 400), ran.get_json()
    assert comfy.paths_asked.get("/object_info") == 1

    comfy.path_delays.clear()  # ComfyUI answers again, the request held so far included
    ready = wait_until(lambda: (r := client.get("/api/workflows/image-resize").get_json())["readiness"]["ready"]
                       is not None and r, timeout=10)
    assert ready["readiness"]["ready"] is True


# -- 4. someone else's partial download ----------------------------------------------------------

MODEL = os.urandom(2 * 1024 * 1024 + 77)


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    yield server
    server.stop()


def _catalog(services: Services, files: FileServer) -> None:
    services.data_dir.catalogs.mkdir(parents=True, exist_ok=True)
    entry = {"name": "m", "file": "m.safetensors", "dest": "loras", "source": "url", "size_gb": 0.002,
             "url": files.url("/m.safetensors")}
    (services.data_dir.catalogs / "models.json").write_text(json.dumps(
        {"version": 1, "categories": [{"id": "loras", "name": "LoRAs", "models": [entry]}]}))


def _item(client: FlaskClient, download_id: str) -> dict[str, Any]:
    return next(i for i in client.get("/api/downloads").get_json()["items"] if i["id"] == download_id)


def test_nobody_else_can_take_or_remove_a_partial_download_kept_for_a_retry(
    app: Any, client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.files["/m.safetensors"] = MODEL
    files.delays["/m.safetensors"] = 0.05
    _catalog(services, files)
    bob = signed_in_user(app, client, "bob")
    part = services.models_root.root / "loras" / "m.safetensors.part"

    mine = client.post("/api/downloads", json={"catalog_file": "m.safetensors"})
    assert mine.status_code == 201, mine.get_json()
    admin_download = mine.get_json()["id"]
    wait_until(lambda: _item(client, admin_download)["bytes_done"] > 0, timeout=10)
    assert client.post(f"/api/downloads/{admin_download}/pause", json={}).status_code == 200
    wait_until(lambda: _item(client, admin_download)["status"] == "paused" and part.is_file())
    kept = part.read_bytes()
    assert 0 < len(kept) < len(MODEL)

    # Paused, then failed: each state keeps the partial file, and each refuses a second download of it.
    for state in ("paused", "failed"):
        if state == "failed":
            del files.files["/m.safetensors"]  # the retry meets a 404: failed for good, file kept
            assert client.post(f"/api/downloads/{admin_download}/resume", json={}).status_code == 200
            wait_until(lambda: _item(client, admin_download)["status"] == "failed", timeout=10)
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
    assert bob.post(f"/api/downloads/{bobs}/cancel", json={}).status_code == 200
    assert _item(client, bobs)["status"] == "cancelled"
    assert part.is_file()
    assert part.read_bytes()[:len(kept)] == kept
    # The admin's own cancel removes it: nobody else needs it now.
    assert client.post(f"/api/downloads/{admin_download}/cancel", json={}).status_code == 200
    assert not part.exists()
    files.files["/m.safetensors"] = MODEL
    again = bob.post("/api/downloads", json={"catalog_file": "m.safetensors"})
    assert again.status_code == 201, again.get_json()


# -- 5. credentials only for their exact origin -----------------------------------------------------

HF = "hf_" + "k" * 34
CIVITAI = "civitai-" + "c" * 30
# URL → the secret it may carry (None: nothing); the configured endpoints are http://127.0.0.1:8188.
TOKEN_CORPUS: dict[str, str | None] = {
    "https://huggingface.co/x": HF, "https://huggingface.co:443/x": HF, "https://HuggingFace.co/x": HF,
    "https://hf.co/x": HF, "https://civitai.com/api/x": CIVITAI, "https://civitai.red/x": CIVITAI,
    "HTTPS://CIVITAI.COM/x": CIVITAI, "http://127.0.0.1:8188/x": HF,
    "http://huggingface.co/x": None, "http://huggingface.co:80/x": None, "http://huggingface.co:8080/x": None,
    "https://huggingface.co:8443/x": None, "https://hf.co:4443/x": None, "http://hf.co/x": None,
    "http://civitai.com/x": None, "http://civitai.com:81/x": None, "https://civitai.com:444/x": None,
    "http://civitai.red/x": None, "https://127.0.0.1:8188/x": None, "http://127.0.0.1:8189/x": None,
    "http://127.0.0.1/x": None, "http://localhost:8188/x": None,
    "https://cdn-lfs.hf.co/x": None, "https://huggingface.co.evil.com/x": None, "https://evilhf.co/x": None,
    "https://huggingface.co./x": None, "http://evil.com\\@huggingface.co/x": None, "ftp://huggingface.co/x": None,
    "wss://huggingface.co/x": None, "huggingface.co/x": None, "": None, "https://[::1]:443/x": None,
}


def test_each_credential_goes_only_to_its_exact_origin() -> None:
    tokens = credentials(hf_token=HF, civitai_key=CIVITAI, hf_endpoint="http://127.0.0.1:8188",
                         civitai_endpoint="https://civitai.com")
    for url, secret in TOKEN_CORPUS.items():
        assert token_for(url, tokens) == secret, url
    mirror = credentials(hf_token=HF, civitai_key=None, hf_endpoint="https://hf-mirror.example:8443/api",
                         civitai_endpoint="https://civitai.com")
    assert token_for("https://hf-mirror.example:8443/repo/resolve/main/x", mirror) == HF
    assert token_for("https://hf-mirror.example/repo/resolve/main/x", mirror) is None
    assert token_for("http://hf-mirror.example:8443/x", mirror) is None


def test_downloads_over_plain_http_or_another_port_carry_no_token(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    hf, civitai = canary("hf_" + "p" * 34), canary("civitai-" + "p" * 30)
    assert client.put("/api/settings", json={"hf_token": hf, "civitai_api_key": civitai}).status_code == 200
    files.files["/model.safetensors"] = MODEL
    services.downloads.session.proxies = {"http": files.url("")}  # every http host name reaches the fake server
    services.downloads.session.trust_env = False
    hosts = ["huggingface.co", "huggingface.co:8080", "hf.co", "hf.co:4443", "civitai.com", "civitai.com:81",
             "civitai.red:443"]
    started = []
    for index, host in enumerate(hosts):
        answer = client.post("/api/downloads", json={"url": f"http://{host}/model.safetensors", "dest": "loras",
                                                      "file": f"p{index}.safetensors"})
        assert answer.status_code == 201, answer.get_json()
        started.append(answer.get_json()["id"])
    for download_id in started:
        wait_until(lambda download_id=download_id: _item(client, download_id)["status"] in FINISHED, timeout=20)
    seen = {r["host"]: r["authorization"] for r in files.requests}
    for host in hosts:
        assert host in seen, host
        assert seen[host] is None, host


# -- 6. an import never shadows a workflow unasked ---------------------------------------------------


def _upload(client: FlaskClient, **form: str) -> Any:
    from tests.ui_workflows import SAMPLER_API

    data = json.dumps(SAMPLER_API).encode()
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), "w.json"), **form},
                       content_type="multipart/form-data")


def test_importing_under_an_existing_id_is_409_unless_replace(client: FlaskClient, services: Services) -> None:
    before = client.get("/api/workflows/sd15-txt2img").get_json()
    for replace in ({}, {"replace": "0"}, {"replace": "no"}):
        refused = _upload(client, id="sd15-txt2img", **replace)
        assert refused.status_code == 409, refused.get_json()
        assert refused.get_json()["error"]["code"] == "workflow_exists"
    after = client.get("/api/workflows/sd15-txt2img").get_json()
    assert after["bundled"] is True
    assert after["manifest"] == before["manifest"]
    assert not (services.data_dir.workflows / "sd15-txt2img").exists()

    assert _upload(client, id="mine", name="Mine").status_code == 201
    again = _upload(client, id="mine", name="Mine again")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "workflow_exists"
    assert client.get("/api/workflows/mine").get_json()["name"] == "Mine"
    replaced = _upload(client, id="mine", name="Mine again", replace="1")
    assert replaced.status_code == 201
    assert replaced.get_json()["name"] == "Mine again"

    shadow = _upload(client, id="sd15-txt2img", name="My own", replace="1")  # asked for: the user's copy wins
    assert shadow.status_code == 201
    assert shadow.get_json()["bundled"] is False


def test_an_imported_workflow_in_a_folder_of_another_name_is_replaced_where_it_is(
    client: FlaskClient, services: Services
) -> None:
    assert _upload(client, id="first", name="First").status_code == 201
    moved = services.data_dir.workflows / "renamed-folder"
    (services.data_dir.workflows / "first").rename(moved)
    assert client.get("/api/workflows/first").status_code == 200
    assert _upload(client, id="first", name="Again").status_code == 409
    assert _upload(client, id="first", name="Again", replace="1").status_code == 201
    assert not (services.data_dir.workflows / "first").exists()
    assert client.get("/api/workflows/first").get_json()["name"] == "Again"


# -- 7. dates on the jobs listing ----------------------------------------------------------------


def test_any_since_or_until_is_a_200_or_a_400_never_a_500(client: FlaskClient, services: Services) -> None:
    job_id = plant_job(services.engine, owner_id=me(client), prompt=resize_prompt("studio/x.png"))
    now = datetime.now(UTC).replace(tzinfo=None)
    hour_ago, in_an_hour = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    listed = {
        f"since={hour_ago}": True, f"since={in_an_hour}": False, f"until={in_an_hour}": True,
        f"until={hour_ago}": False, "since=2024-01-01": True, "since=2024-01-01T00:00:00": True,
        "until=2024-01-01": False, f"since={hour_ago}%2B00:00": True, f"since={hour_ago}Z": True,
        f"since={(now + timedelta(minutes=30)).isoformat()}%2B01:00": True,  # 30 minutes ago, in UTC
        f"since={(now - timedelta(minutes=30)).isoformat()}-01:00": False,  # in 30 minutes, in UTC
        "since=0001-01-01&until=9999-12-31": True, "until=9999-12-31T23:59:59": True,
    }
    for query, present in listed.items():
        answer = client.get(f"/api/jobs?{query}")
        assert answer.status_code == 200, (query, answer.get_json())
        assert (job_id in {j["id"] for j in answer.get_json()["items"]}) is present, query
    for query in ("since=9999-12-31T23:59:59-23:59", "until=0001-01-01T00:00:00%2B14:00", "since=yesterday",
                  "until=2024-13-01", "since=2024-01-01T25:00:00", "since=", "until=99999-01-01",
                  "since=9999-12-31T23:59:59.999999-00:01"):
        answer = client.get(f"/api/jobs?{query}")
        assert answer.status_code == 400, (query, answer.status_code)
        assert answer.get_json()["error"]["code"] == "bad_request"


"""Files served from Studio's own origin: an output or input is shown inline only as an allowed media
type Studio chooses (a page, a script or an SVG is a sandboxed download, whatever its name says),
a preview frame claiming another type is dropped, and output names lose control and format
characters.

From a second outside review, tested as a class on the real stack."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from flask.testing import FlaskClient

from studio.jobs.outputs import safe_name
from studio.jobs.serving import INLINE_TYPES, SANDBOX_POLICY, preview_type
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer


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

"""Server-made thumbnails: two WebP sizes per output, made once, cached for a year, owner-only, and
never a crash for a hostile file (a decompression bomb, a truncated PNG, a video)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, bomb_png, png_bytes, run, upload_image, wait_status
from tests.servers.comfyui import ComfyUITestServer

YEAR = "max-age=31536000"


def _thumb_files(services: Services, job_id: str) -> list[Path]:
    folder = services.data_dir.outputs / "studio" / job_id / ".thumbs"
    return sorted(folder.glob("*.webp")) if folder.is_dir() else []


def _fetch(client: FlaskClient, url: str) -> TestResponse:
    """The answer with its body read and its file closed (a served file stays open until then)."""
    with client.get(url) as answer:
        answer.get_data()
        return answer


def _finished_with_thumbs(client: FlaskClient, services: Services, job_id: str, count: int) -> dict[str, Any]:
    done = wait_status(client, job_id)
    assert done["status"] == "completed", done["error"]
    wait_until(lambda: len(_thumb_files(services, job_id)) == count, timeout=15)
    return done


def test_a_finished_output_gets_two_webp_sizes_made_once_and_cached_for_a_year(
        client: FlaskClient, runtime: Runtime, services: Services) -> None:
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2, "resolution": {"w": 512, "h": 384}})
    done = _finished_with_thumbs(client, services, job["id"], 2)  # made by the worker, nobody asked yet
    [output] = done["outputs"]
    assert set(output["thumbs"]) == {"256", "768"}
    made = {path: path.stat().st_mtime_ns for path in _thumb_files(services, job["id"])}
    original = _fetch(client, output["url"]).data

    sizes = {}
    for size, url in output["thumbs"].items():
        answer = _fetch(client, url)
        assert answer.status_code == 200
        assert answer.mimetype == "image/webp"
        assert {"public", YEAR, "immutable"} <= {part.strip() for part in answer.headers["Cache-Control"].split(",")}
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        with Image.open(io.BytesIO(answer.data)) as picture:
            assert picture.format == "WEBP"
            sizes[size] = picture.size
        assert len(answer.data) < len(original) / 3  # the point of it: far fewer bytes than the PNG
    assert sizes == {"256": (256, 192), "768": (512, 384)}  # the long side, and never enlarged

    listed = client.get("/api/jobs").get_json()["items"][0]["outputs"][0]
    assert listed["thumbs"] == output["thumbs"]
    _fetch(client, output["thumbs"]["256"])
    assert {path: path.stat().st_mtime_ns for path in _thumb_files(services, job["id"])} == made  # not remade


def test_an_older_output_without_thumbnails_gets_them_on_first_request(
        client: FlaskClient, runtime: Runtime, services: Services) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client, (300, 200)), "width": 300, "height": 200})
    done = _finished_with_thumbs(client, services, job["id"], 2)
    for path in _thumb_files(services, job["id"]):
        path.unlink()  # as a Studio from before thumbnails left it
    url = done["outputs"][0]["thumbs"]["256"]
    answer = _fetch(client, url)
    assert answer.status_code == 200
    with Image.open(io.BytesIO(answer.data)) as picture:
        assert picture.size == (256, 171)
    assert len(_thumb_files(services, job["id"])) == 2


def test_another_user_cannot_see_a_thumbnail_and_a_bad_size_is_not_made(
        app: Flask, client: FlaskClient, runtime: Runtime, services: Services) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 32, "height": 24})
    done = _finished_with_thumbs(client, services, job["id"], 2)
    url = done["outputs"][0]["thumbs"]["256"]
    other = signed_in_user(app, client, "mallory")
    refused = other.get(url)
    assert refused.status_code == 404
    assert refused.get_json()["error"]["code"] == "job_not_found"
    assert other.get("/api/jobs").get_json()["items"] == []
    odd = client.get(url.replace("/256.webp", "/100.webp"))
    assert odd.status_code == 404
    assert odd.get_json()["error"]["code"] == "no_thumbnail"
    assert len(_thumb_files(services, job["id"])) == 2  # nothing else written


def test_a_bomb_a_truncated_png_and_a_video_get_no_thumbnail_and_break_nothing(
        client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer) -> None:
    served = comfy_server.root / "output" / "hostile"
    served.mkdir(parents=True)
    (served / "bomb.png").write_bytes(bomb_png(30_000, 30_000))
    (served / "cut.png").write_bytes(png_bytes((400, 300))[:600])
    (served / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 64)

    def hostile(entry: dict[str, Any]) -> None:
        for ui in entry["outputs"].values():
            ui["images"] += [{"filename": name, "subfolder": "hostile", "type": "output"}
                             for name in ("bomb.png", "cut.png")]
            ui["videos"] = [{"filename": "clip.mp4", "subfolder": "hostile", "type": "output"}]

    comfy_server.history_hook = hostile
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 40, "height": 30})
    done = _finished_with_thumbs(client, services, job["id"], 2)  # the real output's two sizes only

    def settled() -> dict[str, Any] | None:
        found = client.get(f"/api/jobs/{job['id']}").get_json()
        by_name = {o["filename"]: o for o in found["outputs"]}
        return by_name if by_name["bomb.png"]["thumbs"] is None and by_name["cut.png"]["thumbs"] is None else None

    by_name = wait_until(settled, timeout=15)
    assert isinstance(by_name, dict)
    assert done["status"] == "completed"
    assert by_name["clip.mp4"]["kind"] == "video"
    assert by_name["clip.mp4"]["thumbs"] is None
    assert set(by_name["image_00001_.png"]["thumbs"]) == {"256", "768"}
    for name in ("bomb.png", "cut.png"):
        asked = client.get(done["outputs"][0]["url"].rsplit("/", 1)[0] + f"/{by_name[name]['id']}/thumb/256.webp")
        assert asked.status_code == 404
        assert asked.get_json()["error"]["code"] == "no_thumbnail"
        assert _fetch(client, by_name[name]["url"]).status_code == 200  # the output itself is still there

    comfy_server.history_hook = None
    [later] = run(client, "image-resize", {"image": upload_image(client), "width": 20, "height": 20})
    _finished_with_thumbs(client, services, later["id"], 2)  # the worker goes on with the next job

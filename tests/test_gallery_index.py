"""The gallery's index against the files on disk (deleted, added, replaced, hostile) and its text search
against hostile words (quotes, FTS5 operators, unicode): never an error, never a stale row."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.gallery_helpers import comfy_graph, gallery_items, png_with_text, put_file
from tests.jobs_helpers import bomb_png, me, plant_job


def _reconcile(client: FlaskClient) -> dict[str, int]:
    answer = client.post("/api/gallery/reconcile", json={})
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


def test_files_added_deleted_and_replaced_outside_studio_are_found_at_the_next_reconcile(
        client: FlaskClient, services: Services) -> None:
    root = services.data_dir.outputs
    comfy = put_file(root, "ComfyUI_00001_.png", png_with_text(prompt=comfy_graph(
        "a misty forest", "ugly", model="dreamshaper_8.safetensors", loras=(("film_grain.safetensors", 0.7),),
        seed=99)))
    a1111 = put_file(root, "a1111/00042.png", png_with_text((80, 120), parameters=(
        "portrait of a knight <lora:add_detail:0.5>\nNegative prompt: lowres\n"
        "Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 31337, Size: 512x768, Model: realisticVision")))
    put_file(root, "a1111/.thumbs/hidden.png", png_with_text())  # hidden folders are not outputs
    put_file(root, "notes.txt", b"not a picture")
    os.symlink(comfy, root / "a1111" / "link.png")  # a link is never followed, never indexed

    assert _reconcile(client) == {"dropped": 0, "added": 2, "replaced": 0}
    by_name = {item["filename"]: item for item in gallery_items(client)}
    assert set(by_name) == {"ComfyUI_00001_.png", "00042.png"}
    forest, knight = by_name["ComfyUI_00001_.png"], by_name["00042.png"]
    assert (forest["source"], forest["prompt"], forest["negative"]) == ("disk", "a misty forest", "ugly")
    assert (forest["model"], forest["seed"]) == ("dreamshaper_8.safetensors", 99)
    assert forest["loras"] == [{"name": "film_grain.safetensors", "strength": 0.7}]
    assert (knight["model"], knight["seed"], knight["negative"]) == ("realisticVision", 31337, "lowres")
    assert knight["loras"] == [{"name": "add_detail", "strength": 0.5}]
    assert (knight["width"], knight["height"]) == (512, 768)
    assert [i["id"] for i in gallery_items(client, lora="film_grain.safetensors")] == [forest["id"]]
    assert gallery_items(client, lora="film_grain") == []  # the LoRA filter is exact; words are for search
    assert [i["id"] for i in gallery_items(client, q="film_grain")] == [forest["id"]]
    assert [i["id"] for i in gallery_items(client, q="knight", source="disk")] == [knight["id"]]
    assert _reconcile(client) == {"dropped": 0, "added": 0, "replaced": 0}  # nothing changed, nothing done

    old_thumb = forest["thumbs"]["256"]
    with client.get(old_thumb) as answer:
        assert answer.status_code == 200
    a1111.unlink()
    stat = comfy.stat()
    comfy.write_bytes(png_with_text((300, 150), prompt=comfy_graph("a sunny beach")))
    os.utime(comfy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _reconcile(client) == {"dropped": 1, "added": 0, "replaced": 1}

    [replaced] = gallery_items(client)
    assert replaced["id"] == forest["id"]
    assert replaced["prompt"] == "a sunny beach"
    assert gallery_items(client, q="forest") == []
    assert gallery_items(client, q="knight") == []
    new_thumb = replaced["thumbs"]["256"]
    assert new_thumb != old_thumb  # another URL: a browser's year-long cache never shows the old picture
    with client.get(new_thumb) as answer:
        assert Image.open(io.BytesIO(answer.get_data())).size == (256, 128)


def test_the_output_folder_is_reconciled_when_studio_starts(client: FlaskClient, services: Services,
                                                            app: Flask) -> None:
    put_file(services.data_dir.outputs, "old/found.png", png_with_text(parameters="found at start"))
    running = Runtime(app, services)
    running.start_in_thread()
    try:
        found = wait_until(lambda: gallery_items(client, q="found"), timeout=10)
        assert isinstance(found, list)
        assert found[0]["filename"] == "found.png"
        # its thumbnails are made by the worker, before anyone asks
        wait_until(lambda: list((services.data_dir.gallery / "thumbs").glob(f"{found[0]['id']}-*.webp")), timeout=10)
    finally:
        running.stop()


def test_a_file_in_a_jobs_folder_belongs_to_the_jobs_owner_and_a_stray_one_to_the_admins(
        app: Flask, client: FlaskClient, services: Services) -> None:
    bob = signed_in_user(app, client, "bob")
    job_id = plant_job(services.engine, owner_id=me(bob), prompt={}, status="completed")
    put_file(services.data_dir.outputs, f"studio/{job_id}/extra.png", png_with_text(parameters="bob's extra"))
    put_file(services.data_dir.outputs, "elsewhere/stray.png", png_with_text(parameters="nobody's"))
    _reconcile(client)
    [mine] = gallery_items(bob)
    assert (mine["filename"], mine["job_id"], mine["prompt"]) == ("extra.png", job_id, "bob's extra")
    assert len(gallery_items(client)) == 2


def test_a_hostile_file_is_indexed_without_metadata_and_without_a_thumbnail(client: FlaskClient,
                                                                            services: Services) -> None:
    root = services.data_dir.outputs
    put_file(root, "bad/bomb.png", bomb_png(60000, 60000, {"prompt": comfy_graph("a bomb")}))
    put_file(root, "bad/truncated.png", png_with_text(parameters="cut short")[:60])
    put_file(root, "bad/garbage-prompt.png", png_with_text(prompt='{"1": {"class_type": 5, "inputs": [}'))
    put_file(root, "bad/clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    assert _reconcile(client)["added"] == 4
    items = {i["filename"]: i for i in gallery_items(client)}
    assert items["bomb.png"]["prompt"] is None
    assert items["clip.mp4"]["kind"] == "video"
    assert gallery_items(client, kind="video")[0]["thumbs"] is None
    assert services.gallery.index.wait_idle(10)  # the worker tried, once, and remembered
    assert {i["filename"] for i in gallery_items(client) if i["thumbs"] is None} == {
        "bomb.png", "truncated.png", "clip.mp4"}
    with client.get(f"/api/gallery/items/{items['bomb.png']['id']}/thumb/256.webp") as answer:
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "no_thumbnail"
    assert items["bomb.png"]["id"] in [i["id"] for i in gallery_items(client, kind="image")]


PROMPTS = {
    "cafe": "café au lait ☕ on a Sunday",
    "tokyo": "東京の夜景, neon reflections",
    "quote": 'he said "hello" to the robot',
    "dash": "sci-fi city, 50% fog, under_score",
}


@pytest.fixture
def texts(client: FlaskClient, services: Services) -> dict[str, int]:
    for key, prompt in PROMPTS.items():
        put_file(services.data_dir.outputs, f"texts/{key}.png", png_with_text(parameters=prompt))
    _reconcile(client)
    return {item["filename"].removesuffix(".png"): item["id"] for item in gallery_items(client)}


@pytest.mark.parametrize(("words", "expected"), [
    ("café", {"cafe"}), ("cafe", {"cafe"}), ("CAFÉ", {"cafe"}),  # case and accents do not matter
    ("東京", {"tokyo"}), ("東京の夜景", {"tokyo"}), ("neon", {"tokyo"}),
    ('"hello"', {"quote"}), ('said "hello" robot', {"quote"}), ('"said hello"', {"quote"}),
    ('"hello to the"', {"quote"}), ('"to hello"', set()),  # a quoted phrase keeps its order
    ("sci-fi", {"dash"}), ("under_score", {"dash"}), ("50%", {"dash"}),
    ('"', None), ('""', None), ('"unclosed', set()), ("*", None), ("NEAR(", set()), ("AND OR NOT", set()),
    ("-robot", {"quote"}), ("robot OR tokyo", set()), ("' OR 1=1 --", set()), ("\\", None), ("^café", {"cafe"}),
    ("☕", None), ("x" * 400, set()), ("a\u0000b", None),
])
def test_any_text_search_answers_and_finds_what_a_person_means(client: FlaskClient, texts: dict[str, int],
                                                               words: str, expected: set[str] | None) -> None:
    answer = client.get("/api/gallery", query_string={"q": words})
    if "\u0000" in words:
        assert answer.status_code == 400  # NUL in a query string is refused everywhere
        return
    assert answer.status_code == 200, answer.get_json()
    found = {name for name, item_id in texts.items() if item_id in {i["id"] for i in answer.get_json()["items"]}}
    if expected is None:  # nothing searchable in it (punctuation, an emoji): no text filter at all
        assert found == set(PROMPTS)
    else:
        assert found == expected


def test_search_text_is_escaped_even_in_column_and_operator_syntax(client: FlaskClient,
                                                                   texts: dict[str, int]) -> None:
    for words in ("prompt:café", "{prompt negative}: tokyo", "NEAR(café tokyo, 2)", "café*", "c*f*", "+tokyo"):
        answer = client.get("/api/gallery", query_string={"q": words})
        assert answer.status_code == 200, (words, answer.get_json())


def test_outputs_of_jobs_finished_before_the_gallery_existed_are_indexed_as_their_jobs(
        client: FlaskClient, services: Services) -> None:
    from sqlmodel import Session

    from studio.jobs.models import JobOutput

    job_id = plant_job(services.engine, owner_id=me(client), status="completed", workflow_id="sd15-txt2img",
                       prompt=json.loads(comfy_graph("an old lighthouse", seed=7)),
                       params={"positive_prompt": "an old lighthouse"})
    put_file(services.data_dir.outputs, f"studio/{job_id}/image_00001_.png", png_with_text())
    with Session(services.engine) as session:  # as an older Studio recorded it, before the gallery
        session.add(JobOutput(job_id=job_id, node_id="9", kind="image", filename="image_00001_.png",
                              path=f"studio/{job_id}/image_00001_.png", width=96, height=64))
        session.commit()
    assert _reconcile(client)["added"] == 1
    [item] = gallery_items(client)
    assert (item["source"], item["job_id"], item["prompt"], item["seed"]) == ("job", job_id, "an old lighthouse", 7)
    assert item["reuse_url"] == f"/run/sd15-txt2img?from_job={job_id}"


def test_create_all_builds_the_text_index_too(tmp_path: Path) -> None:
    """Where tables come from the models (``create_all``) rather than migrations, search still works."""
    from sqlalchemy import text
    from sqlmodel import Session

    from studio.db import create_db_engine
    from studio.db.metadata import metadata
    from studio.gallery.models import GalleryItem

    engine = create_db_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    metadata.create_all(engine)
    with Session(engine) as session:
        session.add(GalleryItem(path="a.png", kind="image", filename="a.png", prompt="a quiet harbour"))
        session.commit()
        found = session.execute(text("SELECT rowid FROM gallery_fts WHERE gallery_fts MATCH 'harb*'")).all()
    assert len(found) == 1
    engine.dispose()

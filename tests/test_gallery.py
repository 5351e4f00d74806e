"""The gallery: a completed job's outputs indexed with what they were made with, found by filters and
words, marked, sorted into boards, deleted, downloaded and used again; and never another person's."""

from __future__ import annotations

import io
import zipfile

from flask import Flask
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user
from tests.gallery_helpers import gallery_items, png_with_text, put_file, wait_indexed
from tests.jobs_helpers import SAMPLER_PARAMS, run, wait_status


def _made(client: FlaskClient, prompt: str = "a lighthouse at dusk", **extra: object) -> dict:
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2, "positive_prompt": prompt,
                                         "resolution": {"w": 96, "h": 64}, **extra})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done["error"]
    return wait_indexed(client, job["id"])


def test_a_completed_job_is_indexed_with_its_parameters_and_found_by_its_words(
        client: FlaskClient, runtime: Runtime) -> None:
    item = _made(client, negative_prompt="blurry, watermark", seed=4242)

    assert item["workflow_id"] == "sd15-txt2img"
    assert item["source"] == "job"
    assert item["kind"] == "image"
    assert item["prompt"] == "a lighthouse at dusk"
    assert item["negative"] == "blurry, watermark"
    assert item["model"] == SAMPLER_PARAMS["checkpoint"]
    assert item["seed"] == 4242
    assert (item["width"], item["height"]) == (96, 64)
    assert item["params"]["positive_prompt"] == "a lighthouse at dusk"
    assert item["reuse_url"] == f"/run/sd15-txt2img?from_job={item['job_id']}"
    with client.get(item["url"]) as answer:
        assert answer.status_code == 200
        assert answer.mimetype == "image/png"
    with client.get(item["thumbs"]["256"]) as answer:
        assert answer.status_code == 200
        assert answer.mimetype == "image/webp"
        assert "immutable" in answer.headers["Cache-Control"]

    assert [i["id"] for i in gallery_items(client, q="lighthouse")] == [item["id"]]
    assert [i["id"] for i in gallery_items(client, q="ligh")] == [item["id"]]  # a word's start is enough
    assert [i["id"] for i in gallery_items(client, q="watermark")] == [item["id"]]  # the negative prompt too
    assert gallery_items(client, q="zebra") == []
    assert gallery_items(client, q="lighthouse zebra") == []  # every word must be there
    assert [i["id"] for i in gallery_items(client, workflow="sd15-txt2img", kind="image")] == [item["id"]]
    assert gallery_items(client, kind="video") == []
    assert gallery_items(client, model="other.safetensors") == []
    facets = client.get("/api/gallery/facets").get_json()
    assert facets["models"] == [SAMPLER_PARAMS["checkpoint"]]
    assert facets["workflows"] == [{"id": "sd15-txt2img", "name": "SD 1.5 text to image"}]


def test_stars_ratings_tags_and_boards_filter_the_grid(client: FlaskClient, runtime: Runtime) -> None:
    first, second = _made(client, "a red fox"), _made(client, "a blue whale")

    changed = client.patch(f"/api/gallery/items/{first['id']}", json={"starred": True, "rating": 4,
                                                                       "tags": ["keeper", " Keeper ", "fox  art"]})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["tags"] == ["keeper", "fox art"]
    assert [i["id"] for i in gallery_items(client, starred="true")] == [first["id"]]
    assert [i["id"] for i in gallery_items(client, rating=3)] == [first["id"]]
    assert [i["id"] for i in gallery_items(client, q="keeper")] == [first["id"]]  # tags are searched
    assert [i["id"] for i in gallery_items(client, sort="rating")] == [first["id"], second["id"]]
    assert client.patch(f"/api/gallery/items/{first['id']}", json={"rating": 6}).status_code == 400
    assert client.patch(f"/api/gallery/items/{first['id']}", json={"starred": "yes"}).status_code == 400

    board = client.post("/api/gallery/boards", json={"name": "Animals"})
    assert board.status_code == 201
    board_id = board.get_json()["id"]
    assert client.post("/api/gallery/boards", json={"name": "animals"}).status_code == 409
    added = client.post(f"/api/gallery/boards/{board_id}/items", json={"ids": [second["id"]]})
    assert added.get_json()["count"] == 1
    assert [i["id"] for i in gallery_items(client, board=board_id)] == [second["id"]]
    assert client.get(f"/api/gallery/items/{second['id']}").get_json()["boards"] == [board_id]
    client.post(f"/api/gallery/boards/{board_id}/items", json={"ids": [second["id"]], "add": False})
    assert gallery_items(client, board=board_id) == []
    assert client.delete(f"/api/gallery/boards/{board_id}").status_code == 200
    assert len(gallery_items(client)) == 2  # a board's items stay in the gallery


def test_pages_follow_each_other_without_repeats_and_a_forged_cursor_is_refused(
        client: FlaskClient, services: Services) -> None:
    for index in range(5):
        put_file(services.data_dir.outputs, f"found/p{index}.png", png_with_text(parameters=f"picture {index}"))
    assert services.gallery.index.reconcile()["added"] == 5
    seen: list[int] = []
    cursor = None
    for _ in range(3):
        answer = client.get("/api/gallery", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})})
        body = answer.get_json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next"]
    assert cursor is None
    assert len(seen) == 5
    assert len(set(seen)) == 5
    oldest = [i["id"] for i in gallery_items(client, sort="oldest", limit=10)]
    assert oldest == list(reversed(seen))
    for forged in ("nope", "W10", "WyJ4IiwgMV0", "!!!", "WzEsMiwzLDRd"):
        answer = client.get("/api/gallery", query_string={"cursor": forged})
        assert answer.status_code == 400, forged
        assert answer.get_json()["error"]["code"] == "bad_request"


def test_bulk_delete_removes_files_and_history_outputs_and_a_zip_holds_the_selection(
        client: FlaskClient, runtime: Runtime, services: Services) -> None:
    first, second = _made(client, "a castle"), _made(client, "a bridge")
    found = put_file(services.data_dir.outputs, "found/extra.png", png_with_text(parameters="an extra"))
    services.gallery.index.reconcile()
    extra = gallery_items(client, q="extra")[0]

    with client.get("/api/gallery/zip", query_string={"ids": f"{first['id']},{extra['id']}"}) as answer:
        assert answer.status_code == 200
        assert answer.mimetype == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(answer.get_data()))
    names = archive.namelist()
    assert names[0] == "gallery.json"
    assert "extra.png" in names
    assert len(names) == 3
    assert client.get("/api/gallery/zip", query_string={"ids": "1,x"}).status_code == 400

    deleted = client.post("/api/gallery/delete", json={"ids": [first["id"], extra["id"]]})
    assert deleted.get_json() == {"deleted": 2}
    assert [i["id"] for i in gallery_items(client)] == [second["id"]]
    assert not found.exists()
    assert client.get(f"/api/jobs/{first['job_id']}").get_json()["outputs"] == []  # History agrees
    assert gallery_items(client, q="castle") == []  # and the text index forgot it

    client.delete(f"/api/jobs/{second['job_id']}")  # deleted in History: the gallery follows
    assert gallery_items(client) == []
    assert gallery_items(client, q="bridge") == []


def test_use_as_input_copies_the_image_into_the_inputs(client: FlaskClient, services: Services) -> None:
    put_file(services.data_dir.outputs, "found/in.png", png_with_text((40, 30)))
    services.gallery.index.reconcile()
    [item] = gallery_items(client)
    answer = client.post(f"/api/gallery/items/{item['id']}/use-as-input", json={})
    assert answer.status_code == 200, answer.get_json()
    made = answer.get_json()
    assert (made["width"], made["height"]) == (40, 30)
    with client.get(f"/api/inputs/{made['name'].removeprefix('studio/')}") as served:
        assert served.status_code == 200


def test_another_users_items_are_invisible_and_untouchable(app: Flask, client: FlaskClient,
                                                           runtime: Runtime, services: Services) -> None:
    bob = signed_in_user(app, client, "bob")
    mine = _made(bob, "bob's secret garden")
    theirs = _made(client, "the admin's tower")
    put_file(services.data_dir.outputs, "found/stray.png", png_with_text(parameters="a stray file"))
    services.gallery.index.reconcile()
    bob_board = bob.post("/api/gallery/boards", json={"name": "Mine"}).get_json()["id"]

    assert [i["id"] for i in gallery_items(bob)] == [mine["id"]]  # not the admin's, not the stray file
    assert gallery_items(bob, q="tower") == []
    assert gallery_items(bob, q="stray") == []
    assert {i["id"] for i in gallery_items(client)} >= {mine["id"], theirs["id"]}  # admins see all
    assert bob.get("/api/gallery/facets").get_json()["models"] == [SAMPLER_PARAMS["checkpoint"]]

    other = theirs["id"]
    refused = [
        bob.get(f"/api/gallery/items/{other}"),
        bob.get(f"/api/gallery/items/{other}/file"),
        bob.get(f"/api/gallery/items/{other}/thumb/256.webp"),
        bob.patch(f"/api/gallery/items/{other}", json={"starred": True, "rating": 5, "tags": ["mine now"]}),
        bob.post(f"/api/gallery/items/{other}/use-as-input", json={}),
        bob.post("/api/gallery/delete", json={"ids": [mine["id"], other]}),
        bob.get("/api/gallery/zip", query_string={"ids": f"{mine['id']},{other}"}),
        bob.post(f"/api/gallery/boards/{bob_board}/items", json={"ids": [other]}),
        client.post(f"/api/gallery/boards/{bob_board}/items", json={"ids": [theirs["id"]]}),  # not the admin's board
        client.get("/api/gallery", query_string={"board": bob_board}),
        client.delete(f"/api/gallery/boards/{bob_board}"),
    ]
    for answer in refused:
        assert answer.status_code == 404, (answer.request.path, answer.get_json())
        assert answer.get_json()["error"]["code"] in ("not_found",)
    assert bob.post("/api/gallery/reconcile", json={}).status_code == 403

    after = client.get(f"/api/gallery/items/{other}").get_json()
    assert (after["starred"], after["rating"], after["tags"]) == (False, 0, [])
    assert len(gallery_items(bob)) == 1  # the mixed delete deleted nothing, not even bob's own
    with client.get(theirs["url"]) as answer:
        assert answer.status_code == 200
    assert bob.get("/api/gallery/boards").get_json()["items"] == [{"id": bob_board, "name": "Mine", "count": 0}]


def test_the_owner_hears_of_new_items_and_another_person_does_not(app: Flask, client: FlaskClient,
                                                                  runtime: Runtime, services: Services) -> None:
    seen: list = []
    stop = services.bus.subscribe(lambda event: seen.append(event) if event.type == "gallery/changed" else None)
    try:
        bob = signed_in_user(app, client, "bob")
        item = _made(bob, "bob's boat")
        bob_id = bob.get("/api/auth/me").get_json()["user"]["id"]
        [added] = [e for e in seen if e.payload["change"] == "added"]
        assert added.payload["ids"] == [item["id"]]
        assert added.user_id == bob_id  # per person: the hub sends it to bob and the admins only
        assert services.bus.specs["gallery/changed"].per_user
    finally:
        stop()

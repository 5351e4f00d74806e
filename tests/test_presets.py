"""Presets: existing users' folders as they are, placeholders, who may see, change and run what."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.services import Services
from tests.auth_helpers import make_token
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, wait_status
from tests.servers.comfyui import ComfyUITestServer

ORIGINAL = Path(__file__).parent / "fixtures" / "presets-original"


def copy_original(services: Services) -> Path:
    folder = services.data_dir.presets
    folder.mkdir(parents=True, exist_ok=True)
    for path in ORIGINAL.iterdir():
        shutil.copy(path, folder / path.name)
    return folder


def make_preset(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Cat", "workflow_id": "sd15-txt2img",
            "params": {**SAMPLER_PARAMS, "positive_prompt": "a cat, [[Style:anime|photo]]"}, **fields}
    answer = client.post("/api/presets", json=body)
    assert answer.status_code == 201, answer.get_json()
    return dict(answer.get_json())


def run_preset(client: FlaskClient, preset_id: str, **body: Any) -> Any:
    return client.post(f"/api/presets/{preset_id}/run", json=body)


def test_an_original_folder_loads_as_it_is_and_broken_files_are_listed_with_the_reason(
    client: FlaskClient, services: Services
) -> None:
    copy_original(services)
    answer = client.get("/api/presets").get_json()
    items = {item["id"]: item for item in answer["items"]}
    assert set(items) == {"my-preset", "lighthouse-styles"}

    legacy = items["my-preset"]
    assert legacy["name"] == "My Preset"
    assert legacy["owner"] is None
    assert legacy["runnable"] is False
    assert legacy["problems"] == ["its workflow 'Text to Image Batch' is not installed"]
    assert legacy["seed_policy"] == "random"  # seed -1 in the original: a new seed each run
    assert legacy["source"] == {"type": "civitai", "civitai_image_id": 12345678}

    styles = items["lighthouse-styles"]
    assert styles["runnable"] is True, styles["problems"]
    assert styles["seed_policy"] == "fixed"
    assert styles["placeholders"] == [
        {"index": 0, "scene": None, "question": "Style", "options": ["anime", "watercolor", "photo"],
         "raw": "[[Style:anime|watercolor|photo]]", "field": "positive_prompt", "default": None},
        {"index": 1, "scene": None, "question": "Time of day", "options": None, "raw": "[[Time of day]]",
         "field": "positive_prompt", "default": None},
        {"index": 2, "scene": None, "question": "Avoid", "options": ["people", "boats"],
         "raw": "[[Avoid:people|boats]]", "field": "negative_prompt", "default": None},
    ]
    problems = {problem["file"]: problem["reason"] for problem in answer["problems"]}
    assert problems.keys() == {"cut-short.json", "no workflow.json", "no-workflow-object.json"}
    assert problems["cut-short.json"].startswith("is not usable JSON")
    assert "not a usable preset id" in problems["no workflow.json"]
    assert problems["no-workflow-object.json"] == 'has no "workflow" object'


def test_placeholders_are_answered_in_the_originals_order_and_a_wrong_choice_is_refused(
    client: FlaskClient, services: Services
) -> None:
    copy_original(services)
    refused = run_preset(client, "lighthouse-styles", answers={"0": "oil painting", "1": "dusk", "2": "boats"})
    assert refused.status_code == 400
    fields = refused.get_json()["error"]["details"]["fields"]
    assert fields == {"answers.0": "must be one of: anime, watercolor, photo"}
    missing = run_preset(client, "lighthouse-styles", answers={"0": "anime"})
    assert missing.status_code == 400
    assert set(missing.get_json()["error"]["details"]["fields"]) == {"answers.1", "answers.2"}
    assert "Time of day" in missing.get_json()["error"]["message"]
    unknown = run_preset(client, "lighthouse-styles", answers={"0": "anime", "1": "dusk", "2": "boats", "7": "x"})
    assert unknown.status_code == 400

    answer = run_preset(client, "lighthouse-styles", answers={"0": "watercolor", "1": "[[dawn]]", "2": "people"})
    assert answer.status_code == 202, answer.get_json()
    [job] = answer.get_json()["items"]
    assert job["params"]["positive_prompt"] == "a lighthouse, watercolor, at [[dawn]]"
    assert job["params"]["negative_prompt"] == "blurry, people"
    assert job["params"]["seed"] == 1234  # fixed policy: the preset's own seed
    assert answer.get_json()["links"][0]["events"] == f"/api/jobs/{job['id']}/events"
    # Only the refused runs above made nothing: one job in all.
    assert len(client.get("/api/jobs?limit=50").get_json()["items"]) == 1


def test_a_question_with_a_default_may_be_skipped_and_a_default_that_is_no_option_stays_text(
    client: FlaskClient
) -> None:
    preset = make_preset(client, name="Defaults", params={
        **SAMPLER_PARAMS, "positive_prompt": "[[Style:anime|photo=photo]] of [[Subject=a lighthouse]], [[Mood]]",
        "negative_prompt": "[[Ratio:w=2|h=3]]"})
    asked = [(q["question"], q["options"], q["default"]) for q in preset["placeholders"]]
    assert asked == [("Style", ["anime", "photo"], "photo"), ("Subject", None, "a lighthouse"), ("Mood", None, None),
                     ("Ratio", ["w=2", "h=3"], None)]  # "3" is no option: the "=" is the option's own text
    missing = run_preset(client, preset["id"], answers={})
    assert set(missing.get_json()["error"]["details"]["fields"]) == {"answers.2", "answers.3"}  # no default: asked
    answer = run_preset(client, preset["id"], answers={"1": " ", "2": "calm", "3": "h=3"})
    assert answer.status_code == 202, answer.get_json()
    [job] = answer.get_json()["items"]
    assert job["params"]["positive_prompt"] == "photo of a lighthouse, calm"
    assert job["params"]["negative_prompt"] == "h=3"
    chosen = run_preset(client, preset["id"], answers={"0": "anime", "1": "a fox", "2": "wild", "3": "w=2"})
    assert chosen.get_json()["items"][0]["params"]["positive_prompt"] == "anime of a fox, wild"


def test_scene_prompts_are_asked_first(client: FlaskClient, services: Services) -> None:
    from studio.presets import placeholders

    params = {"positive_prompt": "[[Mood:calm|wild]] sea", "scenes": [{"prompt": "a [[Animal]]"},
                                                                     {"prompt": "then [[Animal]] again"}]}
    found = placeholders.scan(params)
    assert [(p.index, p.scene, p.field, p.question) for p in found] == [
        (0, 0, "prompt", "Animal"), (1, 1, "prompt", "Animal"), (2, None, "positive_prompt", "Mood")]
    done = placeholders.apply(params, {"0": "fox", "1": "owl", "2": "wild"})
    assert done["scenes"] == [{"prompt": "a fox"}, {"prompt": "then owl again"}]
    assert done["positive_prompt"] == "wild sea"
    assert params["scenes"][0]["prompt"] == "a [[Animal]]"  # the preset itself is untouched


def test_a_private_preset_exists_only_for_its_owner_and_admins(app: Flask, client: FlaskClient) -> None:
    alice = signed_in_user(app, client, "alice")
    bob = signed_in_user(app, client, "bob")
    secret = make_preset(alice, name="Alice's secret", private=True)
    assert secret["owner"] == "alice"
    assert secret["can_edit"] is True

    assert [item["id"] for item in bob.get("/api/presets").get_json()["items"]] == []
    for answer in (bob.get(f"/api/presets/{secret['id']}"), run_preset(bob, secret["id"], answers={"0": "anime"}),
                   bob.get(f"/api/presets/{secret['id']}/export"), bob.put(f"/api/presets/{secret['id']}",
                                                                           json={"name": "mine"}),
                   bob.delete(f"/api/presets/{secret['id']}"), bob.post(f"/api/presets/{secret['id']}/duplicate")):
        assert answer.status_code == 404, answer.get_json()
        assert "Alice's" not in json.dumps(answer.get_json())
    zipped = zipfile.ZipFile(io.BytesIO(bob.get("/api/presets/export").data))
    assert zipped.namelist() == []
    assert client.get(f"/api/presets/{secret['id']}").status_code == 200  # the admin sees it
    assert [item["id"] for item in client.get("/api/presets").get_json()["items"]] == [secret["id"]]


def test_a_shared_preset_is_run_by_anyone_as_themselves_but_changed_only_by_its_owner(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    alice = signed_in_user(app, client, "alice")
    bob = signed_in_user(app, client, "bob")
    shared = make_preset(alice, name="Shared cat")
    assert bob.get(f"/api/presets/{shared['id']}").get_json()["can_edit"] is False
    changed = bob.put(f"/api/presets/{shared['id']}", json={"name": "Bob's now"})
    assert changed.status_code == 403
    assert changed.get_json()["error"]["code"] == "not_your_preset"
    assert bob.delete(f"/api/presets/{shared['id']}").status_code == 403
    assert alice.get(f"/api/presets/{shared['id']}").get_json()["name"] == "Shared cat"

    ran = run_preset(bob, shared["id"], answers={"0": "photo"})
    assert ran.status_code == 202
    [job] = ran.get_json()["items"]
    bob_id = bob.get("/api/auth/me").get_json()["user"]["id"]
    assert job["owner_id"] == bob_id
    assert alice.get(f"/api/jobs/{job['id']}").status_code == 404  # bob's job, not alice's
    # Another person's run gives the owner's card no picture and leaves the file as it was.
    assert "last_run" not in json.loads((services.data_dir.presets / f"{shared['id']}.json").read_text())

    copy = bob.post(f"/api/presets/{shared['id']}/duplicate", json={"name": "Bob's cat"})
    assert copy.status_code == 201
    assert copy.get_json()["owner"] == "bob"
    assert copy.get_json()["can_edit"] is True
    assert bob.put(f"/api/presets/{copy.get_json()['id']}", json={"private": True}).status_code == 200
    assert alice.get(f"/api/presets/{copy.get_json()['id']}").status_code == 404


def test_a_run_token_lists_and_runs_presets_but_changes_none(app: Flask, client: FlaskClient) -> None:
    preset = make_preset(client, name="Token cat")
    plain = make_token(client, scope="run")["token"]
    script = app.test_client()
    headers = {"Authorization": f"Bearer {plain}"}
    assert [item["id"] for item in script.get("/api/presets", headers=headers).get_json()["items"]] == [preset["id"]]
    ran = script.post(f"/api/presets/{preset['id']}/run", json={"answers": {"0": "anime"}}, headers=headers)
    assert ran.status_code == 202, ran.get_json()
    for answer in (script.post("/api/presets", json={"name": "x", "workflow_id": "sd15-txt2img"}, headers=headers),
                   script.put(f"/api/presets/{preset['id']}", json={"name": "x"}, headers=headers),
                   script.delete(f"/api/presets/{preset['id']}", headers=headers),
                   script.post(f"/api/presets/{preset['id']}/duplicate", json={}, headers=headers)):
        assert answer.status_code == 403, answer.get_json()
    assert client.get(f"/api/presets/{preset['id']}").get_json()["name"] == "Token cat"


@pytest.mark.parametrize("bad_id", ["../etc", "a b", "x" * 65, "", "café", "a/b"])
def test_ids_outside_the_pattern_are_refused_with_the_field_named(
    client: FlaskClient, services: Services, bad_id: str
) -> None:
    answer = client.post("/api/presets", json={"name": "x", "workflow_id": "sd15-txt2img", "id": bad_id})
    assert answer.status_code == 400
    assert "id" in answer.get_json()["error"]["details"]["fields"]
    assert not services.data_dir.presets.exists() or list(services.data_dir.presets.iterdir()) == []


def test_params_and_overridables_must_belong_to_the_workflow(client: FlaskClient) -> None:
    answer = client.post("/api/presets", json={"name": "x", "workflow_id": "sd15-txt2img",
                                               "params": {"colour": "red"}, "overridable": ["size"]})
    assert answer.status_code == 400
    assert set(answer.get_json()["error"]["details"]["fields"]) == {"params.colour", "overridable.size"}
    gone = client.post("/api/presets", json={"name": "x", "workflow_id": "nope"})
    assert gone.status_code == 404


def test_only_overridable_parameters_change_at_run_time_and_their_questions_are_not_asked(
    client: FlaskClient,
) -> None:
    preset = make_preset(client, overridable=["positive_prompt"])
    refused = run_preset(client, preset["id"], answers={"0": "anime"}, overrides={"steps": 50})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "not_overridable"
    assert list(refused.get_json()["error"]["details"]["fields"]) == ["overrides.steps"]
    ran = run_preset(client, preset["id"], overrides={"positive_prompt": "a dog"})
    assert ran.status_code == 202, ran.get_json()
    assert ran.get_json()["items"][0]["params"]["positive_prompt"] == "a dog"
    assert ran.get_json()["items"][0]["params"]["steps"] == SAMPLER_PARAMS["steps"]


def test_the_seed_policy_fixed_keeps_the_seed_and_random_draws_and_records_one(client: FlaskClient) -> None:
    fixed = make_preset(client, name="Fixed", params={**SAMPLER_PARAMS, "seed": 42}, seed_policy="fixed")
    random = make_preset(client, name="Random", params={**SAMPLER_PARAMS, "seed": 42}, seed_policy="random")
    seeds = [run_preset(client, fixed["id"]).get_json()["items"][0]["params"]["seed"] for _ in range(2)]
    assert seeds == [42, 42]
    drawn = [run_preset(client, random["id"]).get_json()["items"][0]["params"]["seed"] for _ in range(2)]
    assert 42 not in drawn
    assert drawn[0] != drawn[1]
    assert all(0 <= seed < 2**64 for seed in drawn)
    chosen = run_preset(client, random["id"], seed=7).get_json()["items"][0]["params"]["seed"]
    assert chosen == 7
    assert run_preset(client, fixed["id"], seed=2**64).status_code == 400


def test_saving_keeps_what_studio_does_not_know(client: FlaskClient, services: Services) -> None:
    folder = copy_original(services)
    answer = client.put("/api/presets/lighthouse-styles", json={"name": "Lighthouse, renamed"})
    assert answer.status_code == 200, answer.get_json()
    saved = json.loads((folder / "lighthouse-styles.json").read_text())
    assert saved["name"] == "Lighthouse, renamed"
    assert saved["telegram_emoji"] == "🗼"
    assert saved["source"] == {"type": "manual"}
    assert saved["workflow"]["params"]["positive_prompt"].startswith("a lighthouse, [[Style:")
    assert saved["description"] == "Asks for a style and a time of day"


def test_a_legacy_preset_without_owner_is_changed_by_admins_only(app: Flask, client: FlaskClient,
                                                                 services: Services) -> None:
    copy_original(services)
    bob = signed_in_user(app, client, "bob")
    assert bob.put("/api/presets/lighthouse-styles", json={"name": "b"}).status_code == 403
    assert run_preset(bob, "lighthouse-styles", answers={"0": "anime", "1": "noon", "2": "boats"}).status_code == 202
    assert client.delete("/api/presets/lighthouse-styles").status_code == 204
    assert client.get("/api/presets/lighthouse-styles").status_code == 404


def test_export_and_import_round_trip_as_a_zip_and_bad_entries_are_listed(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    copy_original(services)
    data = client.get("/api/presets/export").data
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == ["lighthouse-styles.json", "my-preset.json"]

    bob = signed_in_user(app, client, "bob")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(f"shared/{name}", zipfile.ZipFile(io.BytesIO(data)).read(name))
        archive.writestr("broken.json", "{not json")
        archive.writestr("../../escape.json", json.dumps({"name": "Escape", "workflow": {"workflow_id": "x"}}))
        archive.writestr("readme.txt", "ignored")
    answer = bob.post("/api/presets/import", data={"file": (io.BytesIO(buffer.getvalue()), "mine.zip")},
                      content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    # The ids are taken by the admin's presets: bob's copies get new ones, and nothing of theirs is replaced.
    assert sorted(item["file"] for item in body["imported"]) == ["escape.json", "lighthouse-styles.json",
                                                                "my-preset.json"]
    assert {item["id"] for item in body["imported"]} == {"lighthouse-styles-2", "my-preset-2", "escape"}
    assert [problem["file"] for problem in body["problems"]] == ["broken.json"]
    for item in body["imported"]:
        mine = bob.get(f"/api/presets/{item['id']}").get_json()
        assert mine["owner"] == "bob"
    assert not (services.data_dir.root / "escape.json").exists()
    assert client.get("/api/presets/lighthouse-styles").get_json()["owner"] is None  # the admin's stays


def test_importing_over_an_existing_id_needs_replace_and_your_own_preset(app: Flask, client: FlaskClient) -> None:
    bob = signed_in_user(app, client, "bob")
    preset = make_preset(client, id="cat", name="Admin's cat")
    doc = client.get(f"/api/presets/{preset['id']}/export").data
    again = client.post("/api/presets/import", data={"file": (io.BytesIO(doc), "cat.json")},
                        content_type="multipart/form-data")
    assert again.status_code == 200
    assert again.get_json()["imported"][0]["id"] == "cat-2"  # a new id, the first untouched
    replaced = client.post("/api/presets/import", data={"file": (io.BytesIO(doc.replace(b"Admin's cat", b"New")),
                                                                 "cat.json"), "replace": "1"},
                           content_type="multipart/form-data")
    assert replaced.get_json()["imported"] == [{"file": "cat.json", "id": "cat"}]
    assert client.get("/api/presets/cat").get_json()["name"] == "New"
    stolen = bob.post("/api/presets/import", data={"file": (io.BytesIO(doc), "cat.json"), "replace": "1"},
                      content_type="multipart/form-data")
    assert stolen.status_code == 422
    assert stolen.get_json()["error"]["code"] == "nothing_imported"
    assert "someone else's" in stolen.get_json()["error"]["message"]
    assert client.get("/api/presets/cat").get_json()["owner"] == "admin"


def test_a_preset_whose_workflow_is_not_ready_says_so_and_does_not_run(
    client: FlaskClient, comfy_server: ComfyUITestServer, services: Services
) -> None:
    preset = make_preset(client)
    comfy_server.models["checkpoints"] = []
    services.comfy.invalidate_object_info()
    shown = client.get(f"/api/presets/{preset['id']}").get_json()
    assert shown["runnable"] is False
    assert any("random_sd15.safetensors" in problem or "missing" in problem for problem in shown["problems"])
    refused = run_preset(client, preset["id"], answers={"0": "anime"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "preset_not_runnable"
    assert client.get("/api/jobs").get_json()["items"] == []


def test_the_owners_finished_run_becomes_the_cards_picture(
    client: FlaskClient, runtime: Any, services: Services
) -> None:
    preset = make_preset(client)
    assert preset["thumbnail"] is None
    [job] = run_preset(client, preset["id"], answers={"0": "anime"}).get_json()["items"]
    assert wait_status(client, job["id"])["status"] == "completed"
    shown = wait_until(lambda: (p := client.get(f"/api/presets/{preset['id']}").get_json())["thumbnail"] and p,
                       timeout=10)
    picture = client.get(shown["thumbnail"])
    assert picture.status_code == 200
    assert picture.mimetype == "image/webp"
    assert picture.data[:4] == b"RIFF"
    assert picture.data[8:12] == b"WEBP"


def test_a_retried_run_with_the_same_idempotency_key_makes_one_job(client: FlaskClient) -> None:
    preset = make_preset(client)
    headers = {"Idempotency-Key": "telegram-update-5512"}
    first = client.post(f"/api/presets/{preset['id']}/run", json={"answers": {"0": "anime"}}, headers=headers)
    again = client.post(f"/api/presets/{preset['id']}/run", json={"answers": {"0": "anime"}}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["items"][0]["id"] == first.get_json()["items"][0]["id"]
    assert len(client.get("/api/jobs?limit=50").get_json()["items"]) == 1


def test_a_preset_whose_workflow_takes_an_image_asks_for_one_at_each_run(client: FlaskClient) -> None:
    from tests.jobs_helpers import upload_image

    preset = make_preset(client, name="Thumbnailer", workflow_id="image-resize", params={"width": 32, "height": 24})
    assert preset["needs_image"] is True
    missing = run_preset(client, preset["id"])
    assert missing.status_code == 400
    assert "image" in missing.get_json()["error"]["details"]["fields"]
    name = upload_image(client)
    ran = run_preset(client, preset["id"], image=name)
    assert ran.status_code == 202, ran.get_json()
    params = ran.get_json()["items"][0]["params"]
    assert (params["image"], params["width"], params["height"]) == (name, 32, 24)
    gone = run_preset(client, preset["id"], image="never-uploaded.png")
    assert gone.status_code == 400
    assert len(client.get("/api/jobs?limit=50").get_json()["items"]) == 1


def test_hostile_preset_files_are_listed_never_followed_and_never_stop_the_list(
    client: FlaskClient, services: Services, tmp_path: Path
) -> None:
    folder = copy_original(services)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"name": "Outside", "workflow": {"workflow_id": "sd15-txt2img"}}))
    (folder / "linked.json").symlink_to(outside)
    (folder / "folder.json").mkdir()
    (folder / "nan.json").write_text('{"name": "n", "workflow": {"workflow_id": "x", "params": {"cfg": NaN}}}')
    (folder / "deep.json").write_text('{"workflow": {"workflow_id": "x", "params": {"a": ' + "[" * 200 + "]" * 200
                                      + "}}}")
    (folder / "huge.json").write_text(json.dumps({"workflow": {"workflow_id": "x"}, "pad": "x" * (1024 * 1024)}))
    (folder / "wrong-types.json").write_text(json.dumps({"name": 5, "workflow": {"workflow_id": "x"}}))
    answer = client.get("/api/presets")
    assert answer.status_code == 200
    body = answer.get_json()
    assert {item["id"] for item in body["items"]} == {"my-preset", "lighthouse-styles"}
    problems = {problem["file"]: problem["reason"] for problem in body["problems"]}
    assert problems["linked.json"] == "is not a plain file"
    assert problems["folder.json"] == "is not a plain file"
    assert "NaN" in problems["nan.json"]
    assert problems["deep.json"].startswith("is not usable JSON")
    assert problems["huge.json"] == "is larger than 1024 KiB"
    assert problems["wrong-types.json"] == 'has a "name" that is not a str'
    assert client.get("/api/presets/linked").status_code == 404
    assert outside.read_text().startswith('{"name": "Outside"')  # never written through the link
    assert client.put("/api/presets/linked", json={"name": "x"}).status_code == 404


def test_a_plain_user_does_not_see_which_files_are_broken(app: Flask, client: FlaskClient,
                                                         services: Services) -> None:
    copy_original(services)
    bob = signed_in_user(app, client, "bob")
    assert bob.get("/api/presets").get_json()["problems"] == []

"""The workflow library as a person meets it: changes on disk picked up folder by folder, names and
ids that never clash, saving nodes known from ComfyUI itself, and workflows taken out and back."""

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.config import Settings
from studio.db import upgrade
from studio.services import Services, build_services
from studio.workflows.models import WorkflowRecord
from tests.conftest import signed_in_user
from tests.jobs_helpers import run, wait_status
from tests.ui_workflows import SAMPLER_API, node, sampler_ui


def upload(client: FlaskClient, data: bytes | dict[str, Any], filename: str = "w.json", **form: str) -> Any:
    body = json.dumps(data).encode() if isinstance(data, dict) else data
    return client.post("/api/workflows", data={"file": (io.BytesIO(body), filename), **form},
                       content_type="multipart/form-data")


def listed(client: FlaskClient) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/workflows")
    assert answer.status_code == 200
    return {item["id"]: item for item in answer.get_json()["items"]}


def rows(services: Services) -> dict[str, WorkflowRecord]:
    with Session(services.engine) as session:
        return {row.id: row for row in session.exec(select(WorkflowRecord))}


def audio_workflow(save: str = "SaveAudioMP3") -> dict[str, Any]:
    """A model-free workflow whose only saving node is one the old fixed lists did not know."""
    return {"1": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 8000, "channels": 1},
                  "_meta": {"title": "Silence"}},
            "2": {"class_type": save, "inputs": {"audio": ["1", 0], "filename_prefix": "audio/ComfyUI",
                                                 **({"quality": "V0"} if save == "SaveAudioMP3" else {})},
                  "_meta": {"title": "Save MP3"}}}


# -- the library follows the folders, one at a time ---------------------------------------------------


def test_an_import_rewrites_only_its_own_row_and_a_hand_edit_is_seen_without_a_restart(
    client: FlaskClient, services: Services
) -> None:
    assert upload(client, SAMPLER_API, id="first", name="First").status_code == 201
    assert upload(client, SAMPLER_API, id="second", name="Second").status_code == 201
    before = rows(services)
    assert upload(client, SAMPLER_API, id="third", name="Third").status_code == 201
    after = rows(services)
    assert "third" in after
    for workflow_id in ("first", "second", "sd15-txt2img", "image-resize"):  # untouched rows are not rewritten
        assert after[workflow_id].updated_at == before[workflow_id].updated_at, workflow_id

    manifest = services.data_dir.workflows / "second" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("name: Second", "name: Second, edited by hand"))
    assert listed(client)["second"]["name"] == "Second, edited by hand"
    assert rows(services)["second"].name == "Second, edited by hand"
    assert rows(services)["first"].updated_at == before["first"].updated_at

    broken = services.data_dir.workflows / "first" / "workflow.json"
    broken.write_text("{ not json")  # one broken folder is a problem listed, the rest still load
    answer = client.get("/api/workflows").get_json()
    assert "first" not in {item["id"] for item in answer["items"]}
    assert {"second", "third", "sd15-txt2img"} <= {item["id"] for item in answer["items"]}
    assert any(p["folder"].endswith("first") and "workflow.json" in p["message"] for p in answer["problems"])
    assert rows(services)["first"].removed_at is not None  # kept for the jobs that name it


def test_a_users_copy_shadows_the_bundled_one_until_its_folder_goes(client: FlaskClient, services: Services) -> None:
    assert upload(client, SAMPLER_API, id="image-resize", name="My resize", replace="1").status_code == 201
    assert listed(client)["image-resize"]["bundled"] is False
    assert client.delete("/api/workflows/image-resize").status_code == 200
    back = listed(client)["image-resize"]  # the bundled one it shadowed was never deleted
    assert (back["bundled"], back["name"]) == (True, "Resize an image")


# -- names and ids --------------------------------------------------------------------------------------


def test_names_come_from_the_file_or_the_graph_and_never_clash(client: FlaskClient, services: Services) -> None:
    first = upload(client, sampler_ui(), "Castle at night.json")
    assert first.status_code == 201, first.get_json()
    assert (first.get_json()["id"], first.get_json()["name"]) == ("castle-at-night", "Castle at night")
    other = sampler_ui()
    other["nodes"][2]["widgets_values"] = ["a different castle"]
    second = upload(client, other, "Castle at night.json")
    assert second.status_code == 201, second.get_json()
    assert (second.get_json()["id"], second.get_json()["name"]) == ("castle-at-night-2", "Castle at night (2)")
    assert listed(client)["castle-at-night"]["name"] == "Castle at night"  # the first is untouched

    titled = sampler_ui()
    titled["extra"]["title"] = "  Moonlit   tower "
    third = upload(client, titled, "ComfyUI_00012_.json")
    assert (third.get_json()["id"], third.get_json()["name"]) == ("moonlit-tower", "Moonlit tower")
    named = upload(client, sampler_ui(), "x.json", name="castle AT NIGHT")  # names compare without case
    assert named.get_json()["name"] == "castle AT NIGHT (3)"  # "(2)" is taken too
    assert named.get_json()["id"] == "castle-at-night-3"

    # A given id that is taken stays a 409; replace with a derived id updates the one it names.
    assert upload(client, sampler_ui(), "a.json", id="castle-at-night").status_code == 409
    replaced = upload(client, other, "Castle at night.json", replace="1")
    assert (replaced.get_json()["id"], replaced.get_json()["name"]) == ("castle-at-night", "Castle at night")
    assert len([i for i in listed(client) if i.startswith("castle-at-night")]) == 3
    assert sorted(p.name for p in services.data_dir.workflows.iterdir() if p.is_dir()) == [
        "castle-at-night", "castle-at-night-2", "castle-at-night-3", "moonlit-tower"]


@pytest.mark.parametrize(("title", "workflow_id"), [
    ("360 Rotation", "360-rotation"), ("日本の城", "imported"), ("", "imported"), ("   ", "imported"),
    ("a" * 300, "a" * 64), ("Ünïcödé castle", "n-c-d-castle"),
])
def test_any_title_gives_an_import_that_loads_and_runs(client: FlaskClient, runtime: Any, title: str,
                                                       workflow_id: str) -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    for node_id in ("6", "3", "5"):  # titles become parameter ids: digits first, non-ASCII, very long, empty
        prompt[node_id]["_meta"]["title"] = title
    prompt["6"]["_meta"]["title"] = f"{title} 360 Rotation"
    answer = upload(client, prompt, "x.json", name=title[:200]) if title.strip() else upload(client, prompt, "—.json")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["id"] == workflow_id
    form = client.get(f"/api/workflows/{workflow_id}").get_json()["manifest"]
    ids = [spec["id"] for spec in form["inputs"]]
    assert len(ids) == len(set(ids))
    assert all(spec_id.replace("_", "").isalnum() and spec_id.isascii() for spec_id in ids), ids
    [job] = run(client, workflow_id, {"steps": 2})
    assert wait_status(client, job["id"])["status"] == "completed"


def test_a_digit_first_title_keeps_its_parameter_ids_across_re_imports(client: FlaskClient) -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["3"]["inputs"]["cfg"] = ["12", 0]
    prompt["12"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 6.5}, "_meta": {"title": "360 Rotation"}}
    assert upload(client, prompt, id="spin").status_code == 201
    inputs = client.get("/api/workflows/spin").get_json()["manifest"]["inputs"]
    first = {s["id"] for s in inputs}
    [spin] = [s["id"] for s in inputs if s["node_id"] == "12"]
    assert "360" in spin
    saved = client.put("/api/workflows/spin/mapping", json={"inputs": [{"id": spin, "name": "Spin"}]})
    assert saved.status_code == 200, saved.get_json()
    assert upload(client, prompt, id="spin", replace="1").status_code == 201
    again = {s["id"]: s for s in client.get("/api/workflows/spin").get_json()["manifest"]["inputs"]}
    assert set(again) == first
    assert again[spin]["name"] == "Spin"


# -- saving nodes are ComfyUI's own output nodes ----------------------------------------------------------


def test_a_save_node_the_old_lists_lacked_imports_and_its_files_go_into_the_jobs_folder(
    client: FlaskClient, runtime: Any
) -> None:
    answer = upload(client, audio_workflow(), "silence.json")
    assert answer.status_code == 201, answer.get_json()
    manifest = client.get("/api/workflows/silence").get_json()["manifest"]
    assert manifest["outputs"] == [{"id": "audio_2", "name": "Save MP3", "type": "audio", "node_id": "2"}]
    [job] = run(client, "silence", {})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done
    assert done["prompt"]["2"]["inputs"]["filename_prefix"] == f"studio/{job['id']}/audio"
    assert done["prompt"]["1"]["inputs"] == audio_workflow()["1"]["inputs"]  # only the saving node is pointed


@pytest.mark.parametrize(("save", "inputs", "kind"), [
    ("SaveGLB", {"mesh": ["1", 0], "filename_prefix": "3d/ComfyUI"}, "3d"),
    ("SaveWEBM", {"images": ["1", 0], "filename_prefix": "x", "codec": "vp9", "fps": 24.0, "crf": 32.0}, "video"),
    ("SaveSVGNode", {"svg": ["1", 0], "filename_prefix": "svg/ComfyUI"}, "image"),
    ("SaveLatent", {"samples": ["1", 0], "filename_prefix": "latents/ComfyUI"}, "latent"),
    ("VHS_VideoCombine", {"images": ["1", 0], "filename_prefix": "v"}, "video"),  # unknown to ComfyUI: the fallback
])
def test_every_saving_node_is_an_output_of_its_kind(client: FlaskClient, save: str, inputs: dict[str, Any],
                                                    kind: str) -> None:
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": save, "inputs": inputs}}
    answer = upload(client, prompt, f"{save}.json")
    assert answer.status_code == 201, answer.get_json()
    outputs = client.get(f"/api/workflows/{answer.get_json()['id']}").get_json()["manifest"]["outputs"]
    assert [(o["node_id"], o["type"]) for o in outputs] == [("2", kind)]


@pytest.mark.parametrize("preview", ["PreviewImage", "PreviewAudio", "SaveImageWebsocket"])
def test_a_workflow_that_only_previews_saves_nothing(client: FlaskClient, services: Services, preview: str) -> None:
    field = "audio" if preview == "PreviewAudio" else "images"
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": preview, "inputs": {field: ["1", 0]}}}
    answer = upload(client, prompt, "preview.json")
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "no_outputs"
    assert not services.data_dir.workflows.is_dir() or not any(services.data_dir.workflows.iterdir())


# -- deleting, hiding, restoring ----------------------------------------------------------------------------


def test_deleting_an_imported_workflow_removes_its_folder_and_row_and_keeps_its_jobs(
    app: Flask, client: FlaskClient, runtime: Any, services: Services
) -> None:
    assert upload(client, audio_workflow(), "silence.json").status_code == 201
    [job] = run(client, "silence", {})
    assert wait_status(client, job["id"])["status"] == "completed"
    folder = services.data_dir.workflows / "silence"
    assert folder.is_dir()

    mallory = signed_in_user(app, client, "mallory")
    refused = mallory.delete("/api/workflows/silence")
    assert refused.status_code == 403
    assert folder.is_dir()
    assert "silence" in listed(client)
    assert client.delete("/api/workflows/no-such-one").status_code == 404
    assert client.delete("/api/workflows/silence", json={"force": True}).status_code == 400  # nothing deleted
    assert folder.is_dir()

    answer = client.delete("/api/workflows/silence")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"id": "silence", "name": "silence", "bundled": False, "action": "deleted"}
    assert not folder.exists()
    assert "silence" not in listed(client)
    assert client.get("/api/workflows/silence").status_code == 404
    assert "silence" not in rows(services)
    kept = client.get(f"/api/jobs/{job['id']}").get_json()  # the history keeps what ran
    assert (kept["status"], kept["workflow_id"], kept["workflow_name"]) == ("completed", "silence", "silence")
    assert client.post(f"/api/jobs/{job['id']}/retry", json={}).status_code == 404  # nothing left to run again
    assert client.delete("/api/workflows/silence").status_code == 404
    assert client.post("/api/workflows/silence/restore", json={}).status_code == 404  # only bundled ones come back


def test_deleting_never_follows_a_link(client: FlaskClient, services: Services, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not Studio's")
    assert upload(client, SAMPLER_API, id="inner", name="Inner").status_code == 201
    inner = services.data_dir.workflows / "inner"
    (inner / "elsewhere").symlink_to(outside)  # a link inside the folder: removed, its target left alone
    assert client.delete("/api/workflows/inner").status_code == 200
    assert not inner.exists()
    assert (outside / "keep.txt").read_text() == "not Studio's"

    assert upload(client, SAMPLER_API, id="real", name="Real").status_code == 201
    real = services.data_dir.workflows / "real"
    real.rename(outside / "real")
    real.symlink_to(outside / "real")  # the whole folder a link: only the link goes
    assert "real" in listed(client)
    assert client.delete("/api/workflows/real").status_code == 200
    assert not real.is_symlink()
    assert sorted(p.name for p in (outside / "real").iterdir()) == ["manifest.yaml", "workflow.json"]
    assert "real" not in listed(client)


def test_a_bundled_workflow_is_hidden_across_restarts_and_restored(
    app: Flask, client: FlaskClient, services: Services, settings: Settings
) -> None:
    mallory = signed_in_user(app, client, "mallory")
    assert client.delete("/api/workflows/sd15-txt2img").get_json()["action"] == "hidden"
    answer = client.get("/api/workflows").get_json()
    assert "sd15-txt2img" not in {item["id"] for item in answer["items"]}
    assert answer["hidden"] == [{"id": "sd15-txt2img", "name": "SD 1.5 text to image"}]
    assert client.get("/api/workflows/sd15-txt2img").status_code == 404
    assert client.post("/api/workflows/sd15-txt2img/run", json={"params": {}}).status_code == 404
    assert (Path(__file__).parent.parent / "workflows" / "sd15-txt2img" / "manifest.yaml").is_file()  # never deleted

    again = build_services(settings)  # a restart: the same data folder, a fresh library
    upgrade(again.engine)
    again.library.refresh(force=True)
    assert again.library.find("sd15-txt2img") is None
    assert [w.id for w in again.library.hidden()] == ["sd15-txt2img"]
    again.engine.dispose()

    assert mallory.post("/api/workflows/sd15-txt2img/restore", json={}).status_code == 403
    assert "sd15-txt2img" not in listed(client)
    restored = client.post("/api/workflows/sd15-txt2img/restore", json={})
    assert restored.status_code == 200, restored.get_json()
    assert restored.get_json()["bundled"] is True
    assert "sd15-txt2img" in listed(client)
    assert client.get("/api/workflows").get_json()["hidden"] == []
    assert client.post("/api/workflows/sd15-txt2img/restore", json={}).status_code == 404  # not hidden any more


def test_a_broken_hidden_list_hides_nothing(client: FlaskClient, services: Services) -> None:
    services.data_dir.workflows.mkdir(parents=True, exist_ok=True)
    for junk in (b"{ nope", b'{"hidden": "sd15-txt2img"}', b"[1, 2]", b'{"hidden": [1, null, ["x"]]}'):
        (services.data_dir.workflows / ".hidden.json").write_bytes(junk)
        assert {"sd15-txt2img", "image-resize"} <= set(listed(client)), junk


def test_open_pages_hear_of_imports_deletions_and_restores(client: FlaskClient, services: Services) -> None:
    heard: list[dict[str, Any]] = []
    stop = services.bus.subscribe(lambda event: heard.append(event.to_message())
                                  if event.type == "workflows/changed" else None)
    try:
        assert upload(client, SAMPLER_API, id="noted", name="Noted").status_code == 201
        assert client.delete("/api/workflows/noted").status_code == 200
        assert client.delete("/api/workflows/image-resize").status_code == 200
        assert client.post("/api/workflows/image-resize/restore", json={}).status_code == 200
        assert client.delete("/api/workflows/noted").status_code == 404  # a refusal says nothing
    finally:
        stop()
    assert [(m["payload"]["id"], m["payload"]["action"]) for m in heard] == [
        ("noted", "imported"), ("noted", "deleted"), ("image-resize", "hidden"), ("image-resize", "restored")]
    assert all(m["payload"]["actor"] == "admin" for m in heard)


def test_a_ui_workflow_saving_audio_converts_and_imports(client: FlaskClient) -> None:
    ui = {"nodes": [node(1, "EmptyAudio", [1.0, 8000, 1], outputs=[("AUDIO", [1])]),
                    node(2, "SaveAudioMP3", ["audio/ComfyUI", "V0"], [("audio", "AUDIO", 1)], title="Voice")],
          "links": [[1, 1, 0, 2, 0, "AUDIO"]], "extra": {}}
    answer = upload(client, ui, "voice.json")
    assert answer.status_code == 201, answer.get_json()
    outputs = client.get("/api/workflows/voice").get_json()["manifest"]["outputs"]
    assert [(o["name"], o["type"]) for o in outputs] == [("Voice", "audio")]

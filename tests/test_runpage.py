"""The Run page's memory (``/api/run/last``): each person's last workflow and values, their own only,
and model pickers that offer what ComfyUI has now rather than what a file listed at import."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from flask import Flask
from flask.testing import FlaskClient

from studio.runpage.service import MAX_DRAFTS_PER_USER, RunDrafts
from studio.services import Services
from tests.conftest import signed_in_user

TXT2IMG = {"positive_prompt": "a lighthouse at dusk", "seed": -1, "resolution": {"w": 512, "h": 768}}


def last(user: FlaskClient) -> dict:
    answer = user.get("/api/run/last")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def save(user: FlaskClient, workflow: str, values: object) -> tuple[int, dict]:
    answer = user.put(f"/api/run/last/{workflow}", json={"values": values})
    return answer.status_code, answer.get_json()


def test_a_first_visit_has_nothing_then_the_newest_workflow_and_its_values_come_back(client: FlaskClient) -> None:
    assert last(client) == {"workflow_id": None, "values": None, "updated_at": None, "drafts": {}}

    assert save(client, "sd15-txt2img", TXT2IMG)[0] == 200
    assert save(client, "image-resize", {"width": 640})[0] == 200
    answer = last(client)
    assert answer["workflow_id"] == "image-resize"
    assert answer["values"] == {"width": 640}
    # Every workflow keeps its own draft: switching back finds the prompt where it was left.
    assert {key: draft["values"] for key, draft in answer["drafts"].items()} == {
        "image-resize": {"width": 640}, "sd15-txt2img": TXT2IMG}

    changed = {**TXT2IMG, "positive_prompt": "a harbour at night"}
    assert save(client, "sd15-txt2img", changed)[0] == 200
    answer = last(client)
    assert answer["workflow_id"] == "sd15-txt2img"
    assert answer["values"] == changed


def test_another_user_never_sees_or_changes_someone_elses_values(app: Flask, client: FlaskClient) -> None:
    assert save(client, "sd15-txt2img", TXT2IMG)[0] == 200
    bob = signed_in_user(app, client, "bob")

    assert last(bob)["drafts"] == {}
    assert save(bob, "sd15-txt2img", {"positive_prompt": "bob's own"})[0] == 200
    assert last(bob)["values"] == {"positive_prompt": "bob's own"}
    assert last(client)["values"] == TXT2IMG  # the admin's draft is untouched by bob's save


def test_signed_out_callers_get_nothing(anon: FlaskClient, client: FlaskClient) -> None:
    assert save(client, "sd15-txt2img", TXT2IMG)[0] == 200
    assert anon.get("/api/run/last").status_code == 401
    assert anon.put("/api/run/last/sd15-txt2img", json={"values": {}}).status_code in (401, 403)


def test_hostile_drafts_are_refused_with_a_reason_and_lose_nothing(client: FlaskClient) -> None:
    assert save(client, "sd15-txt2img", TXT2IMG)[0] == 200
    cases = [
        ("no-such-workflow", {"positive_prompt": "x"}, 404, None),
        ("sd15-txt2img", {"positive_prompt": "x", "secret_field": 1}, 400, "secret_field"),
        ("sd15-txt2img", ["not", "an", "object"], 400, None),
        ("sd15-txt2img", {"positive_prompt": "x" * (70 * 1024)}, 413, "KiB"),
        ("sd15-txt2img", {"positive_prompt": _nested(200)}, 400, None),
    ]
    for workflow, values, status, said in cases:
        code, body = save(client, workflow, values)
        assert code == status, (workflow, values, body)
        assert set(body["error"]) >= {"code", "message"}
        if said:
            assert said in body["error"]["message"]
    for body in ({}, {"values": {}, "owner": 2}, {"values": "text"}):
        answer = client.put("/api/run/last/sd15-txt2img", json=body)
        assert answer.status_code == 400, body
    answer = client.put("/api/run/last/sd15-txt2img", data=b"{not json", content_type="application/json")
    assert answer.status_code == 400
    assert last(client)["values"] == TXT2IMG


def test_a_hidden_workflow_is_not_where_run_opens(client: FlaskClient) -> None:
    assert save(client, "image-resize", {"width": 640})[0] == 200
    assert save(client, "sd15-txt2img", TXT2IMG)[0] == 200
    assert client.delete("/api/workflows/sd15-txt2img", json={}).status_code == 200

    answer = last(client)
    assert answer["workflow_id"] == "image-resize"
    assert "sd15-txt2img" not in answer["drafts"]


def test_only_the_newest_drafts_are_kept_per_person(app: Flask, client: FlaskClient) -> None:
    me = client.get("/api/auth/me").get_json()["user"]["id"]
    drafts: RunDrafts = app.extensions["runpage"]
    names = [f"wf-{n:03d}" for n in range(MAX_DRAFTS_PER_USER + 5)]
    for name in names:
        drafts.save(user_id=me, workflow_id=name, values={"n": name}, inputs={"n"})

    kept = drafts.last(user_id=me, known=set(names))
    assert kept["workflow_id"] == names[-1]
    assert set(kept["drafts"]) == set(names[-MAX_DRAFTS_PER_USER:])
    assert kept["drafts"][names[-1]]["values"] == {"n": names[-1]}


def _picker_workflow(services: Services, tmp_path: Path) -> str:
    """sd15-txt2img with its checkpoint as a plain select carrying a ``picker`` key and options that
    name a file ComfyUI does not have (as a form detected at import lists what was there then)."""
    source = Path(__file__).resolve().parents[1] / "workflows" / "sd15-txt2img"
    target = services.data_dir.workflows / "picker-flow"
    shutil.copytree(source, target)
    manifest = yaml.safe_load((target / "manifest.yaml").read_text())
    manifest["id"], manifest["name"] = "picker-flow", "Picker flow"
    for spec in manifest["inputs"]:
        if spec["id"] == "checkpoint":
            spec.update(type="select", picker="checkpoints", default="gone.safetensors",
                        options=[{"label": "gone", "value": "gone.safetensors"}])
    (target / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    services.library.refresh(force=True)
    return "picker-flow"


def test_any_input_with_a_picker_offers_what_comfyui_has_now(client: FlaskClient, services: Services,
                                                            tmp_path: Path) -> None:
    workflow = _picker_workflow(services, tmp_path)
    answer = client.get(f"/api/workflows/{workflow}").get_json()
    assert answer["choices"]["checkpoint"] == ["random_sd15.safetensors"]
    # The stale default is swappable, so the workflow is still runnable with an installed file.
    assert answer["readiness"]["ready"] is True, answer["readiness"]

    refused = client.post(f"/api/workflows/{workflow}/run", json={"params": {
        "positive_prompt": "x", "checkpoint": "gone.safetensors"}})
    assert refused.status_code == 400
    assert "not installed" in refused.get_json()["error"]["details"]["fields"]["checkpoint"]
    ran = client.post(f"/api/workflows/{workflow}/run", json={"params": {
        "positive_prompt": "x", "checkpoint": "random_sd15.safetensors"}})
    assert ran.status_code == 202, ran.get_json()


def test_a_missing_required_value_is_named_in_words(client: FlaskClient) -> None:
    refused = client.post("/api/workflows/sd15-txt2img/run", json={"params": {
        "checkpoint": "random_sd15.safetensors"}})
    assert refused.status_code == 400
    assert "Prompt is required" in refused.get_json()["error"]["message"]

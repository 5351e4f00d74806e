"""System-prompt presets (bundled and each person's own, private) and the LLM's settings on the
Settings page, applied without a restart. No model needs to run for these."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from studio.services import Services
from tests.conftest import signed_in_user


def test_presets_are_bundled_plus_each_persons_own_and_another_persons_answer_404(
    app: Flask, client: FlaskClient
) -> None:
    listed = client.get("/api/llm/presets").get_json()["items"]
    bundled = [p for p in listed if p["bundled"]]
    assert {p["use"] for p in bundled} == {"chat", "improve", "variations", "describe"}
    assert all(p["system_prompt"].strip() for p in bundled)

    made = client.post("/api/llm/presets", json={"name": "  Moody   noir ", "system_prompt": "Write noir prompts.",
                                                 "use": "improve"})
    assert made.status_code == 201, made.get_json()
    mine = made.get_json()
    assert (mine["name"], mine["use"], mine["bundled"]) == ("Moody noir", "improve", False)
    assert client.get("/api/llm/presets").get_json()["items"][-1]["id"] == mine["id"]

    alice = signed_in_user(app, client, "alice")
    assert all(p["bundled"] for p in alice.get("/api/llm/presets").get_json()["items"])  # not hers to see
    assert alice.patch(f"/api/llm/presets/{mine['id']}", json={"name": "mine now"}).status_code == 404
    assert alice.delete(f"/api/llm/presets/{mine['id']}").status_code == 404
    theirs = alice.post("/api/llm/presets", json={"name": "Alice's", "system_prompt": "Be brief."}).get_json()
    assert client.delete(f"/api/llm/presets/{theirs['id']}").status_code == 404  # an admin's too: a preset is private

    changed = client.patch(f"/api/llm/presets/{mine['id']}", json={"system_prompt": "Write film-noir prompts."})
    assert changed.get_json()["system_prompt"] == "Write film-noir prompts."
    assert changed.get_json()["name"] == "Moody noir"
    refused = client.patch(f"/api/llm/presets/{bundled[0]['id']}", json={"name": "x"})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "preset_bundled"
    for wrong in ({"name": "", "system_prompt": "x"}, {"name": "x" * 101, "system_prompt": "x"},
                  {"name": "x", "system_prompt": "x", "use": "everything"}, {"name": "x", "system_prompt": 5},
                  {"name": "x", "system_prompt": "x" * 8001}, {"name": "x", "system_prompt": "x", "owner_id": 1}):
        assert client.post("/api/llm/presets", json=wrong).status_code == 400, wrong
    assert client.delete(f"/api/llm/presets/{mine['id']}").status_code == 204
    assert client.delete(f"/api/llm/presets/{mine['id']}").status_code == 404
    assert [p for p in client.get("/api/llm/presets").get_json()["items"] if not p["bundled"]] == []


def test_the_llm_settings_are_checked_and_applied_without_a_restart(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    shown = client.get("/api/settings").get_json()["settings"]
    assert shown["llm_gpu_policy"] == {"value": "take_turns", "source": "configuration", "secret": False}
    assert shown["llm_job_wait_s"]["value"] == 120

    for wrong in ({"llm_gpu_policy": "everyone"}, {"llm_server_binary": "bin/llama-server"},
                  {"llm_server_binary": "/opt/llama\nserver"}, {"llm_port": 70000}, {"llm_port": "8080"},
                  {"llm_load_timeout_s": 1}, {"llm_job_wait_s": 0}, {"llm_job_wait_s": True}):
        answer = client.put("/api/settings", json=wrong)
        assert answer.status_code == 400, wrong
        assert set(answer.get_json()["error"]["details"]["fields"]) == set(wrong)
    alice = signed_in_user(app, client, "alice")
    assert alice.put("/api/settings", json={"llm_gpu_policy": "share"}).status_code == 403

    saved = client.put("/api/settings", json={"llm_gpu_policy": "share", "llm_job_wait_s": 30,
                                              "llm_load_timeout_s": 45, "llm_server_binary": "/nowhere/llama-server"})
    assert saved.status_code == 200, saved.get_json()
    assert services.arbiter.policy().value == "share"
    assert services.llm.load_timeout_s == 45
    assert client.get("/api/llm/arbiter").get_json()["job_wait_s"] == 30
    missing = client.post("/api/llm/server/start", json={"model": "any.gguf"})
    assert missing.status_code == 503
    assert missing.get_json()["error"]["code"] == "llm_binary_missing"  # the page's binary is the one used
    assert client.put("/api/settings", json={"llm_server_binary": None}).status_code == 200
    assert client.get("/api/settings").get_json()["settings"]["llm_server_binary"]["source"] == "configuration"

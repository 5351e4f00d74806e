"""Whose is this? Every state-changing route, called by a second, ordinary user with the ids of
someone else's things, changes nothing that belongs to anyone else.

The routes come from Flask's own URL map, so a route added later is covered (or this test fails
and names it). Before and after each call the test takes a snapshot of everything the admin owns
or shares — jobs, downloads, tokens, users, settings, the queue, workflows, catalogs, model files,
uploaded inputs, the admin's session — and the two must be equal.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from studio.services import Services
from tests.conftest import signed_in_user
from tests.jobs_helpers import run, upload_image

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Routes a user may call for themselves only: they run with the user's own identity and cannot
# name anyone else's things. They are still called below, and the snapshot must still hold.
SELF_ONLY = {"auth.logout", "auth.change_password", "auth.create_token", "auth.login", "auth.setup",
             "jobs.upload_input", "workflows.run", "downloads.start_download", "downloads.start_batch",
             # A preset is run, copied and imported as the caller's own: nothing of its owner's changes.
             "presets.run_preset", "presets.duplicate_preset", "presets.create_preset", "presets.import_presets"}


def _snapshot(admin: FlaskClient, services: Services, admin_id: int) -> dict[str, Any]:
    def get(path: str) -> Any:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.get_json())
        return answer.get_json()

    jobs = [(j["id"], j["status"], j.get("position")) for j in get("/api/jobs?limit=200")["items"]
            if j.get("user_id", admin_id) == admin_id]
    downloads = [(d["id"], d["status"]) for d in get("/api/downloads")["items"] if d.get("requested_by") == admin_id]
    models_root = services.models_root.root
    return {
        "me": get("/api/auth/me")["user"],
        "jobs": sorted(jobs),
        "downloads": sorted(downloads),
        "tokens": [(t["id"], t["revoked"]) for t in get("/api/auth/tokens")["items"]],
        "users": [(u["id"], u["role"], u["disabled"]) for u in get("/api/users")["items"] if u["id"] == admin_id],
        "settings": {k: v["value"] for k, v in get("/api/settings")["settings"].items()},
        "queue": get("/api/queue").get("paused"),
        "workflows": sorted(w["id"] for w in get("/api/workflows")["items"]),
        "catalogs": {kind: sorted(e["file"] for e in data["entries"])
                     for kind, data in get("/api/models")["catalogs"].items()},
        "model_files": sorted(str(p.relative_to(models_root)) for p in models_root.rglob("*") if p.is_file()),
        "inputs": sorted(i["name"] for i in get("/api/inputs")["items"]),
        "presets": {path.name: text for path in sorted(services.data_dir.presets.glob("*.json"))
                    if f'"owner_id": {admin_id},' in (text := path.read_text())},
    }


# Path parameters that name one thing of the admin's: a route taking one must refuse the user.
OTHERS_IDS = {"job_id", "download_id", "token_id", "user_id", "output_id", "preset_id"}
PLACEHOLDER = re.compile(r"<(?:[a-zA-Z_]+(?:\([^)]*\))?:)?([a-zA-Z_]+)>")


def test_a_plain_user_changes_nothing_of_anyone_else_through_any_route(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    admin_id = client.get("/api/auth/me").get_json()["user"]["id"]
    # The admin's things: a waiting job, a cancelled one, a download, a token, an input, a model file.
    picture = upload_image(client)
    waiting = run(client, "image-resize", {"image": picture})[0]["id"]
    cancelled = run(client, "image-resize", {"image": picture})[0]["id"]
    assert client.post(f"/api/jobs/{cancelled}/cancel", json={}).status_code == 200
    download = client.post("/api/downloads", json={"url": "http://127.0.0.1:9/admin.safetensors",
                                                   "dest": "checkpoints", "file": "admin.safetensors"})
    assert download.status_code in (200, 201), download.get_json()
    # Paused, so that nothing about it moves on its own while the snapshots are compared.
    assert client.post(f"/api/downloads/{download.get_json()['id']}/pause", json={}).status_code == 200
    token = client.post("/api/auth/tokens", json={"name": "admin's"}).get_json()["id"]
    model = services.models_root.root / "checkpoints" / "keep.safetensors"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"weights")
    catalog_file = "v1-5-pruned-emaonly.safetensors"
    shared = client.post("/api/presets", json={"name": "Admin's shared", "workflow_id": "image-resize"}).get_json()
    secret = client.post("/api/presets", json={"name": "Admin's own", "workflow_id": "image-resize",
                                               "private": True}).get_json()

    user = signed_in_user(app, client, "mallory")
    values = {"job_id": [waiting, cancelled], "download_id": [download.get_json()["id"]], "token_id": [token],
              "user_id": [admin_id], "workflow_id": ["image-resize", "sd15-txt2img"], "kind": ["models"],
              "file_name": [catalog_file], "name": [picture.removeprefix("studio/")],
              "output_id": [1], "preset_id": [shared["id"], secret["id"]]}
    bodies: dict[str, Any] = {
        "users.update_user": {"role": "user", "disabled": True},
        "users.reset_password": {"password": "a brand new password"},
        "users.create_user": {"username": "sneaky", "password": "a long password", "role": "admin"},
        "jobs.move_job": {"before": None},
        "preferences.change": {"comfyui_url": "http://127.0.0.1:9", "download_concurrency": 1},
        "models.import_catalog_json": {"catalog": {"categories": []}, "mode": "replace"},
        "workflows.save_mapping": {"inputs": []},
        "system.free_comfy_memory": {},
    }
    queries = {"models.delete_file": {"path": "checkpoints/keep.safetensors"}}

    before = _snapshot(client, services, admin_id)
    called: set[str] = set()
    refused: dict[str, int] = {}
    # Signing out or changing the password ends the user's session: those go last.
    last = ("auth.change_password", "auth.logout")
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint in last, last.index(r.endpoint)
                                                               if r.endpoint in last else 0, r.rule)):
        for method in sorted((rule.methods or set()) & STATE_CHANGING):
            if rule.endpoint not in last:  # a call refused only for being signed out would prove nothing
                assert user.get("/api/auth/me").status_code == 200, rule.rule
            names = PLACEHOLDER.findall(rule.rule)
            choices = [values[name] if name in values else _converter_values(rule._converters[name])  # noqa: SLF001
                       for name in names]
            for combination in _product(choices):
                path = rule.rule
                for value in combination:
                    path = PLACEHOLDER.sub(str(value), path, count=1)
                answer = user.open(path, method=method, json=bodies.get(rule.endpoint, {}),
                                   query_string=queries.get(rule.endpoint))
                assert answer.status_code < 500, (method, path, answer.get_json())
                called.add(rule.endpoint)
                if rule.endpoint not in SELF_ONLY and set(names) & OTHERS_IDS:
                    refused[f"{method} {path}"] = answer.status_code
                after = _snapshot(client, services, admin_id)
                assert after == before, (method, path, answer.status_code, answer.get_json())
    # Every route naming someone else's thing by its id refused the plain user outright.
    assert {call: code for call, code in refused.items() if code not in (401, 403, 404, 405, 409)} == {}
    assert "system.free_comfy_memory" in called
    assert "jobs.pause" in called
    assert "downloads.control" in called


def _converter_values(converter: Any) -> list[Any]:
    """An ``any(...)`` converter's words; for an id this test has no thing of the admin's for, a
    number no row has (the route must still answer without a 5xx and change nothing)."""
    words = getattr(converter, "items", None)
    return sorted(words) if words is not None else [987654]


def _product(choices: list[list[Any]]) -> list[tuple[Any, ...]]:
    combos: list[tuple[Any, ...]] = [()]
    for options in choices:
        combos = [(*combo, option) for combo in combos for option in options]
    return combos

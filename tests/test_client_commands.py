"""The ``studio`` client's catalogue commands against a live Studio: workflows, downloads and presets
(running, following and exit codes are in test_client_cli.py)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from studio.runtime import Runtime
from studio.services import Services
from tests.auth_helpers import make_token
from tests.conftest import signed_in_user
from tests.downloads_helpers import entry, write_catalog
from tests.jobs_helpers import SAMPLER_PARAMS
from tests.servers.files import FileServer
from tests.test_client_cli import studio, url_of


def test_workflows_lists_and_shows_parameters(client: FlaskClient, runtime: Runtime, tmp_path: Path) -> None:
    token = make_token(client, "cli")["token"]
    listed = studio("workflows", url=url_of(runtime), token=token, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("image-resize ") for line in listed.stdout.splitlines())
    shown = studio("workflows", "show", "image-resize", url=url_of(runtime), token=token, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "-p width=" in shown.stdout


def test_download_queues_a_url_for_an_admin_and_is_refused_for_a_plain_user(
    app: Flask, client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    admin = make_token(client, "cli")["token"]
    source = "http://127.0.0.1:9/models/tiny.safetensors"
    queued = studio("download", source, "--folder", "checkpoints", "--json", url=url_of(runtime), token=admin,
                    cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    item = json.loads(queued.stdout)
    assert item["name"] == "tiny.safetensors" or item["path"].startswith("checkpoints")
    assert [d["id"] for d in client.get("/api/downloads").get_json()["items"]] == [item["id"]]

    carol = signed_in_user(app, client, "carol")
    plain = make_token(carol, "cli")["token"]
    refused = studio("download", source.replace("tiny", "other"), "--folder", "loras", url=url_of(runtime),
                     token=plain, cwd=tmp_path)
    assert refused.returncode == 3, refused.stderr
    assert len(client.get("/api/downloads").get_json()["items"]) == 1


def test_download_wait_follows_it_to_the_file_on_disk(
    app: Flask, client: FlaskClient, runtime: Runtime, services: Services, tmp_path: Path
) -> None:
    model, listed_model = os.urandom(200_000), os.urandom(100_000)
    files = FileServer().start()
    files.files["/tiny.safetensors"] = model
    files.files["/listed.safetensors"] = listed_model
    write_catalog(services, "loras", [entry(files, "listed.safetensors", size_gb=0.0001)])
    henry = signed_in_user(app, client, "henry")
    try:
        token = make_token(client, "cli")["token"]
        done = studio("download", files.url("/tiny.safetensors"), "--folder", "checkpoints", "--wait", "--json",
                      url=url_of(runtime), token=token, cwd=tmp_path)
        # a plain user may install what a catalog lists, by its file name
        from_catalog = studio("download", "listed.safetensors", "--wait", url=url_of(runtime),
                              token=make_token(henry, "cli")["token"], cwd=tmp_path)
    finally:
        files.stop()
    assert done.returncode == 0, done.stderr
    item = json.loads(done.stdout)
    assert item["status"] == "completed"
    assert (services.models_root.root / "checkpoints" / "tiny.safetensors").read_bytes() == model
    assert from_catalog.returncode == 0, from_catalog.stderr
    assert " completed " in from_catalog.stdout
    assert (services.models_root.root / "loras" / "listed.safetensors").read_bytes() == listed_model


# -- presets --------------------------------------------------------------------------------------


def make_preset(client: FlaskClient) -> dict[str, Any]:
    body = {"id": "cli-cat", "name": "Cat", "workflow_id": "sd15-txt2img", "overridable": ["steps"],
            "params": {**SAMPLER_PARAMS, "positive_prompt": "a cat, [[Style:anime|photo]]"}}
    answer = client.post("/api/presets", json=body)
    assert answer.status_code == 201, answer.get_json()
    return dict(answer.get_json())


def test_a_preset_runs_with_its_answer_and_an_override_and_saves_the_image(
    app: Flask, client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    make_preset(client)
    dave = signed_in_user(app, client, "dave")
    token = make_token(dave, "cli", scope="run")["token"]
    url = url_of(runtime)

    listed = studio("presets", url=url, token=token, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "cli-cat" in listed.stdout
    assert "--answer 0=…  Style: anime | photo" in listed.stdout

    wrong = studio("run", "cli-cat", "--answer", "0=cubism", url=url, token=token, cwd=tmp_path)
    assert wrong.returncode == 2, wrong.stderr
    assert "anime" in wrong.stderr

    done = studio("run", "cli-cat", "--answer", "0=anime", "-p", "steps=2", "--seed", "7", "--wait", "--json",
                  url=url, token=token, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "running" in done.stderr  # followed live (the events stream), one plain line per change
    answer = json.loads(done.stdout)
    [job] = answer["jobs"]
    assert job["status"] == "completed"
    assert job["params"]["positive_prompt"] == "a cat, anime"
    assert job["params"]["steps"] == 2
    assert job["params"]["seed"] == 7
    [saved] = answer["files"]
    with Image.open(io.BytesIO((tmp_path / "work" / saved["path"]).read_bytes())) as image:
        assert image.size == (64, 64)
    mine = dave.get("/api/jobs").get_json()["items"]
    assert [j["id"] for j in mine] == [job["id"]]  # the refused run made nothing

    shown = studio("presets", "show", "cli-cat", url=url, token=token, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "-p steps=…" in shown.stdout


def test_a_private_preset_of_someone_else_is_not_found(
    app: Flask, client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    answer = client.post("/api/presets", json={"id": "secret", "name": "Secret", "workflow_id": "sd15-txt2img",
                                               "private": True, "params": SAMPLER_PARAMS})
    assert answer.status_code == 201, answer.get_json()
    erin = signed_in_user(app, client, "erin")
    token = make_token(erin, "cli", scope="run")["token"]
    hidden = studio("run", "secret", url=url_of(runtime), token=token, cwd=tmp_path)
    assert hidden.returncode == 4, hidden.stderr
    assert "secret" not in studio("presets", url=url_of(runtime), token=token, cwd=tmp_path).stdout
    assert client.get("/api/jobs").get_json()["items"] == []


pytestmark = pytest.mark.timeout(60)

"""An import never shadows a workflow unasked: importing under an id that exists is refused (409)
unless the person asks to replace it, and a replaced import stays in its own folder.

From a second outside review, tested as a class on the real stack."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from studio.services import Services


def _upload(client: FlaskClient, **form: str) -> Any:
    from tests.ui_workflows import SAMPLER_API

    data = json.dumps(SAMPLER_API).encode()
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), "w.json"), **form},
                       content_type="multipart/form-data")


def test_importing_under_an_existing_id_is_409_unless_replace(client: FlaskClient, services: Services) -> None:
    before = client.get("/api/workflows/sd15-txt2img").get_json()
    for replace in ({}, {"replace": "0"}, {"replace": "no"}):
        refused = _upload(client, id="sd15-txt2img", **replace)
        assert refused.status_code == 409, refused.get_json()
        assert refused.get_json()["error"]["code"] == "workflow_exists"
        assert refused.get_json()["error"]["message"] == (
            "There is already a bundled workflow with the id 'sd15-txt2img'. Import with replace to update it, "
            "or choose another id.")
    after = client.get("/api/workflows/sd15-txt2img").get_json()
    assert after["bundled"] is True
    assert after["manifest"] == before["manifest"]
    assert not (services.data_dir.workflows / "sd15-txt2img").exists()

    assert _upload(client, id="mine", name="Mine").status_code == 201
    again = _upload(client, id="mine", name="Mine again")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "workflow_exists"
    assert again.get_json()["error"]["message"].startswith("There is already a workflow with the id 'mine'.")
    assert client.get("/api/workflows/mine").get_json()["name"] == "Mine"
    replaced = _upload(client, id="mine", name="Mine again", replace="1")
    assert replaced.status_code == 201
    assert replaced.get_json()["name"] == "Mine again"
    kept = _upload(client, id="mine", replace="1")  # no name given: an update keeps the one it has
    assert kept.status_code == 201
    assert kept.get_json()["name"] == "Mine again"
    assert client.get("/api/workflows/mine").get_json()["manifest"]["description"] == "Imported into Studio."

    shadow = _upload(client, id="sd15-txt2img", name="My own", replace="1")  # asked for: the user's copy wins
    assert shadow.status_code == 201
    assert shadow.get_json()["bundled"] is False


def test_an_imported_workflow_in_a_folder_of_another_name_is_replaced_where_it_is(
    client: FlaskClient, services: Services
) -> None:
    assert _upload(client, id="first", name="First").status_code == 201
    moved = services.data_dir.workflows / "renamed-folder"
    (services.data_dir.workflows / "first").rename(moved)
    assert client.get("/api/workflows/first").status_code == 200
    assert _upload(client, id="first", name="Again").status_code == 409
    assert _upload(client, id="first", name="Again", replace="1").status_code == 201
    assert not (services.data_dir.workflows / "first").exists()
    assert client.get("/api/workflows/first").get_json()["name"] == "Again"


def test_a_workflow_folder_that_is_a_link_or_a_file_is_never_written_through(
    client: FlaskClient, services: Services, tmp_path: Path
) -> None:
    workflows = services.data_dir.workflows
    workflows.mkdir(parents=True, exist_ok=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (workflows / "linked").symlink_to(elsewhere, target_is_directory=True)
    (workflows / "plain-file").write_text("not a folder")
    for workflow_id in ("linked", "plain-file"):
        refused = _upload(client, id=workflow_id, replace="1")
        assert refused.status_code == 409, refused.get_json()
        error = refused.get_json()["error"]
        assert (error["code"], error["message"]) == (
            "workflow_folder_unsafe",
            f"workflows/{workflow_id} is not a plain folder (a link or a file); Studio does not write through it.")
    assert list(elsewhere.iterdir()) == []
    assert (workflows / "plain-file").read_text() == "not a folder"

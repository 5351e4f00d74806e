"""The importer's behaviour that its mutants showed nothing else pinned down: the name a workflow
gets when its file says little, and what is kept beside a workflow that waits for node packs."""

import copy
import io
import json

import pytest
from flask.testing import FlaskClient

from studio.services import Services
from tests.servers.comfyui import ComfyUITestServer
from tests.test_workflow_pending import FANCY_INFO, fancy_ui
from tests.ui_workflows import SAMPLER_API


def upload(client: FlaskClient, data: bytes, filename: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), filename), **form},
                       content_type="multipart/form-data")


def saving(title: str = "Save Image", prefix: str = "ComfyUI") -> bytes:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["9"]["_meta"]["title"] = title
    prompt["9"]["inputs"]["filename_prefix"] = prefix
    return json.dumps(prompt).encode()


@pytest.mark.parametrize(("data", "filename", "name"), [
    (saving(), "Knight poster.json", "Knight poster"),  # a telling file name comes first
    (saving(title="Poster of a knight"), "workflow.json", "Poster of a knight"),  # then a title given to the save
    (saving(title="Save Image", prefix="posters/knight"), "workflow (2).json", "knight"),  # then its prefix
    (saving(title="Poster", prefix="knight"), "ComfyUI_00012_.json", "Poster"),
    (saving(), "blob", "blob"),  # nothing telling: the file name after all
    (saving(), "", "Imported workflow"),
])
def test_a_workflow_without_a_title_is_named_after_its_file_or_its_output(
    client: FlaskClient, data: bytes, filename: str, name: str
) -> None:
    answer = upload(client, data, filename)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["name"] == name


def test_a_workflow_converted_meanwhile_is_converted_once(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    answer = upload(client, json.dumps(fancy_ui()).encode(), "fancy.json")
    waiting = services.library.get(answer.get_json()["id"])
    comfy_server.install_node("FancyUpscaler", FANCY_INFO)
    info = services.comfy.object_info(refresh=True)
    assert services.importer.complete(waiting, {}) is waiting  # ComfyUI still lacks the node: as it was
    first = services.importer.complete(waiting, info)
    assert (first.manifest.version, first.manifest.unconverted_nodes) == (2, None)
    # A second request that read the library before the first converted it gets the converted one.
    second = services.importer.complete(waiting, info)
    assert second.manifest.version == 2
    assert second.prompt["20"]["inputs"]["scale"] == 2
    assert client.get(f"/api/workflows/{waiting.id}").get_json()["manifest"]["version"] == 2


def test_a_workflow_deleted_meanwhile_is_not_brought_back(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    answer = upload(client, json.dumps(fancy_ui()).encode(), "fancy.json")
    waiting = services.library.get(answer.get_json()["id"])
    assert client.delete(f"/api/workflows/{waiting.id}", json={}).status_code == 200
    comfy_server.install_node("FancyUpscaler", FANCY_INFO)
    assert services.importer.complete(waiting, services.comfy.object_info(refresh=True)) is waiting
    assert not waiting.folder.exists()
    assert client.get(f"/api/workflows/{waiting.id}").status_code == 404

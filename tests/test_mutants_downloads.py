"""The download queue and the transfer as a person (or the models folder) sees them, against the
file server in tests/servers/files.py: what is refused up front and what it says, which host sees
which credential, what a resumed or restarted transfer writes, and what the list shows.

Written against the survivors of ``./dev.sh mutate downloads/manager`` and ``downloads/transfer``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.servers.files import FileServer

MODEL = os.urandom(2 * 1024 * 1024 + 77)
SHA = hashlib.sha256(MODEL).hexdigest()
FINISHED = {"completed", "failed", "cancelled"}


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    server.files["/model.safetensors"] = MODEL
    yield server
    server.stop()


def told(answer: TestResponse, status: int, code: str, *words: str) -> dict[str, Any]:
    """The refusal has this status and code, and says it in a sentence (which may start with a file
    name) naming ``words``."""
    assert answer.status_code == status, (answer.status_code, answer.get_json())
    error = answer.get_json()["error"]
    assert error["code"] == code, error
    message = str(error["message"])
    assert message.endswith("."), message
    for word in words:
        assert word in message, (word, message)
    return dict(error)


def items(client: FlaskClient) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in client.get("/api/downloads").get_json()["items"]}


def wait_download(client: FlaskClient, download_id: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        item = items(client)[download_id]
        return item if item["status"] in statuses else None

    found = wait_until(reached, timeout=timeout, interval=0.02)
    assert isinstance(found, dict)
    return found


# -- the pickle gate -------------------------------------------------------------------------------


def test_a_pickle_needs_an_admins_confirmation_whatever_the_case_of_its_extension(
    app: Flask, client: FlaskClient, files: FileServer
) -> None:
    url = files.url("/model.safetensors")
    for name in ("old.ckpt", "OLD.CKPT", "model.Pt", "weights.PTH", "w.Bin", "data.PKL", "m.pt2", "M.PT2"):
        answer = client.post("/api/downloads", json={"url": url, "dest": "checkpoints", "file": name})
        told(answer, 409, "pickle_needs_confirmation", name, "pickle", "admin")
    for name in ("ckpt.safetensors", "model.ckpt.safetensors", "x.GGUF"):
        answer = client.post("/api/downloads", json={"url": url, "dest": "checkpoints", "file": name})
        assert answer.status_code == 201, (name, answer.get_json())
    confirmed = client.post("/api/downloads", json={"url": url, "dest": "checkpoints", "file": "Old.Ckpt",
                                                    "allow_pickle": True})
    assert confirmed.status_code == 201, confirmed.get_json()


def test_a_plain_users_pickle_confirmation_does_not_count(
    app: Flask, client: FlaskClient, services: Services, files: FileServer
) -> None:
    import json

    services.data_dir.catalogs.mkdir(parents=True, exist_ok=True)
    (services.data_dir.catalogs / "loras.json").write_text(json.dumps({"version": 1, "categories": [
        {"id": "loras", "name": "loras", "models": [{"name": "Old", "file": "OLD.PT", "dest": "loras",
                                                     "source": "url", "size_gb": 0.002,
                                                     "url": files.url("/model.safetensors")}]}]}))
    amy = signed_in_user(app, client, "amy")
    refused = amy.post("/api/downloads", json={"catalog_file": "OLD.PT", "allow_pickle": True})
    told(refused, 409, "pickle_needs_confirmation", "OLD.PT")
    assert client.post("/api/downloads", json={"catalog_file": "OLD.PT", "allow_pickle": True}).status_code == 201

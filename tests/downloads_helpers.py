"""What the download tests share: the file server with one model on it, the download list as a person
sees it (and waiting on it), a catalog written into the data folder, and who asked for what.

Each test file keeps its own ``MODEL`` bytes: their sizes are part of what a file tests (where a
connection drops, how much space is missing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask.testing import FlaskClient

from studio.downloads.manager import DownloadManager
from studio.services import Services
from tests.conftest import wait_until
from tests.servers.files import FileServer

FINISHED = {"completed", "failed", "cancelled"}


def serving(model: bytes | None = None) -> Iterator[FileServer]:
    """The body of a ``files`` fixture: a file server, with ``model`` at ``/model.safetensors``."""
    server = FileServer().start()
    if model is not None:
        server.files["/model.safetensors"] = model
    yield server
    server.stop()


def managing(services: Services) -> Iterator[DownloadManager]:
    """The body of a ``manager`` fixture: a queue of one worker, no tokens and no space margin; nothing
    starts its scheduler, so a download waiting for its retry time runs when a test pumps the queue."""
    made = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1,
                           tokens=dict, margin=0)
    yield made
    made.stop()


def requests_for(files: FileServer, path: str) -> list[dict[str, Any]]:
    return [r for r in files.requests if r["path"] == path]


def start(client: FlaskClient, **body: object) -> dict[str, Any]:
    answer = client.post("/api/downloads", json=body)
    assert answer.status_code == 201, answer.get_json()
    return dict(answer.get_json())


def items(client: FlaskClient) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in client.get("/api/downloads").get_json()["items"]}


def listed(client: FlaskClient, download_id: str) -> dict[str, Any]:
    """One download as the list shows it."""
    return items(client)[download_id]


def wait_download(client: FlaskClient, download_id: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        item = items(client)[download_id]
        return item if item["status"] in statuses else None

    found = wait_until(reached, timeout=timeout, interval=0.02)
    assert isinstance(found, dict)
    return found


def write_catalog(services: Services, kind: str, entries: list[dict[str, Any]]) -> None:
    services.data_dir.catalogs.mkdir(parents=True, exist_ok=True)
    (services.data_dir.catalogs / f"{kind}.json").write_text(json.dumps(
        {"version": 1, "categories": [{"id": kind, "name": kind, "models": entries}]}))


def entry(files: FileServer, file_name: str, **extra: Any) -> dict[str, Any]:
    """A catalog entry for a file of about 3 MB on ``files``."""
    return {"name": file_name.split(".")[0], "file": file_name, "dest": "loras", "source": "url", "size_gb": 0.003,
            "url": files.url(f"/{file_name}"), **extra}


def user_id(services: Services, username: str) -> int:
    """The id of the user who already exists under ``username``."""
    return int(next(u["id"] for u in services.users.list_users() if u["username"] == username))

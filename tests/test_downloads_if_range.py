"""If-Range on resume: a file changed on the server between attempts starts over instead of being
spliced onto the old part, and the validator survives a restart to be sent when resuming.

From an outside review of downloads and the models folder, tested as a class."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from studio.config import Settings
from studio.downloads.manager import DownloadManager
from studio.downloads.models import DownloadStatus
from studio.services import Services, build_services
from tests.conftest import wait_until
from tests.downloads_helpers import serving
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


# -- If-Range on resume ----------------------------------------------------------------------

NEW = os.urandom(len(MODEL))


@pytest.mark.parametrize(("etag", "last_modified", "ignore_if_range", "new", "if_range"), [
    ("strong", True, False, NEW, "etag"),
    (None, True, False, NEW, "date"),
    ("weak", True, False, NEW, "date"),  # a weak ETag may not be used in If-Range: the date is
    ("strong", True, True, NEW, "etag"),  # the server ignores If-Range, but its 206 names another ETag
    (None, False, False, NEW + b"longer", None),  # no validator at all: the total size gives it away
    ("strong", True, False, MODEL, "etag"),  # unchanged: resumed, not restarted
], ids=["strong-etag", "last-modified", "weak-etag", "server-ignores-if-range", "no-validator", "unchanged"])
def test_a_file_changed_on_the_server_between_attempts_starts_over(
    services: Services, files: FileServer, etag: str | None, last_modified: bool, ignore_if_range: bool,
    new: bytes, if_range: str | None,
) -> None:
    files.etag, files.last_modified, files.ignore_if_range = etag, last_modified, ignore_if_range
    files.files["/m.safetensors"] = MODEL
    files.drop_after = 1024 * 1024
    files.after_drop = lambda: files.files.__setitem__("/m.safetensors", new)
    manager = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1,
                              tokens=dict)
    manager.start()
    try:
        item = manager.enqueue(url=files.url("/m.safetensors"), dest="vae", file_name="m.safetensors")  # no hash
        wait_until(lambda: manager.get(item["id"]).status in (DownloadStatus.COMPLETED, DownloadStatus.FAILED),
                   timeout=20)
        done = manager.get(item["id"])
    finally:
        manager.stop()
    assert done.status is DownloadStatus.COMPLETED, done.error
    assert (services.models_root.root / "vae" / "m.safetensors").read_bytes() == new
    assert done.sha256 == hashlib.sha256(new).hexdigest()
    tries = [r for r in files.requests if r["path"] == "/m.safetensors"]
    assert tries[0]["range"] is None
    resumed = tries[1]
    assert resumed["range"] is not None
    first_etag, first_date = files.validators(MODEL)
    assert resumed["if_range"] == {"etag": first_etag, "date": first_date, None: None}[if_range]
    if new == MODEL:
        assert [r["status"] for r in tries] == [200, 206]
    elif not ignore_if_range and if_range:
        assert resumed["status"] == 200  # the server saw the change and sent the whole new file
    else:
        assert tries[-1]["range"] is None  # Studio saw the change and asked again from zero


def test_the_validator_survives_a_restart_and_is_sent_when_resuming(
    settings: Settings, services: Services, files: FileServer
) -> None:
    files.files["/m.safetensors"] = MODEL
    files.delays["/m.safetensors"] = 0.01
    first = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1, tokens=dict)
    first.start()
    item = first.enqueue(url=files.url("/m.safetensors"), dest="unet", file_name="m.safetensors")
    part = services.models_root.root / "unet" / "m.safetensors.part"
    wait_until(lambda: part.is_file() and part.stat().st_size > 256 * 1024)
    first.stop()  # as if the process died mid-download
    assert first.get(item["id"]).validator == files.validators(MODEL)[0]

    files.delays.clear()
    files.files["/m.safetensors"] = NEW  # replaced on the server while Studio was down
    reborn = build_services(settings, engine=services.engine)
    reborn.downloads.start()
    try:
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value in ("completed", "failed"), timeout=20)
        done = reborn.downloads.get(item["id"])
    finally:
        reborn.downloads.stop()
    assert done.status is DownloadStatus.COMPLETED, done.error
    assert (services.models_root.root / "unet" / "m.safetensors").read_bytes() == NEW
    assert done.sha256 == hashlib.sha256(NEW).hexdigest()
    resumed = [r for r in files.requests if r["path"] == "/m.safetensors"][-1]
    assert resumed["if_range"] == files.validators(MODEL)[0]
    assert resumed["status"] == 200

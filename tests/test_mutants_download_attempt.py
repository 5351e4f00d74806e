"""One attempt at a download as the Downloads list and the log show it: a row that can never become
a file fails with the reason, a planted link fails naming where and what to do, progress reaches
the row while the bytes arrive, and a connection that drops after moving the file forward is tried
again at once without counting against giving up.

Written against the survivors of ``./dev.sh mutate --sample downloads/attempt``."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from studio.downloads.manager import DownloadManager
from studio.downloads.models import Download, DownloadStatus
from studio.services import Services
from tests.conftest import wait_until
from tests.downloads_helpers import FINISHED, managing, requests_for, serving
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 11)
SHA = hashlib.sha256(MODEL).hexdigest()
CLOSED = "http://127.0.0.1:9/model.safetensors"  # nothing listens: every attempt fails to connect


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


@pytest.fixture
def manager(services: Services) -> Iterator[DownloadManager]:
    yield from managing(services)


def finished(manager: DownloadManager, download_id: str, statuses: set[str] = FINISHED) -> Download:
    found = wait_until(lambda: (row := manager.get(download_id)).status.value in statuses and row, timeout=20,
                       interval=0.02)
    assert isinstance(found, Download)
    return found


def announced(services: Services) -> list[dict[str, Any]]:
    """The ``downloads/finished`` events, as a person's Downloads page receives them."""
    events: list[dict[str, Any]] = []
    services.bus.subscribe(lambda e: events.append(e.payload) if e.type == "downloads/finished" else None)
    return events


def test_a_row_whose_path_can_never_be_a_file_fails_naming_the_path(manager: DownloadManager,
                                                                    services: Services, files: FileServer) -> None:
    events = announced(services)
    path = "loras/../escape.safetensors"  # written by an older Studio, or edited by hand
    with Session(services.engine) as session:
        session.add(Download(id="legacy", name="legacy", path=path, url=files.url("/model.safetensors")))
        session.commit()
    manager.pump()
    failed = finished(manager, "legacy")
    assert failed.status is DownloadStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith(f"This download cannot be written: The path {path!r}: '..' "), failed.error
    assert failed.error.endswith(".")
    assert requests_for(files, "/model.safetensors") == []  # nothing fetched
    assert not (services.models_root.root.parent / "escape.safetensors").exists()
    wait_until(lambda: events)
    assert events == [{"id": "legacy", "name": "legacy", "status": "failed", "error": failed.error}]


def test_a_link_planted_as_the_partial_file_fails_naming_it_and_what_to_do(
    manager: DownloadManager, services: Services, files: FileServer, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    folder = services.models_root.root / "loras"
    folder.mkdir(parents=True)
    (folder / "x.safetensors.part").symlink_to(victim)
    item = manager.enqueue(url=files.url("/model.safetensors"), dest="loras", file_name="x.safetensors")
    failed = finished(manager, item["id"])
    assert failed.status is DownloadStatus.FAILED
    assert re.fullmatch(
        r"Refused to write loras/x\.safetensors: [^()]+ \(at loras/x\.safetensors\.part\)\. Studio never follows "
        r"a symbolic link inside the models folder; remove it, then retry\.", failed.error or ""), failed.error
    assert victim.read_bytes() == b"precious"
    assert (folder / "x.safetensors.part").is_symlink()
    assert not (folder / "x.safetensors").exists()


def test_progress_reaches_the_row_while_the_bytes_arrive(manager: DownloadManager, files: FileServer) -> None:
    files.delay_per_chunk = 0.02  # 48 chunks of 64 KiB: about a second
    item = manager.enqueue(url=files.url("/model.safetensors"), dest="loras", file_name="p.safetensors")
    midway = wait_until(lambda: (row := manager.get(item["id"])).status is DownloadStatus.DOWNLOADING
                        and 0 < row.bytes_done < len(MODEL) and row, timeout=10, interval=0.02)
    assert isinstance(midway, Download)
    assert midway.total_bytes == len(MODEL)
    done = finished(manager, item["id"])
    assert (done.status, done.bytes_done, done.total_bytes, done.sha256) == (
        DownloadStatus.COMPLETED, len(MODEL), len(MODEL), SHA)


def test_a_drop_after_progress_is_retried_at_once_and_never_counts_towards_giving_up(
    manager: DownloadManager, services: Services, files: FileServer
) -> None:
    waits: list[dict[str, Any]] = []
    services.bus.subscribe(lambda e: waits.append(e.payload) if e.type == "downloads/update"
                           and e.payload["status"] == "queued" and e.payload["error"] else None)
    files.drop_after = 1024 * 1024 + 5
    item = manager.enqueue(url=files.url("/model.safetensors"), dest="loras", file_name="d.safetensors",
                           expected_sha256=SHA)
    wait_until(lambda: waits, timeout=10)
    # No scheduler runs here: pump by hand until the retry time (under a second) has come.
    def pumped() -> Download | None:
        manager.pump()
        row = manager.get(item["id"])
        return row if row.status.value in FINISHED else None

    done = wait_until(pumped, timeout=10, interval=0.05)
    assert isinstance(done, Download)
    assert done.status is DownloadStatus.COMPLETED, done.error
    assert done.sha256 == SHA
    assert done.attempts == 1  # the attempt that moved the file forward was not counted
    # one wait, for an attempt that counts as none, saying why (the drop, however requests names it)
    assert [w["attempts"] for w in waits] == [0]
    assert waits[0]["error"].startswith(("the connection ended", "ChunkedEncodingError", "ProtocolError")), waits
    assert [r["range"] is None for r in requests_for(files, "/model.safetensors")] == [True, False]  # resumed


def test_each_retry_is_logged_with_the_reason_and_the_wait(manager: DownloadManager,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="studio.downloads.attempt")
    item = manager.enqueue(url=CLOSED, dest="loras", file_name="r.safetensors")
    wait_until(lambda: manager.get(item["id"]).retry_at is not None, timeout=10)
    lines = wait_until(lambda: [r.getMessage() for r in caplog.records if r.name == "studio.downloads.attempt"],
                       timeout=5)
    assert isinstance(lines, list)
    assert re.fullmatch(r"download r\.safetensors: ConnectionError while connecting; retrying in [12]s",
                        lines[0]), lines

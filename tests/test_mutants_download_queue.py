"""The download queue as a person sees it: what is refused up front and what it says (a pickle
without an admin's confirmation, a file already there or on its way, one that cannot fit), what the
list shows, and how the workers retry, run side by side and are paused, resumed and cancelled.

Written against the survivors of ``./dev.sh mutate downloads/manager``."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session
from werkzeug.test import TestResponse

from studio.auth.models import Role
from studio.db import write_with_retry
from studio.downloads.manager import MAX_SIZE, DownloadManager, size_in_bytes, view
from studio.downloads.models import Download, DownloadStatus
from studio.errors import BadRequest, Conflict, InsufficientStorage, NotFound, StudioError
from studio.models.catalog import CatalogEntry
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.downloads_helpers import FINISHED, managing, requests_for, serving
from tests.servers.files import FileServer

MODEL = os.urandom(2 * 1024 * 1024 + 77)
SHA = hashlib.sha256(MODEL).hexdigest()


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


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


# -- the queue: what it refuses up front ----------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """Who asks (the manager's ``Caller``): a user id and whether they are an admin."""

    user_id: int
    is_admin: bool = False


CLOSED = "http://127.0.0.1:9/model.safetensors"  # nothing listens: every attempt fails to connect


@pytest.fixture
def manager(services: Services) -> Iterator[DownloadManager]:
    yield from managing(services)


def user_id(services: Services, username: str) -> int:
    return int(services.users.create_user(username, f"{username}'s long password", Role.USER, actor="tests")["id"])


def refused(call: Any, error: type[StudioError], code: str, *words: str) -> StudioError:
    with pytest.raises(error) as caught:
        call()
    assert caught.value.code == code, caught.value.code
    for word in words:
        assert word in caught.value.message, (word, caught.value.message)
    assert caught.value.message.endswith("."), caught.value.message
    return caught.value


def test_what_can_never_be_downloaded_is_refused_naming_the_field(manager: DownloadManager) -> None:
    def enqueue(**changes: Any) -> Any:
        return lambda: manager.enqueue(**{"url": CLOSED, "dest": "loras", "file_name": "x.safetensors", **changes})

    for url in ("ftp://127.0.0.1/x", "http://127.0.0.1/a\x01b", "http://127.0.0.1/" + "a" * 4080, 42, "127.0.0.1/x"):
        err = refused(enqueue(url=url), BadRequest, "bad_request", "http(s) URL of at most 4096 characters")
        assert err.details == {"fields": {"url": "not an http(s) URL"}}
    for sha in ("xyz", "a" * 63, "g" * 64, 7):
        err = refused(enqueue(expected_sha256=sha), BadRequest, "bad_request", "64 hexadecimal digits")
        assert err.details == {"fields": {"sha256": "not a SHA-256"}}
    for size in (-1, MAX_SIZE + 1, 1.5, "3"):
        err = refused(enqueue(expected_size=size), BadRequest, "bad_request", "usable number of bytes")
        assert err.details == {"fields": {"size_gb": "out of range"}}
    for name in ("a\x07b", "n" * 256, 5):
        err = refused(enqueue(name=name), BadRequest, "bad_request")
        assert list(err.details["fields"]) == ["name"]

    longest = "http://127.0.0.1:9/" + "a" * (4096 - len("http://127.0.0.1:9/"))
    assert manager.enqueue(url=longest, dest="loras", file_name="long-url.safetensors", expected_size=0,
                           expected_sha256="A" * 64, name="n" * 255)["name"] == "n" * 255


def test_a_queued_download_says_what_it_is_and_who_asked(manager: DownloadManager, services: Services) -> None:
    amy = user_id(services, "amy")
    queued = manager.enqueue(url=CLOSED, dest="loras/style", file_name="x.safetensors", requested_by=amy,
                             expected_sha256="AB" * 32, expected_size=1234)
    assert {k: queued[k] for k in ("name", "path", "source", "status", "bytes_done", "total_bytes", "speed",
                                   "eta_s", "error", "attempts", "sha256", "requested_by", "revision",
                                   "verified")} == {
        "name": "x.safetensors", "path": "loras/style/x.safetensors", "source": "url", "status": "queued",
        "bytes_done": 0, "total_bytes": None, "speed": 0, "eta_s": None, "error": None, "attempts": 0,
        "sha256": None, "requested_by": amy, "revision": None, "verified": False}
    row = manager.get(queued["id"])
    assert (row.expected_sha256, row.expected_size, row.url) == ("ab" * 32, 1234, CLOSED)
    named = manager.enqueue(url=CLOSED, dest="loras", file_name="y.safetensors", name="My style")
    assert named["name"] == "My style"
    assert manager.get(named["id"]).expected_size is None  # nothing said, nothing expected
    refused(lambda: manager.get("no-such-id"), NotFound, "not_found", "No such download")


def test_a_file_already_there_or_already_on_its_way_is_refused_with_what_to_do(
    manager: DownloadManager, services: Services
) -> None:
    folder = services.models_root.root / "loras"
    folder.mkdir(parents=True)
    (folder / "here.safetensors").write_bytes(b"x")
    os.symlink(folder / "nowhere", folder / "link.safetensors")
    for name in ("here.safetensors", "link.safetensors"):
        refused(lambda name=name: manager.enqueue(url=CLOSED, dest="loras", file_name=name), Conflict,
                "already_installed", f"{name} is already in the models folder")

    first = manager.enqueue(url=CLOSED, dest="loras", file_name="busy.safetensors")
    again = refused(lambda: manager.enqueue(url=CLOSED, dest="loras", file_name="busy.safetensors"), Conflict,
                    "already_queued", "busy.safetensors is already in the download queue (",
                    "wait for it, or cancel it first")
    assert again.details["status"] in ("queued", "downloading")
    manager.pause(first["id"], caller=Person(0, is_admin=True))
    paused = refused(lambda: manager.enqueue(url=CLOSED, dest="loras", file_name="busy.safetensors"), Conflict,
                     "already_queued", "(paused); retry or cancel that download first")
    assert paused.details == {"status": "paused"}
    manager.cancel(first["id"], caller=Person(0, is_admin=True))
    assert manager.enqueue(url=CLOSED, dest="loras", file_name="busy.safetensors")["status"] == "queued"


def test_a_download_that_cannot_fit_beside_what_is_promised_is_refused_up_front(
    manager: DownloadManager, services: Services
) -> None:
    free = shutil.disk_usage(services.models_root.root.parent).free
    size = free // 10
    manager.margin = free - (5 * size) // 2  # room for two of them, not three
    for n in range(2):
        made = manager.enqueue(url=CLOSED, dest="loras", file_name=f"big{n}.safetensors", expected_size=size)
        manager.pause(made["id"], caller=Person(0, is_admin=True))  # waiting still counts
    refused(lambda: manager.enqueue(url=CLOSED, dest="loras", file_name="big2.safetensors", expected_size=size),
            InsufficientStorage, "not_enough_space", "Not enough disk space for big2.safetensors: it needs",
            "GB are free and", "GB are already promised to queued downloads")
    manager.cancel_all(caller=Person(0, is_admin=True))  # cancelled ones promise nothing
    assert manager.enqueue(url=CLOSED, dest="loras", file_name="big2.safetensors", expected_size=size)


def test_a_catalog_entry_downloads_from_where_it_says(manager: DownloadManager, services: Services) -> None:
    amy = user_id(services, "amy")
    manager.hf_endpoint, manager.civitai_endpoint = "http://127.0.0.1:9/hf/", "http://127.0.0.1:9/civitai"
    hub = CatalogEntry(name="Hub", file="h.safetensors", dest="loras", source="huggingface", hf_repo="org/repo",
                       hf_file="dir/h.safetensors")
    pinned = hub.model_copy(update={"revision": "v1.0"})
    civitai = CatalogEntry(name="Civ", file="c.safetensors", dest="loras", source="civitai", civitai_version_id=42)
    plain = CatalogEntry(name="Url", file="u.safetensors", dest="loras", source="url", url=CLOSED)
    assert manager.source_url(hub) == "http://127.0.0.1:9/hf/org/repo/resolve/main/dir/h.safetensors"
    assert manager.source_url(pinned) == "http://127.0.0.1:9/hf/org/repo/resolve/v1.0/dir/h.safetensors"
    assert manager.source_url(civitai) == "http://127.0.0.1:9/civitai/api/download/models/42"
    assert manager.source_url(plain) == CLOSED
    nowhere = CatalogEntry(name="Nowhere", file="n.safetensors", dest="loras", source="huggingface",
                           hf_repo="org/repo")
    assert manager.source_url(nowhere) is None
    err = refused(lambda: manager.enqueue_entry(nowhere, requested_by=amy), BadRequest, "bad_request",
                  "The catalog entry Nowhere says nowhere to download it from")
    assert err.details == {"fields": {"catalog_file": "no source"}}

    sized = plain.model_copy(update={"size_gb": 0.5, "sha256": "CD" * 32})
    queued = manager.enqueue_entry(sized, requested_by=amy)
    assert (queued["name"], queued["source"], queued["requested_by"]) == ("Url", "url", amy)
    row = manager.get(queued["id"])
    assert (row.expected_size, row.expected_sha256) == (2**29, "cd" * 32)
    refused(lambda: manager.enqueue_entry(CatalogEntry(name="P", file="p.ckpt", dest="loras", url=CLOSED),
                                          requested_by=amy), Conflict, "pickle_needs_confirmation")
    assert manager.enqueue_entry(CatalogEntry(name="P", file="p.ckpt", dest="loras", url=CLOSED), requested_by=amy,
                                 allow_pickle=True)["status"] == "queued"


def test_catalog_sizes_become_bytes_only_when_usable() -> None:
    gb = 1024**3
    assert size_in_bytes(1.5) == int(1.5 * gb)
    assert size_in_bytes(2) == 2 * gb
    assert size_in_bytes(2**30) == MAX_SIZE  # the largest size accepted
    for unusable in (0, -1, 0.0, float("nan"), float("inf"), 2**30 + 1, 1e-12, "1", None):
        assert size_in_bytes(unusable) is None, unusable  # type: ignore[arg-type]


def test_the_list_shows_speed_time_left_and_whether_the_hash_was_known(services: Services) -> None:
    row = Download(id="d", name="n", path="loras/n.safetensors", url=CLOSED, source="url",
                   status=DownloadStatus.DOWNLOADING, bytes_done=1000, total_bytes=5000, attempts=2)
    shown = view(row, speed=1499.6)
    assert (shown["speed"], shown["eta_s"], shown["attempts"]) == (1500, 3, 2)  # 4000 bytes at ~1500/s
    assert view(row)["eta_s"] is None  # no speed, no guess
    assert view(row.model_copy(update={"total_bytes": None}), 100.0)["eta_s"] is None
    assert view(row.model_copy(update={"bytes_done": 5000}), 100.0)["eta_s"] is None
    done = row.model_copy(update={"sha256": "ab" * 32, "expected_sha256": "AB" * 32})
    assert view(done)["verified"] is True
    assert view(done.model_copy(update={"expected_sha256": None}))["verified"] is False
    assert view(done.model_copy(update={"expected_sha256": "cd" * 32}))["verified"] is False
    assert view(done.model_copy(update={"sha256": None}))["verified"] is False


# -- the workers -------------------------------------------------------------------------------------------


def finished(manager: DownloadManager, download_id: str, statuses: set[str] | None = None,
             timeout: float = 20) -> Download:
    wanted = statuses or FINISHED

    def reached() -> Download | None:
        row = manager.get(download_id)
        return row if row.status.value in wanted else None

    found = wait_until(reached, timeout=timeout, interval=0.02)
    assert isinstance(found, Download)
    return found


def set_row(services: Services, download_id: str, **values: Any) -> None:
    def work(session: Session) -> None:
        row = session.get(Download, download_id)
        assert row is not None
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)

    write_with_retry(services.engine, work)


def test_a_finished_download_is_recorded_announced_and_handed_on(services: Services, files: FileServer) -> None:
    handed: list[tuple[Path, str]] = []
    events: list[dict[str, Any]] = []
    services.bus.subscribe(lambda e: events.append(e.payload) if e.type == "downloads/finished" else None)
    manager = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1,
                              tokens=dict, margin=0, on_completed=lambda path, sha: handed.append((path, sha)))
    try:
        item = manager.enqueue(url=files.url("/model.safetensors"), dest="loras", file_name="m.safetensors",
                               expected_sha256=SHA.upper(), name="Model")
        row = finished(manager, item["id"])
    finally:
        manager.stop()
    assert row.status is DownloadStatus.COMPLETED, row.error
    assert (row.sha256, row.bytes_done, row.total_bytes, row.error) == (SHA, len(MODEL), len(MODEL), None)
    assert row.finished_at is not None
    assert view(row)["verified"] is True
    target = services.models_root.root / "loras" / "m.safetensors"
    wait_until(lambda: events)
    assert handed == [(target, SHA)]
    assert events == [{"id": item["id"], "name": "Model", "status": "completed"}]


def test_a_failed_attempt_waits_longer_each_time_and_gives_up_after_six(manager: DownloadManager,
                                                                       services: Services) -> None:
    events: list[dict[str, Any]] = []
    services.bus.subscribe(lambda e: events.append(e.payload) if e.type == "downloads/finished" else None)
    before = datetime.now(UTC)
    item = manager.enqueue(url=CLOSED, dest="loras", file_name="r.safetensors")
    waiting = wait_until(lambda: (row := manager.get(item["id"])).retry_at is not None and row, timeout=10)
    after = datetime.now(UTC)
    assert isinstance(waiting, Download)
    assert (waiting.status, waiting.attempts) == (DownloadStatus.QUEUED, 1)
    assert waiting.error == "ConnectionError while connecting"
    retry_at = waiting.retry_at.replace(tzinfo=UTC) if waiting.retry_at.tzinfo is None else waiting.retry_at
    assert before + timedelta(seconds=1) <= retry_at <= after + timedelta(seconds=2)  # 2 s, jittered by half
    assert events == []  # not finished: it will be tried again

    set_row(services, item["id"], attempts=5, retry_at=None)  # five attempts already made
    manager.pump()
    failed = finished(manager, item["id"], {"failed"})
    assert failed.attempts == 6
    assert failed.error == "Gave up after 6 attempts: ConnectionError while connecting"
    assert failed.finished_at is not None
    wait_until(lambda: events)  # announced right after the row changed
    assert events == [{"id": item["id"], "name": "r.safetensors", "status": "failed", "error": failed.error}]


def test_a_download_waiting_for_its_retry_time_is_not_started_early(manager: DownloadManager,
                                                                    services: Services, files: FileServer) -> None:
    item = manager.enqueue(url=CLOSED, dest="loras", file_name="later.safetensors")
    wait_until(lambda: manager.get(item["id"]).retry_at is not None, timeout=10)
    set_row(services, item["id"], url=files.url("/model.safetensors"),
            retry_at=datetime.now(UTC) + timedelta(hours=1))
    manager.pump()
    assert manager.get(item["id"]).status is DownloadStatus.QUEUED
    assert requests_for(files, "/model.safetensors") == []
    set_row(services, item["id"], retry_at=datetime.now(UTC) - timedelta(seconds=1))
    manager.pump()
    assert finished(manager, item["id"]).status is DownloadStatus.COMPLETED


def test_downloads_run_as_many_at_once_as_the_setting_says_oldest_first(services: Services,
                                                                         files: FileServer) -> None:
    small = MODEL[: 512 * 1024]
    files.delay_per_chunk = 0.03
    for case, (cap, expected) in enumerate(((2, 2), ("not a number", 1), (0, 1), (None, 1))):
        running: set[str] = set()
        peak: list[int] = []
        order: list[str] = []

        def track(event: Any, running: set[str] = running, peak: list[int] = peak, order: list[str] = order) -> None:
            if event.type != "downloads/update":
                return
            if event.payload["status"] == "downloading":
                if event.payload["id"] not in running and event.payload["id"] not in order:
                    order.append(event.payload["id"])
                running.add(event.payload["id"])
            else:
                running.discard(event.payload["id"])
            peak.append(len(running))

        unsubscribe = services.bus.subscribe(track)
        manager = DownloadManager(services.engine, services.bus, services.models_root,
                                  concurrency=lambda cap=cap: cap, tokens=dict, margin=0)  # type: ignore[misc]
        try:
            ids = []
            for n in range(3):
                files.files[f"/s{case}{n}.safetensors"] = small
                ids.append(manager.enqueue(url=files.url(f"/s{case}{n}.safetensors"), dest="loras",
                                           file_name=f"s-{case}-{n}.safetensors")["id"])
            for download_id in ids:
                assert finished(manager, download_id).status is DownloadStatus.COMPLETED
        finally:
            manager.stop()
            unsubscribe()
        assert max(peak) == expected, cap
        if expected == 1:
            assert order == ids  # one at a time, in the order asked for


def idle(manager: DownloadManager, download_id: str) -> Download:
    """Waits until the download's attempt against the closed port is over and it waits for a retry."""
    found = wait_until(lambda: (row := manager.get(download_id)).retry_at is not None and row, timeout=10)
    assert isinstance(found, Download)
    return found


def test_pause_resume_and_cancel_move_a_download_only_where_they_may(manager: DownloadManager,
                                                                     services: Services) -> None:
    admin = Person(0, is_admin=True)
    item = manager.enqueue(url=CLOSED, dest="loras", file_name="c.safetensors")
    idle(manager, item["id"])
    part = services.models_root.root / "loras" / "c.safetensors.part"
    part.write_bytes(b"kept bytes")

    paused = manager.pause(item["id"], caller=admin)
    assert paused["status"] == "paused"
    assert part.read_bytes() == b"kept bytes"  # a pause keeps what was downloaded
    resumed = manager.resume(item["id"], caller=admin)
    assert (resumed["status"], resumed["error"]) == ("queued", None)
    wait_until(lambda: manager.get(item["id"]).attempts == 2, timeout=5)  # tried again at once, no backoff
    idle(manager, item["id"])

    cancelled = manager.cancel(item["id"], caller=admin)
    assert cancelled["status"] == "cancelled"
    assert manager.get(item["id"]).finished_at is not None
    assert not part.exists()  # nothing will resume from it
    for control in (manager.pause, manager.resume, manager.cancel):  # a finished download stays as it is
        assert control(item["id"], caller=admin)["status"] == "cancelled"


def test_the_all_at_once_controls_count_and_touch_only_the_callers_downloads(manager: DownloadManager,
                                                                            services: Services) -> None:
    amy, ben = Person(user_id(services, "amy")), Person(user_id(services, "ben"))
    mine = [manager.enqueue(url=CLOSED, dest="loras", file_name=f"a{n}.safetensors", requested_by=amy.user_id)["id"]
            for n in range(3)]
    bens = manager.enqueue(url=CLOSED, dest="loras", file_name="b.safetensors", requested_by=ben.user_id)["id"]
    for download_id in (*mine, bens):
        idle(manager, download_id)

    def statuses() -> dict[str, str]:
        return {download_id: manager.get(download_id).status.value for download_id in (*mine, bens)}

    assert manager.set_all_paused(True, caller=amy) == 3
    assert statuses() == {**dict.fromkeys(mine, "paused"), bens: "queued"}
    assert manager.set_all_paused(True, caller=amy) == 0  # nothing left to pause
    assert manager.set_all_paused(False, caller=amy) == 3
    assert {manager.get(d).status.value for d in mine} <= {"queued", "downloading"}
    for download_id in mine:
        idle(manager, download_id)

    set_row(services, mine[0], status=DownloadStatus.FAILED, error="boom")
    assert manager.retry_failed(caller=ben) == 0
    assert manager.retry_failed(caller=amy) == 1
    retried = manager.get(mine[0])  # tried again at once: it may already have failed to connect anew
    assert retried.status != DownloadStatus.FAILED
    assert retried.error != "boom"
    assert manager.cancel_all(caller=amy) == 3
    assert statuses() == {**dict.fromkeys(mine, "cancelled"), bens: statuses()[bens]}
    assert statuses()[bens] != "cancelled"
    assert manager.cancel_all(caller=Person(0, is_admin=True)) == 1  # an admin's covers everyone's
    assert statuses()[bens] == "cancelled"

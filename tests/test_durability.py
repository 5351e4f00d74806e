"""Durability on power loss: every file Studio writes and renames into place has its data fsynced
before the rename and its folder fsynced after it (and a folder it creates, in its parent), before
anyone is told the file is there.

The order is watched at the OS boundary: ``os.open``, ``os.fsync``, ``os.replace``/``os.rename``
and ``os.mkdir`` are wrapped (the real calls still run) and each call is recorded with the identity
(device, inode) of the file or folder it touched, so "fsync of *this* file, then the rename of
*this* file, then fsync of *that* folder" is checked exactly, whatever names and descriptors the
code used. Every write path is driven through Studio's real routes and services. One more test
traces the real system calls of a Studio child process with strace where strace is installed.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from studio.config import Settings
from studio.db import upgrade
from studio.downloads.manager import DownloadManager
from studio.paths import DataDir
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests import test_downloads
from tests.conftest import wait_until
from tests.jobs_helpers import run, upload_image, wait_status
from tests.servers.files import FileServer
from tests.ui_workflows import SAMPLER_API

Ident = tuple[int, int]
MODEL, SHA = test_downloads.MODEL, test_downloads.SHA
files = test_downloads.files  # the download tests' file server, serving MODEL


def _ident(info: os.stat_result) -> Ident:
    return info.st_dev, info.st_ino


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


def _folder_of(path: Any, dir_fd: int | None) -> tuple[Ident, str]:
    """Identity and path of the folder a name given to an ``os`` call lives in."""
    if dir_fd is not None and not os.path.isabs(os.fspath(path)):
        return _ident(os.fstat(dir_fd)), _fd_path(dir_fd)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    return _ident(os.stat(folder)), folder


@dataclass(frozen=True)
class Op:
    kind: str  # "create", "fsync", "rename", "mkdir", "mark"
    ident: Ident | None = None  # the file fsynced / created / renamed, the folder fsynced or created
    folder: Ident | None = None  # where the name was created, or the rename's target folder
    source_folder: Ident | None = None
    name: str = ""  # the created or target name
    is_dir: bool = False
    where: str = ""  # a readable path, for failure messages

    def __str__(self) -> str:
        return f"{self.kind} {self.where}"


class Trace:
    """The calls at the OS boundary, in the order they happened (all threads)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.lock = threading.Lock()

    def add(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)

    def mark(self, label: str) -> None:
        self.add(Op("mark", where=label))

    def wait_mark(self, label: str) -> None:
        """An event is published just after the state a client can poll: wait for it too."""
        wait_until(lambda: any(op.kind == "mark" and op.where == label for op in self.snapshot()))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Trace:
        real_open, real_fsync, real_replace, real_rename, real_mkdir = (
            os.open, os.fsync, os.replace, os.rename, os.mkdir)
        trace = self

        def traced_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            if flags & os.O_CREAT:
                folder, where = _folder_of(path, dir_fd)
                trace.add(Op("create", _ident(os.fstat(fd)), folder, name=os.path.basename(os.fspath(path)),
                             where=os.path.join(where, os.path.basename(os.fspath(path)))))
            return fd

        def traced_fsync(fd: Any) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            info = os.fstat(number)
            real_fsync(number)  # an error is raised before it is recorded: only a real fsync counts
            trace.add(Op("fsync", _ident(info), is_dir=stat.S_ISDIR(info.st_mode), where=_fd_path(number)))

        def traced_replace(real: Callable[..., None]) -> Callable[..., None]:
            def replace(src: Any, dst: Any, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
                moved = _ident(os.stat(src, dir_fd=src_dir_fd, follow_symlinks=False))
                source_folder, _ = _folder_of(src, src_dir_fd)
                folder, where = _folder_of(dst, dst_dir_fd)
                real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
                name = os.path.basename(os.fspath(dst))
                trace.add(Op("rename", moved, folder, source_folder, name=name, where=os.path.join(where, name)))
            return replace

        def traced_mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
            real_mkdir(path, mode, dir_fd=dir_fd)
            parent, where = _folder_of(path, dir_fd)
            name = os.path.basename(os.fspath(path).rstrip("/"))
            made = os.stat(name, dir_fd=dir_fd) if dir_fd is not None and not os.path.isabs(os.fspath(path)) \
                else os.stat(path)
            trace.add(Op("mkdir", _ident(made), parent, name=name, is_dir=True, where=os.path.join(where, name)))

        monkeypatch.setattr(os, "open", traced_open)
        monkeypatch.setattr(os, "fsync", traced_fsync)
        monkeypatch.setattr(os, "replace", traced_replace(real_replace))
        monkeypatch.setattr(os, "rename", traced_replace(real_rename))
        monkeypatch.setattr(os, "mkdir", traced_mkdir)
        return self

    def snapshot(self) -> list[Op]:
        with self.lock:
            return list(self.ops)

    def renames_to(self, target: Path) -> list[int]:
        ops = self.snapshot()
        folder = _ident(os.stat(target.parent))
        return [i for i, op in enumerate(ops) if op.kind == "rename" and op.folder == folder and op.name == target.name]

    def assert_durable(self, target: Path, *, before: str | None = None) -> None:
        """Each rename onto ``target``: its file fsynced after it was created and before the rename;
        the target's folder (and the source's, when another) fsynced after; all before ``before``."""
        ops = self.snapshot()
        renames = self.renames_to(target)
        assert renames, f"{target} was never renamed into place; saw {[str(o) for o in ops]}"
        end = len(ops)
        if before is not None:
            marks = [i for i, op in enumerate(ops) if op.kind == "mark" and op.where == before]
            assert marks, f"never marked {before!r}"
            end = marks[0]
        for index in renames:
            rename = ops[index]
            assert index < end, f"{target.name} was renamed into place only after {before}"
            created = max((i for i in range(index) if ops[i].kind == "create" and ops[i].ident == rename.ident),
                          default=-1)
            synced = [i for i in range(created + 1, index) if ops[i].kind == "fsync" and ops[i].ident == rename.ident]
            assert synced, f"{target.name}: renamed into place without an fsync of its data first " \
                           f"(ops: {[str(o) for o in ops[max(created, 0):index + 1]]})"
            for folder in {rename.folder, rename.source_folder}:
                after = [i for i in range(index + 1, end) if ops[i].kind == "fsync" and ops[i].is_dir
                         and ops[i].ident == folder]
                assert after, f"{target.name}: a folder of the rename was not fsynced after it" + (
                    f" and before {before}" if before else "")

    def assert_folders_durable(self, below: Path, target: Path) -> None:
        """Every folder on the way from ``below`` to ``target`` that was created is fsynced into its
        parent before ``target`` lands; at least one was created (else the test proves nothing)."""
        ops = self.snapshot()
        land = self.renames_to(target)[-1]
        on_the_way = {_ident(os.stat(folder)) for folder in [target.parent, *target.parent.parents]
                      if folder.resolve().is_relative_to(below.resolve()) and folder.resolve() != below.resolve()}
        made = [(i, op) for i, op in enumerate(ops[:land]) if op.kind == "mkdir" and op.ident in on_the_way]
        assert made, f"no folder was created on the way to {target}"
        for index, op in made:
            assert any(later.kind == "fsync" and later.is_dir and later.ident == op.folder
                       for later in ops[index + 1:land]), f"the new folder {op.where} was not fsynced into its parent"

    def assert_every_rename_synced(self) -> None:
        """No file at all was renamed into place without its data fsynced first (what must not happen)."""
        ops = self.snapshot()
        for index, op in enumerate(ops):
            if op.kind != "rename":
                continue
            created = max((i for i in range(index) if ops[i].kind == "create" and ops[i].ident == op.ident),
                          default=-1)
            assert any(ops[i].kind == "fsync" and ops[i].ident == op.ident for i in range(created + 1, index)), \
                f"{op.where} was renamed into place without an fsync of its data"


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Trace:
    return Trace().install(monkeypatch)


def wait_download(client: FlaskClient, download_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        item = next(i for i in client.get("/api/downloads").get_json()["items"] if i["id"] == download_id)
        return item if item["status"] in ("completed", "failed") else None

    found = wait_until(finished, timeout=30, interval=0.02)
    assert isinstance(found, dict)
    return found


# -- downloads ---------------------------------------------------------------------------------


def test_a_finished_download_is_fsynced_before_its_rename_and_its_folder_after(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer, trace: Trace
) -> None:
    services.bus.subscribe(lambda e: trace.mark("finished") if e.type == "downloads/finished" else None)
    answer = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "checkpoints/sd15",
                                                 "file": "model.safetensors", "sha256": SHA})
    assert answer.status_code == 201, answer.get_json()
    done = wait_download(client, answer.get_json()["id"])
    assert done["status"] == "completed", done["error"]
    target = services.models_root.root / "checkpoints" / "sd15" / "model.safetensors"
    assert target.read_bytes() == MODEL
    trace.wait_mark("finished")
    trace.assert_durable(target, before="finished")  # nobody hears "finished" of a file a power cut could undo
    trace.assert_folders_durable(services.models_root.root, target)  # checkpoints/ and sd15/ themselves
    ops = trace.snapshot()
    part = next(op for op in ops if op.kind == "create" and op.name == "model.safetensors.part")
    created = ops.index(part)
    # the partial file's own name is durable from the start: a resume after a power cut finds it
    assert any(op.kind == "fsync" and op.is_dir and op.ident == part.folder for op in ops[created + 1:])
    trace.assert_every_rename_synced()


def test_a_quarantined_download_is_durable_where_it_went_and_gone_where_it_was(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer, trace: Trace
) -> None:
    files.files["/bad.safetensors"] = MODEL[:10] + bytes([MODEL[10] ^ 1]) + MODEL[11:]
    answer = client.post("/api/downloads", json={"url": files.url("/bad.safetensors"), "dest": "loras",
                                                 "file": "bad.safetensors", "sha256": SHA})
    failed = wait_download(client, answer.get_json()["id"])
    assert failed["status"] == "failed"
    assert "SHA-256" in failed["error"]
    loras = services.models_root.root / "loras"
    assert not (loras / "bad.safetensors").exists()  # never under its real name
    moved = loras / ".quarantine" / "bad.safetensors"
    assert moved.is_file()
    trace.assert_durable(moved)  # both folders fsynced: the .part name does not come back after a power cut
    trace.assert_folders_durable(loras, moved)


class PowerCut(BaseException):
    """The machine lost power here: nothing after this point in Studio ran (only ``finally``
    blocks, which touch no file), so the disk is as the fsyncs before it left it."""


def test_a_download_cut_off_between_fsync_and_rename_resumes_from_its_kept_part(
    settings: Settings, services: Services, files: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if os.fspath(src).endswith("model.safetensors.part"):
            raise PowerCut
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    first = DownloadManager(services.engine, services.bus, services.models_root, concurrency=lambda: 1, tokens=dict)
    first.start()
    item = first.enqueue(url=files.url("/model.safetensors"), dest="unet", file_name="model.safetensors",
                         expected_sha256=SHA)
    part = services.models_root.root / "unet" / "model.safetensors.part"
    wait_until(lambda: str(part) in synced, timeout=20)  # fsynced, then the power went
    first.stop()  # waits for the worker, which the power cut stopped right before the rename
    assert first.get(item["id"]).status.value == "downloading"  # as the row was when the machine went down
    assert part.read_bytes() == MODEL  # the whole file, still under its partial name
    target = services.models_root.root / "unet" / "model.safetensors"
    assert not target.exists()
    monkeypatch.setattr(os, "replace", real_replace)
    requests_before = len(files.requests)

    reborn = build_services(settings)
    upgrade(reborn.engine)
    reborn.downloads.start()
    try:
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value in ("completed", "failed"), timeout=20)
    finally:
        reborn.downloads.stop()
    done = reborn.downloads.get(item["id"])
    assert done.status.value == "completed", done.error
    assert done.sha256 == SHA
    assert target.read_bytes() == MODEL
    assert not part.exists()
    after = files.requests[requests_before:]
    # the kept part was verified and used: one ranged request past its end, nothing fetched again
    assert [(r["range"], r.get("status")) for r in after] == [(f"bytes={len(MODEL)}-", 416)]


# -- catalogs, workflows, inputs, outputs, exports ------------------------------------------------

LORAS = {"version": 1, "categories": [{"id": "loras", "name": "LoRAs", "models": [
    {"name": "Detail", "file": "detail.safetensors", "dest": "loras", "source": "url", "size_gb": 0.1,
     "url": "https://example.com/detail.safetensors"}]}]}


def test_an_imported_catalog_and_a_removed_entry_are_durable_before_the_answer(
    client: FlaskClient, services: Services, trace: Trace
) -> None:
    answer = client.post("/api/catalogs/loras", json={"catalog": LORAS})
    assert answer.status_code == 200, answer.get_json()
    trace.mark("answered")
    target = services.data_dir.catalogs / "loras.json"
    trace.assert_durable(target, before="answered")
    assert client.delete("/api/catalogs/loras/entries/detail.safetensors").status_code == 200
    trace.mark("removed")
    assert len(trace.renames_to(target)) == 2
    trace.assert_durable(target, before="removed")
    assert not [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_catalog_whose_fsync_fails_is_never_renamed_into_place(
    client: FlaskClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post("/api/catalogs/loras", json={"catalog": LORAS}).status_code == 200
    target = services.data_dir.catalogs / "loras.json"
    before = target.read_bytes()
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    changed = {**LORAS, "categories": [{**LORAS["categories"][0], "models": [
        {**LORAS["categories"][0]["models"][0], "name": "Detail v2"}]}]}
    answer = client.post("/api/catalogs/loras", json={"catalog": changed})
    assert answer.status_code == 500
    assert set(answer.get_json()["error"]) >= {"code", "message"}
    assert target.read_bytes() == before  # the old catalog, whole: the unsynced one never took its name
    assert not [p.name for p in target.parent.iterdir() if p.name != "loras.json"]  # no temporary left behind


def test_an_imported_workflow_and_a_hidden_one_are_durable_before_the_answer(
    client: FlaskClient, services: Services, trace: Trace
) -> None:
    answer = client.post("/api/workflows", data={"file": (io.BytesIO(json.dumps(SAMPLER_API).encode()), "c.json"),
                                                 "name": "Castle", "id": "castle"},
                         content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()
    trace.mark("imported")
    folder = services.data_dir.workflows / "castle"
    for name in ("workflow.json", "manifest.yaml"):
        trace.assert_durable(folder / name, before="imported")
    trace.assert_folders_durable(services.data_dir.workflows, folder / "workflow.json")
    assert client.delete("/api/workflows/image-resize").status_code == 200
    trace.mark("hidden")
    trace.assert_durable(services.data_dir.workflows / ".hidden.json", before="hidden")
    trace.assert_every_rename_synced()


def test_an_uploaded_input_and_a_jobs_output_are_durable_before_anyone_sees_them(
    client: FlaskClient, runtime: Runtime, services: Services, trace: Trace
) -> None:
    image = upload_image(client, (40, 30))
    trace.mark("uploaded")
    stored = services.data_dir.inputs / image
    assert stored.is_file()
    trace.assert_durable(stored, before="uploaded")

    services.bus.subscribe(lambda e: trace.mark("job finished") if e.type == "jobs/finished" else None)
    [job] = run(client, "image-resize", {"image": image, "width": 20, "height": 15})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done["error"]
    [output] = done["outputs"]
    kept = services.data_dir.outputs / "studio" / job["id"] / output["filename"]
    assert kept.is_file()
    trace.wait_mark("job finished")
    trace.assert_durable(kept, before="job finished")
    trace.assert_folders_durable(services.data_dir.outputs, kept)  # the job's own folder

    # The gallery indexes the finished job (and makes its thumbnails) in its own worker, and History's
    # thumbnails have one of their own (it makes ``.thumbs``): let both end first, so what the trace
    # holds after the mark is the export's doing alone.
    assert services.gallery.index.wait_idle(10)
    assert client.application.extensions["studio.thumbnails"].wait_idle(10)
    trace.mark("export")
    with client.get(f"/api/jobs/{job['id']}/export") as answer:
        assert answer.status_code == 200
        assert answer.data[:2] == b"PK"
    # an export is streamed from the files: it creates and renames nothing on disk
    ops = trace.snapshot()
    start = next(i for i, op in enumerate(ops) if op.kind == "mark" and op.where == "export")
    assert not [str(op) for op in ops[start:] if op.kind in ("create", "rename", "mkdir")
                and Path(op.where).resolve().is_relative_to(services.data_dir.root.resolve())
                and not op.where.endswith(("-wal", "-shm", "-journal"))]
    trace.assert_every_rename_synced()


# -- the session key ---------------------------------------------------------------------------


def test_the_session_key_is_durable_when_made_and_when_rotated(
    settings: Settings, trace: Trace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fresh = settings.model_copy(update={"studio_dir": tmp_path / "fresh"})
    made = build_services(fresh)  # first boot: the key is made
    made.engine.dispose()
    secrets = DataDir(fresh.studio_dir).secrets
    key = secrets / "session_signing_key"
    first = key.read_text()
    trace.assert_durable(key)
    trace.assert_folders_durable(fresh.studio_dir, key)  # secrets/ itself, in the data folder
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    from studio.cli import main

    monkeypatch.setenv("STUDIO_DIR", str(fresh.studio_dir))
    assert main(["rotate-session-key"]) == 0
    assert (secrets / "session_signing_key.previous").read_text() == first
    assert key.read_text() != first
    trace.assert_durable(secrets / "session_signing_key.previous")
    assert len(trace.renames_to(key)) == 2
    trace.assert_durable(key)
    trace.assert_every_rename_synced()


def _strace() -> str:
    found = shutil.which("strace")
    if found is None:
        pytest.skip("strace is not installed (Debian: apt-get install strace): the in-process trace above "
                    "covers the same order")
    probe = subprocess.run([found, "-qq", "-e", "trace=none", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here (ptrace refused: {probe.stderr.decode()[-200:].strip()})")
    return found


def test_real_system_calls_of_a_studio_process_rotating_its_key(tmp_path: Path) -> None:
    """The same order seen by the kernel: strace of ``studio rotate-session-key`` in a child process."""
    tracer = _strace()
    data = tmp_path / "data"
    env = {**os.environ, "STUDIO_DIR": str(data), "COMFYUI_URL": "http://127.0.0.1:9"}
    subprocess.run([sys.executable, "-m", "studio", "rotate-session-key"], env=env, check=True, timeout=120,
                   capture_output=True)  # the first key, made on first use
    log = tmp_path / "strace.txt"
    subprocess.run([tracer, "-f", "-qq", "-y", "-o", str(log), "-e",
                    "trace=fsync,fdatasync,rename,renameat,renameat2,openat,mkdir,mkdirat",
                    sys.executable, "-m", "studio", "rotate-session-key"],
                   env=env, check=True, timeout=120, capture_output=True)
    secrets = (data / "secrets").resolve()
    calls = [line.split(None, 1)[1] for line in log.read_text().splitlines()
             if str(secrets) in line and " = -1 " not in line and line.split(None, 1)[1:]]
    for name in ("session_signing_key.previous", "session_signing_key"):
        temporary = f"{secrets}/.{name}.tmp>"
        rename = next(i for i, c in enumerate(calls) if c.startswith("rename") and f"\"{name}\"" in c)
        synced = [i for i, c in enumerate(calls[:rename]) if c.startswith(("fsync", "fdatasync")) and temporary in c]
        assert synced, f"{name}: no fsync of its data before the rename:\n" + "\n".join(calls[:rename + 1])
        folder = [i for i, c in enumerate(calls) if i > rename and c.startswith("fsync") and f"<{secrets}>" in c]
        assert folder, f"{name}: the secrets folder was not fsynced after the rename:\n" + "\n".join(calls)

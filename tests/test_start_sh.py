"""start.sh run directly (no Docker engine here), as the image runs it: ComfyUI copied from the
image on first boot, bootstrap from a local bare repository, Studio supervised, the error page
when the bootstrap fails, and a clean stop on SIGTERM within docker stop's 10 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_until
from tests.test_cli import free_port
from tests.test_deploy_helpers import CHECKOUT, VersionRepo, deploy_env


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> VersionRepo:
    made = VersionRepo(tmp_path_factory.mktemp("repo"))
    made.make("main", 1)
    return made


def _start(tmp_path: Path, repo: VersionRepo, port: int, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    image_comfyui = tmp_path / "image-comfyui"
    image_comfyui.mkdir(exist_ok=True)
    (image_comfyui / "main.py").write_text("# a stand-in ComfyUI: Studio is told not to start it\n")
    env = deploy_env(tmp_path / "workspace" / "studio", repo, "main", port, STUDIO_HOST="127.0.0.1",
                     STUDIO_APP=str(CHECKOUT), STUDIO_PYTHON=sys.executable, COMFYUI_IMAGE_DIR=str(image_comfyui),
                     COMFYUI_DIR=str(tmp_path / "workspace" / "ComfyUI"), COMFYUI_AUTOSTART="false", **extra)
    env.pop("PYTHONPATH")
    log = tmp_path / "start.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(["bash", str(CHECKOUT / "start.sh")], env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return process, log


def _get(port: int, path: str) -> requests.Response | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except requests.RequestException:
        return None


def _stop_within_10_s(process: subprocess.Popen[bytes], port: int) -> None:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(15) == 0
        assert time.monotonic() - started < 10
        assert _get(port, "/api/health") is None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # a survivor of the group would be a bug: none may outlive
        except ProcessLookupError:
            pass
        else:
            raise AssertionError("something start.sh started outlived it")


def test_start_sh_bootstraps_supervises_and_stops_on_sigterm(repo: VersionRepo, tmp_path: Path) -> None:
    port = free_port()
    process, log = _start(tmp_path, repo, port)
    try:
        wait_until(lambda: (a := _get(port, "/assets/release.txt")) is not None and a.status_code == 200,
                   timeout=90, interval=0.2)
        workspace = tmp_path / "workspace"
        assert (workspace / "ComfyUI" / "main.py").is_file()  # copied from the image on first boot
        assert os.readlink(workspace / "studio" / "current") == "releases/0.1.1"
        text = log.read_text()
        for line in ("[start] ", "[bootstrap] done", "[supervise] starting Studio"):
            assert line in text
        # Studio dies: the supervisor starts it again.
        serving = subprocess.run(["pgrep", "-s", str(process.pid), "-f", "studio serve"], capture_output=True,
                                 text=True, check=False).stdout.split()
        assert len(serving) == 1
        os.kill(int(serving[0]), signal.SIGKILL)
        wait_until(lambda: _get(port, "/api/health") is None, timeout=10)
        wait_until(lambda: (a := _get(port, "/api/health")) is not None and a.status_code == 200, timeout=60,
                   interval=0.2)
        assert "Studio exited with status -9; starting it again" in log.read_text()
    finally:
        _stop_within_10_s(process, port)


def test_a_failed_bootstrap_serves_its_reason_instead_of_exiting(repo: VersionRepo, tmp_path: Path) -> None:
    port = free_port()
    process, log = _start(tmp_path, repo, port, REPO_URL=str(tmp_path / "no-such-repo.git"))
    try:
        page = wait_until(lambda: [a for a in [_get(port, "/")] if a is not None], timeout=60, interval=0.2)
        assert isinstance(page, list)
        assert page[0].status_code == 503
        assert "could not clone the repository" in page[0].text
        assert "<script" not in page[0].text
        health = _get(port, "/api/health")
        assert health is not None
        assert health.status_code == 503  # the image's HEALTHCHECK says unhealthy
        assert health.json()["error"]["code"] == "bootstrap_failed"
        assert process.poll() is None  # still there, not a restart loop
        assert not (tmp_path / "workspace" / "studio" / "current").exists()
    finally:
        _stop_within_10_s(process, port)

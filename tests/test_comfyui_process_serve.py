"""``COMFYUI_DIR=… studio serve`` as the container runs it: Studio starts ComfyUI; a Studio killed
hard leaves it running and the next Studio takes it over instead of starting a second one; SIGTERM
to Studio ends ComfyUI's whole process group, a process ComfyUI started included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import requests

from studio.comfyui_process.launch import answers_like_comfyui, free_port
from tests.conftest import wait_until
from tests.test_cli import studio_env
from tests.test_comfyui_process import READY_S, comfyui_folder, starts


def serve(tmp_path: Path, folder: Path, port: int, comfy_port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port)],
                               env=studio_env(tmp_path, COMFYUI_DIR=str(folder), COMFYUI_PORT=str(comfy_port)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True)

    def healthy() -> bool:
        assert process.poll() is None, "studio serve exited"
        try:
            return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(healthy, timeout=30, interval=0.05)
    return process


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_serve_starts_comfyui_a_killed_studio_is_succeeded_by_adoption_and_sigterm_ends_the_group(
    tmp_path: Path,
) -> None:
    folder = comfyui_folder(tmp_path, grandchild=True)
    port, comfy_port = free_port(), free_port()
    url = f"http://127.0.0.1:{comfy_port}"
    first = serve(tmp_path, folder, port, comfy_port)
    try:
        wait_until(lambda: answers_like_comfyui(url), timeout=READY_S, interval=0.1)
        [pid] = starts(folder)
        grandchild = int((folder / "grandchild.pid").read_text())
        record = json.loads((tmp_path / "data" / "comfyui-process.json").read_text())
        assert record["pid"] == pid
    finally:
        first.kill()  # no chance to clean up: ComfyUI goes on
        first.wait(10)
    assert answers_like_comfyui(url)

    second = serve(tmp_path, folder, port, comfy_port)
    try:
        assert starts(folder) == [pid]  # taken over, not started a second time
        assert not gone(pid)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    assert gone(pid)
    wait_until(lambda: gone(grandchild), timeout=5)
    assert not answers_like_comfyui(url)
    assert not (tmp_path / "data" / "comfyui-process.json").exists()
    log_text = (tmp_path / "data" / "logs" / "comfyui.log").read_text()
    assert "took over the running ComfyUI" in log_text
    assert "got signal 15, stopping" in log_text

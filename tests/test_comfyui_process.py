"""Studio running ComfyUI itself, through the same code path as production: a stand-in ``main.py``
(tests/comfyui_standin.py) in a temporary ComfyUI folder serves the ComfyUI test server on the
``--port`` Studio gives it. Start → ready → a job runs; SIGKILL → restarted and jobs run again;
an exit before answering → a crash loop with its last lines and no second start; stop ends the
whole process group; a ComfyUI already on the port is used, not doubled, and never stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.auth.models import TokenScope
from studio.comfyui_process.launch import free_port
from studio.config import Settings
from studio.events.bus import Event
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary, signed_in_user, wait_until
from tests.jobs_helpers import events as events  # the fixture, under its own name for pytest
from tests.jobs_helpers import plant_workflow, run, wait_status
from tests.servers.comfyui import ComfyUITestServer

REPO = Path(__file__).resolve().parent.parent
STANDIN = Path(__file__).resolve().parent / "comfyui_standin.py"
ONE_IMAGE = """{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "managed"}}}"""
READY_S = 30  # the stand-in imports aiohttp and Pillow: seconds on a busy 2-core machine


def comfyui_folder(root: Path, **behaviour: Any) -> Path:
    folder = root / "ComfyUI"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STANDIN, folder / "main.py")
    (folder / "standin.json").write_text(json.dumps({"repo": str(REPO), **behaviour}))
    return folder


def starts(folder: Path) -> list[int]:
    """The pids of every stand-in ComfyUI that ran in ``folder``."""
    path = folder / "starts.txt"
    return [int(line) for line in path.read_text().split()] if path.is_file() else []


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def settings(tmp_path: Path, port: int) -> Settings:
    """Studio with COMFYUI_DIR (the stand-in), its own port for ComfyUI and extra flags; COMFYUI_URL
    points at a closed port, so a job that runs proves the client followed the managed process."""
    folder = comfyui_folder(tmp_path)
    (folder / "extra_model_paths.yaml").write_text("comfyui:\n  base_path: /nowhere\n")
    return Settings(studio_dir=tmp_path / "studio", comfyui_url="http://127.0.0.1:9", comfyui_dir=folder,
                    comfyui_port=port, comfyui_args="--lowvram --fast", comfyui_reconnect_max_s=0.3,
                    comfyui_start_timeout_s=READY_S, civitai_endpoint="http://127.0.0.1:9",
                    hf_endpoint="http://127.0.0.1:9")


def state_of(client: FlaskClient, *states: str, timeout: float = READY_S) -> dict[str, Any]:
    found = wait_until(lambda: (s := client.get("/api/comfyui/process").get_json())["state"] in states and s,
                       timeout=timeout, interval=0.05)
    assert isinstance(found, dict)
    return found


def one_job_completes(client: FlaskClient) -> None:
    [job] = run(client, "one-image", {})
    done = wait_status(client, job["id"], timeout=20)
    assert done["status"] == "completed", done.get("error")
    assert [o["node_id"] for o in done["outputs"]] == ["2"]


def test_studio_starts_comfyui_with_its_flags_restarts_it_after_a_kill_and_stops_its_whole_group(
    client: FlaskClient, runtime: Runtime, services: Services, settings: Settings, port: int,
    events: list[Event], monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = settings.comfyui_dir
    assert folder is not None
    (folder / "standin.json").write_text(json.dumps({"repo": str(REPO), "grandchild": True}))
    plant_workflow(services, "one-image", ONE_IMAGE)
    monkeypatch.setenv("HF_TOKEN", canary("hf_not_for_comfyui_1234"))  # Studio's secret, not ComfyUI's
    restarted = client.post("/api/comfyui/process/restart", json={})  # autostart ran first; a restart now
    assert restarted.status_code == 202, restarted.get_json()  # starts one that sees the variable set
    ready = state_of(client, "ready", "crash_loop")
    assert ready["state"] == "ready", ready
    assert ready["url"] == f"http://127.0.0.1:{port}"
    assert services.comfy.base_url == ready["url"]  # the client follows the managed process
    inputs, outputs = services.data_dir.inputs, services.data_dir.outputs
    assert ready["argv"][1:] == [
        "main.py", "--listen", "127.0.0.1", "--port", str(port), "--input-directory", str(inputs),
        "--output-directory", str(outputs), "--extra-model-paths-config", str(folder / "extra_model_paths.yaml"),
        "--preview-method", "auto", "--lowvram", "--fast", "--disable-auto-launch"]
    logged = client.get("/api/comfyui/process/logs?lines=50").get_json()
    assert logged["file"] == str(services.data_dir.logs / "comfyui.log")
    argv_line = next(line for line in logged["lines"] if line.startswith("argv: "))
    assert json.loads(argv_line[len("argv: "):])[1:] == ready["argv"][2:]  # what ComfyUI itself received
    assert "environment has HF_TOKEN: no" in logged["lines"]
    assert (services.data_dir.logs / "comfyui.log.1").is_file()  # the first start's log, rotated
    one_job_completes(client)

    # Killed (the OOM killer, a segfault): restarted after a pause, and jobs run again.
    first_pid = ready["pid"]
    grandchild = psutil.Process(int((folder / "grandchild.pid").read_text()))
    os.kill(first_pid, signal.SIGKILL)
    crashed = wait_until(lambda: next((e.payload for e in events if e.type == "comfyui/process"
                                       and e.payload["state"] == "crashed"), None), timeout=10)
    assert isinstance(crashed, dict)
    assert "was killed by signal 9" in crashed["last_error"]
    assert "Restarting in 1 s" in crashed["last_error"]
    assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE  # the group went with it
    again = state_of(client, "ready")
    assert again["pid"] != first_pid
    assert again["restarts"] == 1
    one_job_completes(client)
    seen = [e.payload["state"] for e in events if e.type == "comfyui/process"]
    assert seen[-3:] == ["crashed", "starting", "ready"]

    # Stop: ComfyUI and the process it started are gone, and nothing restarts them.
    grandchild = psutil.Process(int((folder / "grandchild.pid").read_text()))
    stopped = client.post("/api/comfyui/process/stop", json={}).get_json()
    assert stopped["state"] == "stopped"
    assert not psutil.pid_exists(again["pid"]) or psutil.Process(again["pid"]).status() == psutil.STATUS_ZOMBIE
    wait_until(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE, timeout=5)
    assert "got signal 15, stopping" in client.get("/api/comfyui/process/logs").get_json()["lines"]
    assert starts(folder)[-2:] == [first_pid, again["pid"]]  # (the autostart's may have died before writing)
    assert client.get("/api/comfyui/process").get_json()["state"] == "stopped"


def test_a_comfyui_that_exits_at_once_is_a_crash_loop_shown_with_its_last_lines_and_not_restarted(
    client: FlaskClient, runtime: Runtime, settings: Settings,
) -> None:
    folder = settings.comfyui_dir
    assert folder is not None
    (folder / "standin.json").write_text(json.dumps({"repo": str(REPO), "exit": 1}))
    client.post("/api/comfyui/process/restart", json={})
    shown = state_of(client, "crash_loop")
    assert "exited with code 1 before it ever answered" in shown["last_error"]
    assert "ModuleNotFoundError: No module named 'torch'" in shown["last_lines"]
    assert shown["pid"] is None
    crashed_once = starts(folder)
    assert crashed_once  # it did run, and printed its traceback
    # Fixed, then started by hand: it runs.
    (folder / "standin.json").write_text(json.dumps({"repo": str(REPO)}))
    assert starts(folder) == crashed_once  # nothing restarted it meanwhile
    assert client.post("/api/comfyui/process/start", json={}).status_code == 202
    assert state_of(client, "ready")["last_lines"] == []


def test_five_exits_within_ten_minutes_are_a_crash_loop_and_a_start_that_never_answers_is_given_up(
    client: FlaskClient, runtime: Runtime, services: Services, settings: Settings,
) -> None:
    folder = settings.comfyui_dir
    assert folder is not None
    supervisor = services.comfyui_process
    supervisor.backoff_s = (0.05,)  # the pauses between restarts, short for the test
    (folder / "standin.json").write_text(json.dumps({"repo": str(REPO), "exit_after_answering": 3}))
    client.post("/api/comfyui/process/stop", json={})
    before = len(starts(folder))
    client.post("/api/comfyui/process/start", json={})
    shown = state_of(client, "crash_loop", timeout=60)
    assert "exited with code 3: 5 exits within 10 minutes" in shown["last_error"]
    assert "Segmentation fault (core dumped)" in shown["last_lines"]
    assert shown["restarts"] == 4
    assert len(starts(folder)) == before + 5  # five that answered and died; no sixth

    (folder / "standin.json").write_text(json.dumps({"repo": str(REPO), "hang": True}))
    supervisor.start_timeout_s = lambda: 1.0
    client.post("/api/comfyui/process/start", json={})
    given_up = state_of(client, "crash_loop", timeout=20)
    assert "did not answer within 1 s" in given_up["last_error"]
    [*_, pid] = starts(folder)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # and it was stopped


def test_a_comfyui_already_answering_on_the_port_is_used_not_started_twice_and_not_stopped(
    tmp_path: Path, client: FlaskClient, app: Flask, services: Services, settings: Settings, port: int,
) -> None:
    with ComfyUITestServer(tmp_path / "theirs", port=port) as theirs:
        running = Runtime(app, services)
        running.start_in_thread()
        try:
            shown = state_of(client, "external")
            assert shown["url"] == theirs.url
            assert services.comfy.base_url == theirs.url
            assert shown["pid"] is None
            refused = client.post("/api/comfyui/process/stop", json={})
            assert refused.status_code == 409
            assert refused.get_json()["error"]["code"] == "comfyui_external"
            assert client.post("/api/comfyui/process/restart", json={}).status_code == 409
            assert client.post("/api/comfyui/process/start", json={}).get_json()["state"] == "external"
        finally:
            running.stop()
        assert settings.comfyui_dir is not None
        assert starts(settings.comfyui_dir) == []  # Studio never ran its own
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # Studio's exit left theirs running


def test_a_port_held_by_a_program_that_is_not_comfyui_is_said_in_words_and_nothing_is_started(
    client: FlaskClient, services: Services, settings: Settings, port: int,
) -> None:
    other = HTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)  # answers every request 501
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        services.comfyui_process.start_background()
        shown = client.get("/api/comfyui/process").get_json()
        assert shown["state"] == "crash_loop"
        assert f"Port {port} is taken by a program that is not ComfyUI" in shown["last_error"]
        assert settings.comfyui_dir is not None
        assert starts(settings.comfyui_dir) == []
    finally:
        other.shutdown()
        other.server_close()


def test_only_admins_see_and_drive_the_process_and_a_run_scope_token_is_refused(
    client: FlaskClient, app: Flask, services: Services, settings: Settings,
) -> None:
    alice = signed_in_user(app, client, "alice")
    for method, path in (("get", ""), ("post", "/start"), ("post", "/stop"), ("post", "/restart"), ("get", "/logs")):
        answer = getattr(alice, method)(f"/api/comfyui/process{path}", **({"json": {}} if method == "post" else {}))
        assert answer.status_code == 403, path
        assert answer.get_json()["error"]["code"] == "admin_only"
    assert settings.comfyui_dir is not None
    assert starts(settings.comfyui_dir) == []  # her start and restart ran nothing
    _, admin = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    token, _ = services.auth.create_token(admin, name="runner", scope=TokenScope.RUN, expires_at=None)
    scoped = app.test_client().get("/api/comfyui/process", headers={"Authorization": f"Bearer {canary(token)}"})
    assert scoped.status_code == 403, scoped.get_json()
    assert scoped.get_json()["error"]["code"] == "token_scope"
    for lines in ("0", "2001", "x", "1e3"):
        assert client.get(f"/api/comfyui/process/logs?lines={lines}").status_code == 400
    assert client.get("/api/comfyui/process/logs?lines=2000").status_code == 200
    assert client.post("/api/comfyui/process/start", json={"extra": 1}).status_code == 400


def test_the_settings_page_chooses_the_comfyui_folder_and_its_flags_and_clearing_it_stops_studios_own(
    client: FlaskClient, runtime: Runtime, services: Services, settings: Settings, port: int,
) -> None:
    first = state_of(client, "ready")
    refused = client.put("/api/settings", json={"comfyui_args": "--listen 0.0.0.0"})
    assert refused.status_code == 400  # ComfyUI has no sign-in: never opened to the network from the page
    assert "--listen is set by Studio itself" in refused.get_json()["error"]["details"]["fields"]["comfyui_args"]
    assert client.put("/api/settings", json={"comfyui_dir": "relative/ComfyUI"}).status_code == 400

    # New flags: restarted with them.
    assert client.put("/api/settings", json={"comfyui_args": "--cpu", "comfyui_preview_method": "taesd"}).status_code \
        == 200
    again = wait_until(lambda: (s := client.get("/api/comfyui/process").get_json())["state"] == "ready"
                       and s["pid"] != first["pid"] and s, timeout=READY_S, interval=0.05)
    assert isinstance(again, dict)
    assert again["argv"][-4:] == ["--preview-method", "taesd", "--cpu", "--disable-auto-launch"]

    # No folder: Studio's own ComfyUI is stopped and the client goes back to COMFYUI_URL.
    assert client.put("/api/settings", json={"comfyui_dir": ""}).status_code == 200
    shown = state_of(client, "unmanaged")
    assert shown["managed"] is False
    assert not psutil.pid_exists(again["pid"]) or psutil.Process(again["pid"]).status() == psutil.STATUS_ZOMBIE
    assert services.comfy.base_url == "http://127.0.0.1:9"
    refused = client.post("/api/comfyui/process/start", json={})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "comfyui_not_managed"

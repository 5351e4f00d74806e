"""The ``studio`` client commands as a script runs them: a real process, talking HTTP to a live Studio
(the ``runtime`` fixture on a free port) that drives the ComfyUI test server."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from studio.runtime import Runtime
from studio.services import Services
from tests.auth_helpers import make_token
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import png_bytes
from tests.servers.comfyui import ComfyUITestServer

CLIENT_PACKAGE = Path(__file__).parent.parent / "studio" / "client"


def cli_env(url: str | None, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "COMFYUI_", "DATABASE_URL"))}
    if url is not None:
        env["STUDIO_URL"] = url
    if token is not None:
        env["STUDIO_TOKEN"] = token
    return env


def studio(*args: str, url: str | None, token: str | None, cwd: Path,
           timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m studio ARGS`` with the address and token in the environment, as the docs advise; run
    in ``cwd/work`` (``cwd/studio`` is the live Studio's data folder, which ``-m studio`` would import)."""
    cwd = cwd / "work"
    cwd.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "studio", *args], env=cli_env(url, token), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def url_of(runtime: Runtime) -> str:
    return f"http://127.0.0.1:{runtime.port}"


def api(url: str, token: str, path: str) -> Any:
    answer = requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_client_package_imports_nothing_of_studios_services() -> None:
    """It must run on a laptop against a remote Studio: only studio.client and studio's version."""
    offending = []
    for path in CLIENT_PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.level == 0 else ["studio.client (relative)"]
                if node.module == "studio":
                    names = [f"studio.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("studio") and not (name.startswith("studio.client") or name == "studio.__version__"):
                    offending.append(f"{path.name}: {name}")
    assert offending == []


def test_a_workflow_run_with_wait_saves_the_real_output_and_only_one_job_is_made(
    app: Flask, client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,
    tmp_path: Path
) -> None:
    bob = signed_in_user(app, client, "bob")
    token = make_token(bob, "cli", scope="run")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((40, 30)))
    out = tmp_path / "saved"

    done = studio("run", "--workflow", "image-resize", "-p", f"image=@{photo}", "-p", "width=8", "-p", "height=6",
                  "--wait", "--out", str(out), url=url_of(runtime), token=token, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    [saved_line] = done.stdout.splitlines()  # stdout: only the saved file, for a script to read
    saved = Path(saved_line)
    assert saved.parent == out
    with Image.open(saved) as image:
        assert image.size == (8, 6)
    [job] = api(url_of(runtime), token, "/api/jobs")["items"]  # one run, one job, bob's
    assert job["owner_id"] == bob.get("/api/auth/me").get_json()["user"]["id"]
    [kept] = services.data_dir.outputs.rglob(f"{job['id']}/*.png")  # Studio's copy
    assert saved.read_bytes() == kept.read_bytes()
    made_by_comfy = next(comfy_server.worker.output_dir.rglob(f"*{job['id']}*/*.png"))
    assert saved.read_bytes() == made_by_comfy.read_bytes()
    assert "job " in done.stderr
    assert "completed" in done.stderr
    assert token not in done.stdout + done.stderr

    listed = studio("jobs", "--json", url=url_of(runtime), token=token, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [j["id"] for j in json.loads(listed.stdout)["items"]] == [job["id"]]
    shown = studio("jobs", "show", job["id"], url=url_of(runtime), token=token, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "completed" in shown.stdout
    assert saved.name in shown.stdout


def test_without_out_the_outputs_go_to_studio_outputs_per_job_and_nothing_is_overwritten(
    client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    token = make_token(client, "cli")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    args = ("run", "--workflow", "image-resize", "-p", f"image=@{photo}", "-p", "width=4", "-p", "height=4",
            "--count", "2", "--wait", "--json")
    done = studio(*args, url=url_of(runtime), token=token, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [job["status"] for job in answer["jobs"]] == ["completed", "completed"]
    for job, saved in zip(answer["jobs"], answer["files"], strict=True):
        assert Path(saved["path"]).parent == Path("studio-outputs") / job["id"]
        assert (tmp_path / "work" / saved["path"]).stat().st_size == saved["size"] > 0


class StudioProxy:
    """A proxy in front of Studio, as a flaky network or an older Studio would look: with
    ``drop_first_run`` it passes the first run request on, then hangs up without answering (the job
    exists, the client never heard); with ``no_events`` it has no events route (404 ``not_found``)."""

    def __init__(self, target: str, *, drop_first_run: bool = False, no_events: bool = False) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.keys: list[str | None] = []
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, content: bytes, content_type: str | None) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _relay(self) -> None:
                proxy.paths.append(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if no_events and self.path.split("?")[0].endswith("/events"):
                    error = {"error": {"code": "not_found", "message": "No such route."}}
                    self._send(404, json.dumps(error).encode(), "application/json")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, target + self.path, data=body, headers=headers, timeout=60,
                                          allow_redirects=False)
                if self.command == "POST" and self.path.endswith("/run"):
                    proxy.keys.append(self.headers.get("Idempotency-Key"))
                    if drop_first_run and len(proxy.keys) == 1:
                        self.close_connection = True
                        return  # Studio queued the job; the client gets no answer
                self._send(answer.status_code, answer.content, answer.headers.get("Content-Type"))

            do_GET = do_POST = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_run_whose_answer_was_lost_is_sent_again_and_still_makes_one_job(
    client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    token = make_token(client, "cli")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    proxy = StudioProxy(url_of(runtime), drop_first_run=True)
    try:
        done = studio("run", "--workflow", "image-resize", "-p", f"image=@{photo}", url=proxy.url, token=token,
                      cwd=tmp_path)
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr
    assert len(proxy.keys) == 2  # sent twice…
    assert proxy.keys[0] == proxy.keys[1]  # …with one Idempotency-Key
    assert proxy.keys[0]
    [job] = client.get("/api/jobs").get_json()["items"]  # …and Studio queued it once
    assert done.stdout.split() == [job["id"]]


def test_a_studio_without_the_events_route_is_followed_by_long_poll(
    client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    token = make_token(client, "cli")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    proxy = StudioProxy(url_of(runtime), no_events=True)
    try:
        done = studio("run", "--workflow", "image-resize", "-p", f"image=@{photo}", "--wait", "--out",
                      str(tmp_path / "out"), url=proxy.url, token=token, cwd=tmp_path)
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_file()
    assert any("?wait=30" in path for path in proxy.paths)


def test_exit_codes_tell_auth_not_found_bad_input_and_unreachable_apart(
    client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    url = url_of(runtime)
    token = make_token(client, "cli")["token"]
    wrong = "sst_" + "x" * 40

    bad_token = studio("jobs", url=url, token=wrong, cwd=tmp_path)
    assert bad_token.returncode == 3, bad_token.stderr
    assert wrong not in bad_token.stdout + bad_token.stderr
    assert studio("jobs", url=url, token=None, cwd=tmp_path).returncode == 3  # no token at all

    unknown_preset = studio("run", "no-such-preset", url=url, token=token, cwd=tmp_path)
    assert unknown_preset.returncode == 4, unknown_preset.stderr
    assert studio("run", "--workflow", "no-such-workflow", url=url, token=token, cwd=tmp_path).returncode == 4
    assert studio("jobs", "show", "0" * 8 + "-0000-4000-8000-" + "0" * 12, url=url, token=token,
                  cwd=tmp_path).returncode == 4

    bad_param = studio("run", "--workflow", "image-resize", "-p", "width=wide", "-p", "colour=red", url=url,
                       token=token, cwd=tmp_path)
    assert bad_param.returncode == 2, bad_param.stderr
    assert "colour" in bad_param.stderr  # the field Studio named is shown
    assert studio("run", "--workflow", "image-resize", "-p", "width", url=url, token=token,
                  cwd=tmp_path).returncode == 2  # no "=": refused before anything is sent
    assert studio("run", url=url, token=token, cwd=tmp_path).returncode == 2  # neither preset nor workflow
    assert studio("run", "--bogus-flag", url=url, token=token, cwd=tmp_path).returncode == 2
    assert client.get("/api/jobs").get_json()["items"] == []  # nothing above queued a job

    with socket_closed() as closed_url:
        unreachable = studio("jobs", url=closed_url, token=token, cwd=tmp_path)
    assert unreachable.returncode == 5, unreachable.stderr
    assert "did not answer" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


class socket_closed:  # noqa: N801 - used as a context manager, reads as a phrase
    """An address where nothing listens (a port bound, then released)."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_failed_job_exits_1_and_saves_nothing(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, tmp_path: Path
) -> None:
    comfy_server.fail_nodes["ImageScale"] = ("RuntimeError", "the scaler broke")
    token = make_token(client, "cli")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    done = studio("run", "--workflow", "image-resize", "-p", f"image=@{photo}", "--wait", "--out",
                  str(tmp_path / "out"), url=url_of(runtime), token=token, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "failed" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_job_not_finished_within_the_timeout_exits_1_and_goes_on(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, tmp_path: Path
) -> None:
    comfy_server.node_delays["ImageScale"] = 30.0
    token = make_token(client, "cli")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    done = studio("run", "--workflow", "image-resize", "-p", f"image=@{photo}", "--wait", "--timeout", "1",
                  url=url_of(runtime), token=token, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    [job] = client.get("/api/jobs").get_json()["items"]
    assert job["status"] in ("queued", "submitted", "running")
    assert f"job {job['id'][:8]} {job['status']}" in done.stderr
    assert done.stdout == ""
    client.post(f"/api/jobs/{job['id']}/cancel", json={})


def test_ctrl_c_while_waiting_exits_130_and_leaves_the_job_running(
    client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, tmp_path: Path
) -> None:
    comfy_server.node_delays["ImageScale"] = 30.0
    token = make_token(client, "cli")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "run", "--workflow", "image-resize", "-p", f"image=@{photo}", "--wait"],
        env=cli_env(url_of(runtime), token), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def running() -> Any:
            items = client.get("/api/jobs").get_json()["items"]
            return items and items[0]["status"] == "running"

        wait_until(running, timeout=15)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    [job] = client.get("/api/jobs").get_json()["items"]
    assert job["status"] == "running"  # the command stopped following; Studio did not stop the job
    client.post(f"/api/jobs/{job['id']}/cancel", json={})


def test_on_a_terminal_the_wait_shows_a_progress_bar(client: FlaskClient, runtime: Runtime, tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    token = make_token(client, "cli")["token"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    work = tmp_path / "work"
    work.mkdir()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a size
    try:
        done = subprocess.run(
            [sys.executable, "-m", "studio", "run", "--workflow", "image-resize", "-p", f"image=@{photo}", "--wait"],
            env=cli_env(url_of(runtime), token), cwd=work, stdout=subprocess.PIPE, stderr=follower,
            stdin=subprocess.DEVNULL, text=True, timeout=30)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 0
    text = shown.decode("utf-8", "replace")
    assert "100%" in text
    assert "\r" in text  # redrawn in place: a bar, not a line per update
    assert "job " not in text  # the plain lines are for logs, not terminals
    assert Path(done.stdout.strip()).is_absolute() or (work / done.stdout.strip()).is_file()


pytestmark = pytest.mark.timeout(60)

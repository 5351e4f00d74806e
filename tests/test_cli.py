"""The ``studio`` command as a person runs it: a real process, a real port."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from alembic.script import ScriptDirectory

from studio.db.migrate import MIGRATIONS_DIR
from tests.conftest import wait_until


def studio_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "COMFYUI_", "DATABASE_URL"))}
    env.update({"STUDIO_DIR": str(tmp_path / "data"), "COMFYUI_URL": "http://127.0.0.1:9", **extra})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_without_comfyui_creates_its_data_folder_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    secret = "civitai-secret-value-123456"
    admin_password = "first-boot-admin-password"
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "serve", "--port", str(port)],
        env=studio_env(tmp_path, CIVITAI_API_KEY=secret, STUDIO_ADMIN_PASSWORD=admin_password),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        def healthy() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                return False

        wait_until(healthy, timeout=30, interval=0.05)
        assert requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).status_code == 401
        browser = requests.Session()
        signed_in = browser.post(f"http://127.0.0.1:{port}/api/auth/login", timeout=5,
                                 json={"username": "admin", "password": admin_password})
        assert signed_in.status_code == 200, signed_in.text
        status = browser.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
        assert status["comfyui"]["reachable"] is False
        for folder in ("catalogs", "workflows", "presets", "assets/input", "assets/output/studio", "gallery",
                       "db", "llm", "logs"):
            assert (tmp_path / "data" / folder).is_dir(), folder
        assert (tmp_path / "data" / "db" / "studio.db").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    log_text = (tmp_path / "data" / "logs" / "studio.log").read_text()
    for value in (secret, admin_password):
        assert value not in output
        assert value not in log_text
    assert "created admin 'admin'" in log_text


def test_db_upgrade_and_doctor(tmp_path: Path) -> None:
    env = studio_env(tmp_path, HF_TOKEN="hf_thisisaverysecrettoken")
    upgraded = subprocess.run([sys.executable, "-m", "studio", "db", "upgrade"], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert f"database at revision {head}" in upgraded.stdout

    doctor = subprocess.run([sys.executable, "-m", "studio", "doctor"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert doctor.returncode == 1  # ComfyUI is not running
    assert '"check": "comfyui"' in doctor.stdout
    assert "hf_thisisaverysecrettoken" not in doctor.stdout
    assert "hf_t…oken" in doctor.stdout


def test_invalid_settings_exit_with_a_readable_message(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "studio", "db", "upgrade"],
                            env=studio_env(tmp_path, COMFYUI_URL="not-a-url"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "comfyui_url" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def test_user_create_from_the_command_line_and_key_rotation(tmp_path: Path) -> None:
    env = studio_env(tmp_path)
    created = subprocess.run([sys.executable, "-m", "studio", "user", "create", "root", "--admin", "--password-stdin"],
                             env=env, input="a long admin password\n", capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created admin root"
    weak = subprocess.run([sys.executable, "-m", "studio", "user", "create", "bob", "--password-stdin"],
                          env=env, input="short\n", capture_output=True, text=True, timeout=60)
    assert weak.returncode == 1
    assert "at least 10 characters" in weak.stderr

    secrets_dir = tmp_path / "data" / "secrets"
    key = secrets_dir / "session_signing_key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    before = key.read_text()
    subprocess.run([sys.executable, "-m", "studio", "rotate-session-key"], env=env, check=True, timeout=60,
                   capture_output=True)
    assert key.read_text() != before
    assert (secrets_dir / "session_signing_key.previous").read_text() == before

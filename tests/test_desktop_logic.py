"""The desktop launcher's parts that need no window: the one-window-per-data-folder lock (real
processes, a real control socket), remote mode's checks (against a real Studio, a foreign server
and a TLS server with a certificate nobody trusts), what the window remembers, and the
self-bootstrap (a real interpreter without pywebview, a real new virtual environment)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.desktop import bootstrap, remote
from studio.desktop.instance import LOCK_NAME, AlreadyRunning, Holder, InstanceLock
from studio.desktop.userfiles import Geometry, UserFiles
from studio.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
BASE_PYTHON = Path(sys._base_executable)  # the interpreter .venv was made from: no pywebview, no Studio


# -- the lock ------------------------------------------------------------------------------------------------

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from studio.desktop.instance import InstanceLock
lock = InstanceLock(Path(sys.argv[1]), lambda: print("focused", flush=True))
lock.acquire()
print("holding", flush=True)
sys.stdin.readline()
lock.release()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the folder, as a running window does."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(tmp_path)], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "holding"
    yield process
    with contextlib.suppress(BrokenPipeError):
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.close()
    process.wait(10)
    process.stdout.close()


def test_a_live_window_is_asked_to_the_front_and_keeps_its_lock(tmp_path: Path,
                                                                 holder: subprocess.Popen[str]) -> None:
    lock_file = tmp_path / LOCK_NAME
    before = lock_file.read_bytes()
    with pytest.raises(AlreadyRunning) as running:
        InstanceLock(tmp_path, lambda: None).acquire()
    assert running.value.holder.pid == holder.pid
    assert running.value.holder.focus() is True
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "focused"
    assert lock_file.read_bytes() == before  # not taken, not rewritten
    # Someone on this machine who cannot read the lock (0600) cannot make the window jump.
    forged = Holder(holder.pid, running.value.holder.cmdline, running.value.holder.port, "guessed")
    assert forged.focus() is False
    assert oct(lock_file.stat().st_mode & 0o777) == "0o600"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(10)
    return process.pid


@pytest.mark.parametrize("stale", ["dead pid", "pid reused by another program", "torn file"])
def test_a_stale_lock_from_a_crash_is_taken_over(tmp_path: Path, stale: str) -> None:
    lock_file = tmp_path / LOCK_NAME
    if stale == "torn file":
        lock_file.write_bytes(b'{"pid": 12')
    else:
        pid = dead_pid() if stale == "dead pid" else os.getppid()  # alive, but not a Studio window
        lock_file.write_text(json.dumps({"pid": pid, "cmdline": ["python", "launcher.py"], "port": 9,
                                         "token": "x"}))
    lock = InstanceLock(tmp_path, lambda: None)
    lock.acquire()
    try:
        assert json.loads(lock_file.read_bytes())["pid"] == os.getpid()
        assert lock.took_over is not None or stale == "torn file"
        with pytest.raises(AlreadyRunning):  # and now it is a live lock for the next launch
            InstanceLock(tmp_path, lambda: None).acquire()
    finally:
        lock.release()
    assert not lock_file.exists()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    lock = InstanceLock(tmp_path, lambda: None)
    lock.acquire()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "cmdline": [], "port": 9, "token": "other"}))
    lock.release()
    assert (tmp_path / LOCK_NAME).exists()


# -- remote checks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "origin"), [
    ("https://pod-8000.proxy.runpod.net/", "https://pod-8000.proxy.runpod.net"),
    ("pod-8000.proxy.runpod.net", "https://pod-8000.proxy.runpod.net"),
    ("  http://127.0.0.1:8000/gallery?x=1#y ", "http://127.0.0.1:8000"),
    ("http://[::1]:9000", "http://[::1]:9000"),
])
def test_addresses_are_reduced_to_an_origin(typed: str, origin: str) -> None:
    assert remote.normalize(typed) == origin


@pytest.mark.parametrize("typed", ["", "ftp://host", "https://user:pw@host", "http://host:99999", "https://",
                                   "x" * 3000, "javascript:alert(1)"])
def test_addresses_that_are_not_a_studio_address_are_refused(typed: str) -> None:
    with pytest.raises(remote.RemoteProblem) as problem:
        remote.normalize(typed)
    assert problem.value.code == "bad_url"


def test_the_supported_range_is_checked_at_both_ends() -> None:
    remote.check_version("0.1.0", "x")
    remote.check_version("0.9.12+local", "x")
    for version, code in (("0.0.9", "too_old"), ("garbage", "too_old"), ("1.0.0", "too_new"), ("12.3", "too_new")):
        with pytest.raises(remote.RemoteProblem) as problem:
            remote.check_version(version, "x")
        assert problem.value.code == code


def test_a_real_studio_passes_and_a_refused_token_is_named(runtime: Runtime, admin_token: str) -> None:
    origin = f"http://127.0.0.1:{runtime.port}"
    studio = remote.probe(origin + "/", token=admin_token)
    assert studio.origin == origin
    assert studio.host == f"127.0.0.1:{runtime.port}"
    with pytest.raises(remote.RemoteProblem) as problem:
        remote.probe(origin, token="sst_" + "x" * 30)
    assert problem.value.code == "token_refused"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    """HTTPS with a self-signed certificate: what a mistyped host or an intercepting proxy shows."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_is_named_and_never_accepted(tls_server: str) -> None:
    with pytest.raises(remote.RemoteProblem) as problem:
        remote.probe(tls_server, timeout_s=5)
    assert problem.value.code == "certificate"
    assert "certificate" in problem.value.message
    assert "self-signed" in problem.value.message


# -- what the window remembers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("saved", [None, [], "big", {"width": float("nan"), "height": 800},
                                   {"width": True, "height": 800}, {"width": 10**9, "height": 800},
                                   {"width": 100, "height": 800}, {"width": "1200", "height": "800"}])
def test_a_remembered_size_that_makes_no_sense_gives_the_default(saved: object) -> None:
    assert Geometry.parse(saved) == Geometry()


def test_size_place_and_recent_remotes_survive_a_restart(tmp_path: Path) -> None:
    files = UserFiles(tmp_path / "config", tmp_path / "data")
    files.save_geometry("local", Geometry(1000, 700, 5, -20))
    assert Geometry.parse({"width": 1000, "height": 700, "x": 5}) == Geometry(1000, 700)  # half a place: none
    for url in ("https://a", "https://b", "https://a"):
        files.remember_remote(url)
    again = UserFiles(tmp_path / "config", tmp_path / "data")
    assert again.geometry("local") == Geometry(1000, 700, 5, -20)
    assert again.geometry("remote") == Geometry()
    assert again.recent_remotes() == ["https://a", "https://b"]
    for index in range(20):
        again.remember_remote(f"https://pod-{index}")
    assert len(again.recent_remotes()) == 8
    assert again.recent_remotes()[0] == "https://pod-19"
    (tmp_path / "config" / "remotes.json").write_text("{not json")
    assert again.recent_remotes() == []
    assert oct((tmp_path / "config" / "window.json").stat().st_mode & 0o777) == "0o600"


def test_each_studio_gets_its_own_browser_profile(tmp_path: Path) -> None:
    files = UserFiles(tmp_path / "config", tmp_path / "data")
    local, one, other = files.profile_dir(None), files.profile_dir("http://127.0.0.1:1"), files.profile_dir(
        "http://127.0.0.1:2")
    assert len({local, one, other}) == 3  # cookies are per host, not per port: one profile each
    assert files.profile_dir("http://127.0.0.1:1") == one


# -- self-bootstrap ----------------------------------------------------------------------------------------------


def test_the_bootstrap_decides_from_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.delenv(bootstrap.MARK_ENV, raising=False)
    monkeypatch.delenv(bootstrap.VENV_ENV, raising=False)
    assert bootstrap.plan(checkout, []).action == "run"
    assert bootstrap.plan(checkout, ["webview"]) == bootstrap.Plan("install", checkout / ".venv-desktop")
    venv = checkout / ".venv-desktop"
    bootstrap.venv_python(venv).parent.mkdir(parents=True)
    bootstrap.venv_python(venv).symlink_to(sys.executable)
    assert bootstrap.plan(checkout, ["webview"]).action == "install"  # made, but never finished installing
    (venv / bootstrap.stamp_name(checkout)).touch()
    assert bootstrap.plan(checkout, ["webview"]).action == "enter"
    (checkout / "pyproject.toml").write_text("[project]\nname = 'x'\ndependencies = ['new']\n")
    assert bootstrap.plan(checkout, ["webview"]).action == "install"  # new requirements: install again
    monkeypatch.setenv(bootstrap.MARK_ENV, "1")
    failed = bootstrap.plan(checkout, ["webview"])
    assert failed.action == "fail"
    assert "webview" in failed.reason


def base_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("STUDIO_", "PYTEST_", "VIRTUAL_ENV", "PYTHONPATH"))}
    return {**env, **extra}


def test_a_ready_environment_is_entered_straight_away(tmp_path: Path) -> None:
    """The second run: the environment exists and is up to date, so the launcher restarts inside it
    at once (here: .venv, which has the desktop extra) without running pip."""
    venv = tmp_path / "venv"  # .venv under another name: its packages, its configuration
    bootstrap.venv_python(venv).parent.mkdir(parents=True)
    bootstrap.venv_python(venv).symlink_to(ROOT / ".venv" / "bin" / "python")
    (venv / "lib").symlink_to(ROOT / ".venv" / "lib")
    (venv / "pyvenv.cfg").write_bytes((ROOT / ".venv" / "pyvenv.cfg").read_bytes())
    (venv / bootstrap.stamp_name(ROOT)).touch()
    run = subprocess.run([str(BASE_PYTHON), str(ROOT / "launcher.py"), "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env=base_env(STUDIO_DESKTOP_VENV=str(venv)))
    assert run.returncode == 0, run.stderr
    assert f"[studio] starting inside {venv}" in run.stdout
    assert "--remote URL" in run.stdout  # the window's own arguments: it really runs in there now
    assert "installing" not in run.stdout


def test_a_fresh_machine_gets_its_own_environment_and_restarts_in_it(tmp_path: Path) -> None:
    """The first run, for real: a new virtual environment, pip installing this checkout into it,
    the restart inside. pip is told to install Studio alone (all its requirements and Qt WebEngine
    take minutes), so inside, pywebview is still missing: the launcher says so instead of installing
    again in a loop."""
    venv = tmp_path / "venv"
    run = subprocess.run([str(BASE_PYTHON), str(ROOT / "launcher.py")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env=base_env(STUDIO_DESKTOP_VENV=str(venv),
                                                   STUDIO_DESKTOP_PIP_ARGS="--no-deps --quiet"))
    assert f"[studio] creating a Python environment in {venv}" in run.stdout, run.stderr
    assert "[studio] installed" in run.stdout
    assert f"[studio] starting inside {venv}" in run.stdout
    assert run.returncode == 2
    assert "still lacks webview" in run.stderr
    assert (venv / bootstrap.stamp_name(ROOT)).exists()
    inside = subprocess.run([str(bootstrap.venv_python(venv)), "-c", "import studio; print(studio.__file__)"],
                            timeout=60, capture_output=True, text=True, env=base_env(), cwd=tmp_path).stdout
    assert inside.strip() == str(ROOT / "studio" / "__init__.py")  # editable: the checkout itself

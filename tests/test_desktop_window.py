"""The desktop window for real: pywebview's Qt backend under Xvfb, one window per process (a second
``webview.start()`` in one process crashes Qt), each process under its own X server.

Each window runs this file as a script (``drive``): it starts the launcher's own code with a
``ready`` callback that reports what the window shows and then obeys one JSON command per line on
stdin (run JavaScript in the page, take a screenshot, close), the way a person would look and click.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"
PASSWORD = "desktop-window-pw-1"  # a throwaway account in a throwaway data folder
WINDOW_TIMEOUT_S = 60.0



# -- the driver: runs inside the window's process ------------------------------------------------------


def drive(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from studio.desktop.main import add_arguments, launch, options_from
    from studio.desktop.window import Session

    def obey(session: Session) -> None:
        try:
            report = {"event": "ready", "mode": session.mode, "url": session.url, "problem": session.problem,
                      "title": session.window.title, "pid": os.getpid()}
            sys.stdout.write(json.dumps(report) + "\n")
            sys.stdout.flush()
            for line in sys.stdin:
                command = json.loads(line)
                if "close" in command:
                    break
                if "js" in command:  # run_js: Studio's CSP forbids the eval() that evaluate_js wraps code in
                    answer: Any = session.window.run_js(f"JSON.stringify({command['js']})")
                    answer = json.loads(answer) if isinstance(answer, str) else None
                elif "spawn" in command:  # a child of the window's process, as ComfyUI or llama-server is
                    answer = subprocess.Popen(command["spawn"], start_new_session=True).pid
                elif "shot" in command:
                    subprocess.run(["import", "-window", "root", command["shot"]], check=True, timeout=30)
                    answer = True
                sys.stdout.write(json.dumps({"answer": answer}) + "\n")
                sys.stdout.flush()
        finally:
            session.close()

    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return launch(options_from(parser.parse_args(argv)), ready=obey)


# -- the tests' side ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """A private X server; its display number comes back on a pipe (no guessing, no races).
    Xvfb and imagemagick come from ./dev.sh test (ensure_desktop); without them these tests fail."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1440x900x24", "-nolisten",
                               "tcp"], pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


class Window:
    """One window process, driven over its stdin/stdout."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("a") as errors:
            self.process = subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, env=env, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        self.ready = self._read()
        assert self.ready.get("event") == "ready", self.ready

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        answer: dict[str, Any] = {}
        done = threading.Event()

        def read() -> None:
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            answer.update(json.loads(line) if line else {"event": "exited"})
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(WINDOW_TIMEOUT_S):
            self.process.kill()
            pytest.fail(f"the window did not answer; its log:\n{self.log.read_text()[-3000:]}")
        if answer.get("event") == "exited":
            pytest.fail(f"the window's process ended; its log:\n{self.log.read_text()[-3000:]}")
        return answer

    def send(self, command: dict[str, Any]) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read().get("answer")

    def js(self, expression: str) -> Any:
        return self.send({"js": expression})

    def wait_js(self, expression: str, expected: Callable[[Any], bool], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.js(expression)
            if expected(value):
                return value
            time.sleep(0.1)
        pytest.fail(f"{expression} stayed {value!r}; the window's log:\n{self.log.read_text()[-3000:]}")

    def shot(self, name: str) -> Path:
        """The screen as a person sees it: X gets Qt's frames a little after the page changed, so
        shots are taken until two in a row are the same and show a painted page (many colours)."""
        from PIL import Image

        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"desktop-{name}.png"
        deadline = time.monotonic() + 20
        previous = b""
        while True:
            self.send({"shot": str(path)})
            with Image.open(path) as image:
                pixels = image.convert("RGB")
                colours, current = pixels.getcolors(maxcolors=1 << 16), pixels.tobytes()
            if (colours is None or len(colours) > 50) and current == previous:
                return path
            assert time.monotonic() < deadline, f"the window stayed blank or kept changing: {path}"
            previous = current
            time.sleep(0.2)

    def close(self) -> int:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write('{"close": true}\n')
            self.process.stdin.flush()
        return self.process.wait(WINDOW_TIMEOUT_S)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """The window's process and whatever it started (a window killed leaves Qt's processes)."""
        import psutil

        if self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self.process.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
            self.process.kill()
            self.process.wait(10)
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Callable[..., Window]]:
    """Starts windows under a private X server, with the person's folders inside tmp_path."""
    windows: list[Window] = []
    with xvfb() as display:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("STUDIO_", "PYTEST_"))}
        env.update(DISPLAY=display, XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "share"),
                   XDG_RUNTIME_DIR=str(tmp_path / "run"), QTWEBENGINE_DISABLE_SANDBOX="1",
                   STUDIO_DIR=str(tmp_path / "studio"), COMFYUI_URL=f"http://127.0.0.1:{closed_port()}",
                   STUDIO_ADMIN_PASSWORD=PASSWORD)
        (tmp_path / "run").mkdir(mode=0o700)

        def start(*args: str, log: str = "window", **extra: str) -> Window:
            window = Window(list(args), {**env, **extra}, tmp_path / f"{log}.log")
            windows.append(window)
            return window

        start.env = env  # type: ignore[attr-defined]
        try:
            yield start
        finally:
            for window in windows:
                window.kill()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sign_in(window: Window, username: str = "admin", password: str = PASSWORD) -> None:
    """Types into the sign-in page and presses its button, as a person does."""
    window.wait_js("document.title", lambda title: title == "Sign in · ComfyUI Studio")
    window.wait_js("!!document.querySelector('#signin-form button')", bool)
    window.js(f"(() => {{ document.getElementById('username').value = {json.dumps(username)};"
              f" document.getElementById('password').value = {json.dumps(password)};"
              " document.querySelector('#signin-form button').click(); return true; })()")


def in_studio(title: object) -> bool:
    """A page of the app itself (each page titles itself "<page> · ComfyUI Studio")."""
    return isinstance(title, str) and title.endswith("ComfyUI Studio") and not title.startswith(("Sign in", "Set up"))


def wait_live_home(window: Window) -> None:
    window.wait_js("document.title", in_studio)
    window.wait_js("document.getElementById('studio-indicator').dataset.state", lambda state: state == "connected")


def descendants(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def port_open(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split(":")
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
        return True
    return False


def test_local_window_shows_studio_focuses_on_a_second_launch_and_leaves_nothing_behind(
        desktop: Callable[..., Window], tmp_path: Path) -> None:
    window = desktop()
    assert window.ready["mode"] == "local"
    assert window.ready["title"] == "ComfyUI Studio — local"
    url = window.ready["url"]
    assert url.startswith("http://127.0.0.1:")
    sign_in(window)
    wait_live_home(window)
    shot = window.shot("local-home")
    assert shot.stat().st_size > 10_000
    sleeper = window.send({"spawn": ["sleep", "600"]})  # its own process group, as Studio starts ComfyUI
    children = descendants(window.process.pid)
    assert sleeper in children
    assert len(children) > 1, "Qt WebEngine runs in child processes"
    lock = tmp_path / "studio" / "desktop.lock"
    assert lock.exists()
    assert oct(lock.stat().st_mode & 0o777) == "0o600"

    # A second launch on the same data folder: the first window is asked to the front, no second Studio.
    second = subprocess.run([sys.executable, str(ROOT / "launcher.py")], cwd=ROOT, env=desktop.env,  # type: ignore[attr-defined]
                            capture_output=True, text=True, timeout=WINDOW_TIMEOUT_S)
    assert second.returncode == 0, second.stderr
    assert "already open" in second.stdout
    assert "a second launch asked for this window" in (tmp_path / "window.log").read_text()
    assert len(re.findall(r"desktop: Studio \S+ on http", (tmp_path / "studio/logs/studio.log").read_text())) == 1
    assert in_studio(window.js("document.title"))  # still showing, still signed in to the same Studio

    assert window.close() == 0, window.tail()
    assert not port_open(url), "the server stopped with the window"
    assert not [pid for pid in children if running(pid)], "every child of the window's process ended with it"
    assert not lock.exists()
    saved = json.loads((tmp_path / "config" / "comfyui-studio" / "window.json").read_text())
    assert saved["local"]["width"] >= 380


def test_a_start_that_fails_shows_the_log_and_its_path(desktop: Callable[..., Window], tmp_path: Path) -> None:
    # A database Studio cannot open: where its file should be there is a folder.
    (tmp_path / "studio" / "db" / "studio.db").mkdir(parents=True)
    window = desktop()
    assert window.ready["problem"] == "start_failed"
    assert window.js("document.querySelector('h1').textContent") == "Studio did not start"
    assert window.js("document.getElementById('log-file').textContent") == str(tmp_path / "studio/logs/studio.log")
    assert "OperationalError" in window.js("document.getElementById('problem').textContent")
    assert "unable to open database file" in window.js("document.getElementById('log-tail').textContent")
    window.shot("start-failed")
    assert window.close() == 0, window.tail()
    assert not (tmp_path / "studio" / "desktop.lock").exists()


# -- remote mode ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def remote_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second Studio, started as people start one on a pod: ``studio serve``. One for the module:
    each window that signs in to it keeps its cookies in its own test's folders."""
    tmp_path = tmp_path_factory.mktemp("remote")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STUDIO_", "PYTEST_"))}
    env.update(STUDIO_DIR=str(tmp_path / "remote"), STUDIO_ADMIN_PASSWORD=PASSWORD,
               COMFYUI_URL=f"http://127.0.0.1:{closed_port()}")
    log = tmp_path / "remote.log"
    with log.open("w") as errors:
        server = subprocess.Popen([str(Path(sys.executable).with_name("studio")), "serve", "--port", "0"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.monotonic() + WINDOW_TIMEOUT_S
        while not (found := re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield found[1]
    finally:
        server.terminate()
        server.wait(30)


def test_remote_sign_in_is_kept_for_the_next_start(desktop: Callable[..., Window], remote_studio: str,
                                                    tmp_path: Path) -> None:
    window = desktop("--remote", remote_studio)
    host = remote_studio.split("//")[1]
    assert window.ready["title"] == f"ComfyUI Studio — {host}"
    assert window.ready["url"] == remote_studio + "/"
    sign_in(window)
    wait_live_home(window)  # the remote's own session, CSRF and Origin rules: the live socket is accepted
    window.shot("remote-home")
    assert window.close() == 0, window.tail()

    again = desktop("--remote", remote_studio)
    wait_live_home(again)  # no sign-in page: the cookie was kept in this remote's profile
    assert again.js("document.cookie.includes('studio_session')") is False  # HttpOnly, as in any browser
    assert again.close() == 0, again.tail()
    recent = json.loads((tmp_path / "config" / "comfyui-studio" / "remotes.json").read_text())
    assert recent["recent"] == [remote_studio]


def test_remote_with_an_api_token_needs_no_sign_in(desktop: Callable[..., Window], remote_studio: str) -> None:
    import requests

    session = requests.Session()
    signed = session.post(remote_studio + "/api/auth/login", json={"username": "admin", "password": PASSWORD},
                          headers={"Origin": remote_studio}, timeout=10).json()
    created = session.post(remote_studio + "/api/auth/tokens", json={"name": "desktop"}, timeout=10,
                           headers={"X-CSRF-Token": signed["csrf_token"], "Origin": remote_studio}).json()
    window = desktop("--remote", remote_studio, STUDIO_TOKEN=created["token"])
    wait_live_home(window)
    assert window.js("document.cookie") == ""  # nothing stored: the token came in a header, per request
    # The remote's pages get the window's bridge too; it refuses them (they could point the window anywhere).
    bridge = "window.pywebview && window.pywebview.api && window.pywebview.api.connect"
    if window.js(f"typeof ({bridge})") == "function":
        window.js(f"({bridge})('http://127.0.0.1:9').then((answer) => {{ window.bridgeAnswer = answer; }}) && true")
        assert window.wait_js("window.bridgeAnswer", bool) == {"error": "Not available on this page."}
    assert in_studio(window.js("document.title"))
    assert window.close() == 0, window.tail()
    assert created["token"] not in window.log.read_text()


class NotStudio(http.server.BaseHTTPRequestHandler):
    """A web server that is not a Studio (a ComfyUI on the wrong port, a router's page), or one whose
    health names a version this window does not support."""

    version = ""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        if self.version and self.path == "/api/health":
            body, kind = json.dumps({"ok": True, "version": self.version}).encode(), "application/json"
        else:
            body, kind = b"<html><body>Welcome to nginx</body></html>", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
        return


@contextlib.contextmanager
def web_server(version: str = "") -> Iterator[str]:
    handler = type("Handler", (NotStudio,), {"version": version})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_remote_shows_why(desktop: Callable[..., Window]) -> None:
    window = desktop("--remote", f"http://127.0.0.1:{closed_port()}")
    assert window.ready["problem"] == "unreachable"
    message = window.js("document.getElementById('problem').textContent")
    assert message.startswith("Cannot reach http://127.0.0.1:")
    assert "running" in message
    window.shot("remote-unreachable")
    assert window.close() == 0, window.tail()


def test_the_connect_screen_names_what_is_wrong_remembers_remotes_and_opens_one(
        desktop: Callable[..., Window], remote_studio: str, tmp_path: Path) -> None:
    import psutil

    from tests.conftest import wait_until

    config = tmp_path / "config" / "comfyui-studio"
    config.mkdir(parents=True)
    (config / "remotes.json").write_text(json.dumps({"recent": ["https://pod-8000.proxy.runpod.net"]}))
    # A phone-narrow window, as remembered from last time: the screen fits it without scrolling sideways.
    (config / "window.json").write_text(json.dumps({"remote": {"width": 390, "height": 844, "x": 0, "y": 0}}))
    with web_server() as nginx, web_server(version="0.0.3") as old, web_server(version="7.0.0") as new:
        window = desktop("--connect")
        assert window.ready["mode"] == "connect"
        window.wait_js("document.querySelectorAll('#recent button').length", lambda count: count == 1)
        assert window.js("document.querySelector('#recent button').textContent") == \
            "https://pod-8000.proxy.runpod.net"
        for url, expected in ((nginx, "it is not a ComfyUI Studio"), (old, "needs 0.1.0 or newer"),
                              (new, "newer than this window knows")):
            window.js(f"(() => {{ document.getElementById('url').value = {json.dumps(url)};"
                      " document.querySelector('#connect button').click(); return true; })()")
            window.wait_js("document.getElementById('status').textContent", lambda text, e=expected: e in text)
        assert window.js("window.innerWidth") == 390
        assert window.js("document.documentElement.scrollWidth <= window.innerWidth") is True
        window.shot("connect-not-studio")
        assert window.js("document.getElementById('status').className") == "problem"

    # A Studio: this window gives way to the launcher on that remote, in its own browser profile.
    window.js(f"(() => {{ document.getElementById('url').value = {json.dumps(remote_studio + '/')};"
              " document.querySelector('#connect button').click(); return true; })()")
    relaunched = psutil.Process(window.process.pid)
    wait_until(lambda: relaunched.cmdline()[-2:] == ["--remote", remote_studio], timeout=WINDOW_TIMEOUT_S)
    wait_until(lambda: json.loads((config / "remotes.json").read_text())["recent"][0] == remote_studio,
               timeout=WINDOW_TIMEOUT_S)  # it checked the remote and opened it
    window.kill()


if __name__ == "__main__":
    raise SystemExit(drive(sys.argv[1:]))

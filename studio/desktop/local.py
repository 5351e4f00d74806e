"""Local mode's Studio: served from this process on loopback at a free port, stopped with the
window, every child it started (llama-server, ComfyUI) stopped with it.

A workstation is not a pod: nobody else adopts a llama-server the window leaves behind, so the
window stops it rather than detaching as ``studio serve`` does on a restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import requests

from studio.config import Settings
from studio.paths import DataDir

if TYPE_CHECKING:
    from studio.runtime import Runtime
    from studio.services import Services

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 60.0
CHILD_GRACE_S = 5.0


class StartFailed(Exception):
    """Studio did not come up; the window shows this with the log's last lines."""


class LocalStudio:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = DataDir(settings.studio_dir)
        self.url: str | None = None
        self._runtime: Runtime | None = None
        self._services: Services | None = None
        self._settled = threading.Event()  # start() has finished, one way or the other
        self._state = threading.Lock()
        self._began = self._closing = False

    @property
    def log_file(self) -> Path:
        return self.data_dir.logs / "studio.log"

    def start(self) -> str:
        """Builds the services, upgrades the database, serves on 127.0.0.1 and waits for health."""
        from studio import __version__
        from studio.app import create_app
        from studio.cli import bootstrap_admin
        from studio.db import upgrade
        from studio.runtime import Runtime
        from studio.services import build_services

        with self._state:
            if self._closing:  # the window was closed before the start began: start nothing
                self._settled.set()
                raise StartFailed("the window was closed")
            self._began = True
        try:
            services = build_services(self.settings)
            self._services = services
            upgrade(services.engine)
            bootstrap_admin(services)
            runtime = Runtime(create_app(self.settings, services), services)
            self._runtime = runtime
            port = runtime.start_in_thread("127.0.0.1", 0)
            services.bus.publish("system/started", {"version": __version__, "port": port})
            self.url = f"http://127.0.0.1:{port}"
            log.info("desktop: Studio %s on %s (data in %s)", __version__, self.url, self.settings.studio_dir)
            wait_healthy(self.url, HEALTH_TIMEOUT_S)
            return self.url
        except StartFailed:
            raise
        except Exception as err:  # noqa: BLE001 - any failure of a start is shown in the window, with the log
            log.exception("desktop: Studio did not start")
            raise StartFailed(f"{err.__class__.__name__}: {err}") from err
        finally:
            self._settled.set()

    def stop(self) -> None:
        """Server, scheduler, listeners, then every child process still running."""
        with self._state:
            self._closing = True
            began = self._began
        if began:
            self._settled.wait(HEALTH_TIMEOUT_S + 30)  # a window closed during the start: let it finish first
        services, runtime = self._services, self._runtime
        if runtime is not None:
            runtime.services.llm.stop()  # only a running Studio can have started one
            runtime.stop()
        elif services is not None:
            services.engine.dispose()  # a start that failed half-way: nothing else runs
        stop_children()

    def last_log_lines(self, count: int = 80) -> list[str]:
        try:
            with self.log_file.open(encoding="utf-8", errors="replace") as handle:
                return [line.rstrip("\n") for line in deque(handle, maxlen=count)]
        except OSError:
            return []


def wait_healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            answer = requests.get(url + "/api/health", timeout=2)
            if answer.status_code == 200 and answer.json().get("ok") is True:
                return
            last = f"HTTP {answer.status_code}"
        except (requests.RequestException, ValueError) as err:
            last = err.__class__.__name__
        time.sleep(0.05)
    raise StartFailed(f"Studio did not answer {url}/api/health within {timeout_s:g} s ({last})")


def stop_children() -> None:
    """Whatever this process started and has not stopped (a ComfyUI, a llama-server, their own
    children): terminated, then killed after a grace period. Nothing outlives the window."""
    try:
        children = psutil.Process(os.getpid()).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            continue
    _gone, alive = psutil.wait_procs(children, timeout=CHILD_GRACE_S)
    for child in alive:
        try:
            log.warning("desktop: killing %s (pid %d), still running after %g s", child.name(), child.pid,
                        CHILD_GRACE_S)
            child.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=CHILD_GRACE_S)

"""The one llama-server Studio runs: start, stop, restart, health until ready, crash and restart
with backoff, and adoption of a server a previous Studio left running.

Each start gets a generation number; a watcher thread that belongs to an older generation does
nothing once a newer start or a stop happened, so a stop racing a crash never restarts anything.
A server that never became ready is not restarted (a bad model or flag would only fail again);
one that crashed after being ready is, up to ``MAX_RESTARTS`` within ``RESTART_WINDOW_S``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil
import requests
from pydantic import BaseModel, ConfigDict, Field

from studio.errors import Conflict, ServiceUnavailable
from studio.events import EventBus
from studio.llm import binary, process
from studio.logs import register_secret

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0)
MAX_RESTARTS = 5
RESTART_WINDOW_S = 600.0
STOP_GRACE_S = 10.0


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"  # spawned, loading its model
    READY = "ready"
    CRASHED = "crashed"
    RESTARTING = "restarting"  # crashed, waiting out its backoff before the next start
    STOPPING = "stopping"


class LaunchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=1024, description="a GGUF file in the LLM models folder")
    # Always passed: llama-server's own default is the model's full context, often more than fits.
    ctx_size: int = Field(4096, ge=256, le=1_048_576)
    gpu_layers: int = Field(99, ge=0, le=10_000, description="layers on the GPU (0: CPU only)")
    threads: int | None = Field(None, ge=1, le=512)
    parallel: int = Field(1, ge=1, le=64, description="slots: chats answered at the same time")
    mmproj: str | None = Field(None, max_length=1024, description="a vision model's projector file")


class LlamaServer:
    def __init__(self, folder: Path, models_dirs: list[Path], bus: EventBus, binary_setting: Callable[[], str | None],
                 port_setting: Callable[[], int], *, load_timeout_s: float = 300.0) -> None:
        self.folder = folder
        # Downloads land in the first (the models root's llm/ folder); an existing volume's files are
        # in STUDIO_DIR/llm/models.
        self.models_dirs = models_dirs
        self.logs_dir = folder / "logs"
        self.bus = bus
        self.binary_setting = binary_setting
        self.port_setting = port_setting
        self.load_timeout_s = load_timeout_s
        self._lock = threading.RLock()
        self._generation = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._process: psutil.Process | None = None
        self._stopped = threading.Event()  # set by stop()/detach(): watchers end, backoffs are cut short
        self._restarts: list[float] = []
        self.key: str | None = None
        self.port: int | None = None
        self.config: LaunchConfig | None = None
        self.state = State.STOPPED
        self.adopted = False
        self.started_at: str | None = None
        self.ready_at: str | None = None
        self.last_error: str | None = None
        self.http = requests.Session()  # kept-alive connections: the proxy adds no handshake per chat

    # -- what is running --------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else (self._process.pid if self._process else None)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upstream(self) -> tuple[str, dict[str, str]]:
        """Where a chat goes, or 503 in words when no model is ready."""
        with self._lock:
            if self.state is not State.READY or self.port is None or self.key is None:
                why = {State.STARTING: "the model is still loading", State.RESTARTING: "it crashed and is restarting",
                       State.CRASHED: "it crashed"}.get(self.state, "no model is running")
                raise ServiceUnavailable(f"The LLM cannot answer now: {why}. Start a model on the LLM page.",
                                         code="llm_not_ready")
            return self.base_url, {"Authorization": f"Bearer {self.key}"}

    def status(self, *, full: bool = True) -> dict[str, Any]:
        with self._lock:
            answer: dict[str, Any] = {"state": self.state.value, "model": self.config.model if self.config else None,
                                      "ready_at": self.ready_at, "last_error": self.last_error}
            if not full:
                return answer
            found = binary.find(self.binary_setting())
            build = None
            if found is not None:
                try:
                    inspected = binary.inspect(found)
                    build = {"path": str(found), "version": inspected.version, "router": inspected.router}
                except OSError as err:
                    build = {"path": str(found), "error": str(err)[:200]}
            return {**answer, "pid": self.pid, "port": self.port, "adopted": self.adopted,
                    "started_at": self.started_at,
                    "config": self.config.model_dump() if self.config else None, "binary": build,
                    "restarts": len(self._restarts), "models": process.local_models(self.models_dirs)}

    def _set(self, state: State, error: str | None = None) -> None:
        self.state = state
        if error is not None:
            self.last_error = error
        self.bus.publish("llm/server", self.status(full=False))

    # -- start and stop ----------------------------------------------------------------------------------

    def _argv(self, found: Path, config: LaunchConfig, port: int, key_file: Path) -> list[str]:
        build = binary.inspect(found)
        argv = [str(found), "-m", str(process.model_path(self.models_dirs, config.model)), "--host", "127.0.0.1",
                "--port", str(port), "-c", str(config.ctx_size), "-ngl", str(config.gpu_layers),
                "-np", str(config.parallel)]
        if config.threads:
            argv += ["-t", str(config.threads)]
        if config.mmproj:
            argv += ["--mmproj", str(process.model_path(self.models_dirs, config.mmproj, field="mmproj"))]
        if build.no_webui:
            argv.append("--no-webui")  # Studio is the interface; nothing else on the box should chat unasked
        if build.api_key_file:
            argv += ["--api-key-file", str(key_file)]
        return argv

    def start(self, config: LaunchConfig, *, after_crash: bool = False) -> dict[str, Any]:
        """Spawns the server (a running one is stopped first); readiness is watched in the background."""
        if not after_crash:
            self._restarts = []  # a person's start begins the count of crashes again
        found = binary.find(self.binary_setting())
        if found is None:
            raise ServiceUnavailable("llama-server was not found: set its path in Settings (LLM server binary), or "
                                     "install it (the container has it at /opt/llama-server).",
                                     code="llm_binary_missing")
        process.model_path(self.models_dirs, config.model)  # a clear 400/404 before anything stops
        if config.mmproj:
            process.model_path(self.models_dirs, config.mmproj, field="mmproj")
        self.stop()
        with self._lock:
            port = process.choose_port(self.port_setting())
            self.folder.mkdir(parents=True, exist_ok=True)
            key, key_file = process.api_key(self.folder)
            register_secret(key)
            argv = self._argv(found, config, port, key_file)
            log_fd = process.open_log(self.logs_dir)
            try:
                child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                                         start_new_session=True, close_fds=True)
            except OSError as err:
                raise ServiceUnavailable(f"llama-server could not be started: {err}", code="llm_start_failed") from err
            finally:
                os.close(log_fd)  # the child has its own copy
            self._generation += 1
            self._stopped = threading.Event()
            self.http.close()
            self.http = requests.Session()  # no kept-alive connection to a server that is gone
            self._child, self._process = child, psutil.Process(child.pid)
            self.key, self.port, self.config, self.adopted = key, port, config, False
            self.started_at, self.ready_at, self.last_error = datetime.now(UTC).isoformat(), None, None
            process.write_record(self.folder, {"pid": child.pid, "argv": argv, "port": port,
                                               "config": config.model_dump(), "started_at": self.started_at})
            self._set(State.STARTING)
            self._watch(self._generation)
            log.info("llm: llama-server started (pid %s, port %s, %s)", child.pid, port, config.model)
            return self.status()

    def stop(self) -> dict[str, Any]:
        with self._lock:
            self._generation += 1
            self._stopped.set()
            child, running = self._child, self._process
            self._child = self._process = None
            if running is None:
                if self.state is not State.STOPPED:
                    self._set(State.STOPPED)
                return self.status()
            self._set(State.STOPPING)
        try:
            running.terminate()
            running.wait(STOP_GRACE_S)
        except psutil.TimeoutExpired:
            running.kill()
        except psutil.Error:
            pass
        if child is not None:
            child.wait()  # reaped: no zombie left behind
        with self._lock:
            process.drop_record(self.folder)
            self.port = None
            self._set(State.STOPPED)
        log.info("llm: llama-server stopped")
        return self.status()

    def detach(self) -> None:
        """Studio stops, the server goes on: the next Studio adopts it."""
        with self._lock:
            self._generation += 1
            self._stopped.set()

    def adopt(self) -> bool:
        """On Studio's start: a server recorded by an earlier Studio, still running with the same
        command line, is taken over instead of being started a second time."""
        record = process.read_record(self.folder)
        if record is None:
            return False
        found = process.recorded_process(record)
        if found is None:
            process.drop_record(self.folder)  # gone, or its pid now belongs to another program
            return False
        try:
            config = LaunchConfig.model_validate(record.get("config") or {})
            key, _ = process.api_key(self.folder)
        except (ValueError, OSError):
            return False
        register_secret(key)
        with self._lock:
            self._generation += 1
            self._stopped = threading.Event()
            self._child, self._process = None, found
            self.key, self.port, self.config, self.adopted = key, int(record["port"]), config, True
            self.started_at, self.ready_at = str(record.get("started_at") or ""), None
            self._set(State.STARTING)
            self._watch(self._generation)
        log.info("llm: adopted the llama-server left running (pid %s, port %s)", found.pid, self.port)
        return True

    # -- watching ----------------------------------------------------------------------------------------

    def _watch(self, generation: int) -> None:
        threading.Thread(target=self._watch_loop, args=(generation,), name="llm-watch", daemon=True).start()

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def _exited(self) -> int | None:
        """The exit code once the server is gone (-1 when it was not Studio's child), else None."""
        if self._child is not None:
            return self._child.poll()
        running = self._process
        if running is None:
            return -1
        try:
            return None if running.is_running() and running.status() != psutil.STATUS_ZOMBIE else -1
        except psutil.Error:
            return -1

    def _healthy(self) -> bool:
        try:
            answer = self.http.get(f"{self.base_url}/health", timeout=2)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def _watch_loop(self, generation: int) -> None:
        stopped = self._stopped
        deadline = time.monotonic() + self.load_timeout_s
        was_ready = False
        while not stopped.is_set():
            with self._lock:
                if not self._current(generation):
                    return
                code = self._exited()
            if code is not None:
                self._crashed(generation, code, was_ready)
                return
            if not was_ready:
                if self._healthy():
                    with self._lock:
                        if not self._current(generation):
                            return
                        was_ready = True
                        self.ready_at = datetime.now(UTC).isoformat()
                        self._set(State.READY)
                    continue
                if time.monotonic() > deadline:
                    self.stop()
                    with self._lock:
                        self._set(State.CRASHED, f"The model did not load within {self.load_timeout_s:.0f} s.")
                    return
                stopped.wait(0.1)
            else:
                process.trim_log(self.logs_dir)
                stopped.wait(0.5)

    def _crashed(self, generation: int, code: int, was_ready: bool) -> None:
        tail = " | ".join(line for line in process.log_tail(self.logs_dir, 4) if line.strip())[-600:]
        with self._lock:
            if not self._current(generation):
                return
            child = self._child
            self._child = self._process = None
            if child is not None:
                child.wait()
            how = f"exited with code {code}" if code >= 0 else "was killed"
            error = f"llama-server {how}" + (f" while loading: {tail}" if not was_ready else f". Last lines: {tail}")
            now = time.monotonic()
            self._restarts = [at for at in self._restarts if now - at < RESTART_WINDOW_S]
            config = self.config
            if not was_ready or config is None or len(self._restarts) >= MAX_RESTARTS:
                process.drop_record(self.folder)
                self._set(State.CRASHED, error if was_ready or len(self._restarts) < MAX_RESTARTS
                          else f"{error} (restarted {MAX_RESTARTS} times in 10 minutes: given up)")
                log.warning("llm: %s", error)
                return
            delay = BACKOFF_S[min(len(self._restarts), len(BACKOFF_S) - 1)]
            self._restarts.append(now)
            stopped = self._stopped
            self._set(State.RESTARTING, f"{error}. Restarting in {delay:.0f} s.")
        log.warning("llm: %s; restarting in %.0f s", error, delay)
        if stopped.wait(delay):
            return  # stopped meanwhile: nothing is restarted
        with self._lock:
            if not self._current(generation):
                return
        try:
            self.start(config, after_crash=True)
        except Conflict as err:
            with self._lock:
                self._set(State.CRASHED, f"{error}; the restart failed: {err.message}")
        except Exception as err:  # noqa: BLE001 - shown on the page; nothing else is waiting on it
            with self._lock:
                self._set(State.CRASHED, f"{error}; the restart failed: {err}")

"""The ComfyUI Studio runs itself (when ``COMFYUI_DIR`` is set): start, readiness, supervision,
stop, restart on request, adoption of one an earlier Studio left running, and a ComfyUI someone
else started on the port used instead of a second one.

ComfyUI runs in its own session (``start_new_session``), so its process group holds it and
whatever it spawns; a stop signals the whole group (SIGTERM, then SIGKILL after a grace), and so
does the cleanup after a crash, because a grandchild left behind could still hold the port.

Each launch gets a generation number; a watcher of an older generation does nothing once a newer
launch or a stop happened, so a stop racing a crash never restarts anything. A ComfyUI that exits
before it ever answered (since a person's start) is not restarted: a missing package or a bad flag
would only fail again. One that crashed after answering is restarted with a growing pause, until
``CRASH_LOOP_EXITS`` exits within ``CRASH_LOOP_WINDOW_S``: then Studio stops trying and shows why.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil

from studio.comfyui_process import process
from studio.comfyui_process.launch import (
    LaunchOptions,
    answers_like_comfyui,
    argv,
    find_python,
    free_port,
    port_is_free,
)
from studio.comfyui_process.log import ComfyLog
from studio.errors import Conflict
from studio.events import EventBus
from studio.paths import DataDir

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
CRASH_LOOP_EXITS = 5
CRASH_LOOP_WINDOW_S = 600.0
STOP_GRACE_S = 10.0
TAIL_LINES = 20  # shown with a crash
EXTERNAL_PROBE_S = 2.0
EXTERNAL_MISSES = 3
RECORD_NAME = "comfyui-process.json"


class State(StrEnum):
    UNMANAGED = "unmanaged"  # no COMFYUI_DIR: ComfyUI is whatever COMFYUI_URL points at
    STOPPED = "stopped"
    STARTING = "starting"  # spawned, not answering yet
    READY = "ready"
    CRASHED = "crashed"  # exited; restarting after a pause
    CRASH_LOOP = "crash_loop"  # exited too often, or before it ever answered: given up
    EXTERNAL = "external"  # another program's ComfyUI on the port: used, never stopped
    STOPPING = "stopping"


class ComfyUIProcess:
    """The service: ``services.comfyui_process``. Other features use ``restart(reason)``, ``python``
    (the interpreter ComfyUI runs with, for installing a node pack's requirements) and
    ``comfyui_dir``."""

    def __init__(self, data_dir: DataDir, bus: EventBus, options: Callable[[], LaunchOptions],
                 on_url: Callable[[str | None], None], *, environment: Callable[[], dict[str, str]],
                 start_timeout_s: Callable[[], float], stop_grace_s: float = STOP_GRACE_S,
                 backoff_s: Sequence[float] = BACKOFF_S, probe_interval_s: float = 0.25) -> None:
        self.log = ComfyLog(data_dir.logs)
        self.record_path = data_dir.root / RECORD_NAME
        self.data_root = data_dir.root
        self.bus = bus
        self.options = options
        self.on_url = on_url
        self.environment = environment
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self.backoff_s = tuple(backoff_s)
        self.probe_interval_s = probe_interval_s
        self._lock = threading.RLock()
        self._restart_lock = threading.Lock()
        self._transition = threading.Lock()  # one start or stop at a time: never a start into a dying group
        self._generation = 0
        self._stopped = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._adopted: psutil.Process | None = None
        self._pgid: int | None = None
        self._exits: list[float] = []
        self._ever_ready = False
        self.state = State.STOPPED
        self.port: int | None = None
        self.argv: list[str] | None = None
        self.cwd: Path | None = None
        self.started_at: str | None = None
        self.ready_at: str | None = None
        self.last_error: str | None = None
        self.last_lines: list[str] = []
        self.restarts = 0

    # -- what the node-pack installer and the client need ------------------------------------------

    @property
    def comfyui_dir(self) -> Path | None:
        return self.options().comfyui_dir

    @property
    def python(self) -> Path:
        return find_python(self.options())

    @property
    def url(self) -> str | None:
        """Where ComfyUI answers when Studio manages it (or uses an external one on its port)."""
        with self._lock:
            if self.state is State.UNMANAGED or self.port is None:
                return None
            return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        if self._child is not None:
            return self._child.pid
        return self._adopted.pid if self._adopted is not None else None

    def status(self) -> dict[str, Any]:
        with self._lock:
            options = self.options()
            state = State.UNMANAGED if options.comfyui_dir is None and self.state is State.STOPPED else self.state
            return {
                "state": state.value, "managed": options.comfyui_dir is not None,
                "external": self.state is State.EXTERNAL, "url": self.url, "port": self.port, "pid": self.pid,
                "comfyui_dir": str(options.comfyui_dir) if options.comfyui_dir else None,
                "python": str(find_python(options)) if options.comfyui_dir else None,
                "argv": self.argv, "autostart": options.autostart, "started_at": self.started_at,
                "ready_at": self.ready_at, "last_error": self.last_error,
                "last_lines": self.last_lines if self.state in (State.CRASHED, State.CRASH_LOOP) else [],
                "restarts": self.restarts, "log_file": str(self.log.path),
            }

    def _set(self, state: State, error: str | None = None) -> None:
        self.state = state
        if error is not None:
            self.last_error = error
        self.bus.publish("comfyui/process", self.status())

    # -- start ---------------------------------------------------------------------------------------

    def start_background(self) -> None:
        """On Studio's start: nothing without COMFYUI_DIR; else the ComfyUI an earlier Studio left
        running is taken over, or one is started (unless autostart is off)."""
        options = self.options()
        with self._lock:
            if options.comfyui_dir is None:
                self.state = State.UNMANAGED  # nothing happened: no event at every start of a plain Studio
                return
            if self._adopt():
                return
        if options.autostart:
            self.start()
        else:
            with self._lock:
                self._set(State.STOPPED)

    def _running(self) -> bool:
        return self._child is not None or self._adopted is not None or self.state is State.EXTERNAL

    def start(self) -> dict[str, Any]:
        """A person's start (or Studio's own at boot): a running ComfyUI is left as it is."""
        with self._transition, self._lock:
            options = self.options()
            if options.comfyui_dir is None:
                raise Conflict("Studio does not run ComfyUI itself: set COMFYUI_DIR (or the ComfyUI folder in "
                               "Settings) to a ComfyUI checkout.", code="comfyui_not_managed")
            if self._running():
                return self.status()
            self._exits, self._ever_ready, self.last_lines = [], False, []
            self._launch(options)
            return self.status()

    def _launch(self, options: LaunchOptions) -> None:
        """Spawns ComfyUI (lock held); problems end in a state with its reason, never an exception,
        because Studio's own start and a crash's restart have nobody to raise to."""
        folder = options.comfyui_dir
        assert folder is not None
        self._generation += 1
        self._stopped = threading.Event()
        self.ready_at, self.last_error = None, None
        if not (folder / "main.py").is_file():
            self._set(State.CRASH_LOOP, f"There is no ComfyUI in {folder}: main.py is missing.")
            return
        port = options.port or free_port()
        url = f"http://127.0.0.1:{port}"
        if options.port and not port_is_free(port):
            if answers_like_comfyui(url):
                self._use_external(port)
                return
            self._set(State.CRASH_LOOP, f"Port {port} is taken by a program that is not ComfyUI. Stop it, or "
                      "choose another ComfyUI port (0: any free port).")
            return
        python = find_python(options)
        line = argv(options, python, port)
        try:
            fd = self.log.open_fresh()
        except OSError as err:
            self._set(State.CRASH_LOOP, f"ComfyUI's log {self.log.path} cannot be written: {err.strerror or err}.")
            return
        try:
            self.log.note(f"starting in {folder}: {shlex.join(line)}")
            child = subprocess.Popen(line, cwd=folder, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True, env=self.environment())
        except OSError as err:
            self.log.note(f"could not start: {err}")
            self._set(State.CRASH_LOOP, f"ComfyUI could not be started with {python}: {err.strerror or err}.")
            return
        finally:
            os.close(fd)  # the child has its own copy
        self._child, self._adopted, self._pgid = child, None, child.pid
        self.port, self.argv, self.cwd = port, line, folder
        self.started_at = datetime.now(UTC).isoformat()
        self._write_record({"pid": child.pid, "pgid": child.pid, "argv": line, "cwd": str(folder), "port": port,
                            "started_at": self.started_at})
        self.on_url(url)
        self._set(State.STARTING)
        log.info("comfyui: started (pid %s, port %s)", child.pid, port)
        self._watch(self._generation)

    def _use_external(self, port: int) -> None:
        self._child = self._adopted = None
        self._pgid = None
        self.port, self.argv, self.cwd = port, None, None
        self.started_at, self.ready_at = None, datetime.now(UTC).isoformat()
        self.on_url(f"http://127.0.0.1:{port}")
        self._set(State.EXTERNAL)
        log.info("comfyui: a ComfyUI already answers on port %s; using it instead of starting another", port)
        generation = self._generation
        threading.Thread(target=self._watch_external, args=(generation,), name="comfyui-external",
                         daemon=True).start()

    # -- the record: an earlier Studio's ComfyUI is adopted, not doubled ------------------------------

    def _write_record(self, record: dict[str, Any]) -> None:
        process.write_record(self.data_root, self.record_path, record)

    def _drop_record(self) -> None:
        self.record_path.unlink(missing_ok=True)

    def _adopt(self) -> bool:
        left = process.recorded_process(self.record_path)
        if left is None:
            self._drop_record()  # none, gone, or its pid now belongs to another program
            return False
        found, record = left
        port, pgid, line = int(record["port"]), int(record["pgid"]), list(record["argv"])
        self._generation += 1
        self._stopped = threading.Event()
        self._child, self._adopted, self._pgid = None, found, pgid
        self.port, self.argv, self.cwd = port, line, Path(str(record.get("cwd") or ""))
        self.started_at, self.ready_at, self.last_error = str(record.get("started_at") or ""), None, None
        self._exits, self._ever_ready = [], False
        self.on_url(f"http://127.0.0.1:{port}")
        self._set(State.STARTING)
        self.log.note(f"Studio restarted and took over the running ComfyUI (pid {found.pid})")
        log.info("comfyui: adopted the ComfyUI left running (pid %s, port %s)", found.pid, port)
        self._watch(self._generation)
        return True

    # -- stop and restart ------------------------------------------------------------------------------

    def stop(self) -> dict[str, Any]:
        with self._transition:
            return self._stop()

    def _stop(self) -> dict[str, Any]:
        with self._lock:
            if self.state is State.EXTERNAL:
                raise Conflict("This ComfyUI was started by someone else; Studio uses it but does not stop it.",
                               code="comfyui_external")
            self._generation += 1
            generation = self._generation
            self._stopped.set()
            child, adopted, pgid = self._child, self._adopted, self._pgid
            self._child = self._adopted = None
            self._pgid = None
            if child is None and adopted is None:
                if self.state not in (State.STOPPED, State.UNMANAGED, State.CRASH_LOOP):
                    self._set(State.STOPPED)
                return self.status()
            self._set(State.STOPPING)
        self.log.note("stopping: SIGTERM to its process group")
        process.end_group(pgid, child, adopted, grace_s=self.stop_grace_s, note=self.log.note)
        with self._lock:
            self._drop_record()
            if generation == self._generation:
                self._set(State.STOPPED)
        log.info("comfyui: stopped")
        return self.status()

    def restart(self, reason: str) -> None:
        """Stops Studio's ComfyUI and starts it again (a node pack was installed, a person asked).
        Raises Conflict when Studio does not run ComfyUI itself (no COMFYUI_DIR, or an external one)."""
        with self._restart_lock:
            with self._lock:
                if self.options().comfyui_dir is None:
                    raise Conflict("Studio does not run ComfyUI itself, so it cannot restart it: set COMFYUI_DIR.",
                                   code="comfyui_not_managed")
                if self.state is State.EXTERNAL:
                    raise Conflict("This ComfyUI was started by someone else; restart it where it was started.",
                                   code="comfyui_external")
            self.log.note(f"restart: {reason[:200]}")
            log.info("comfyui: restarting (%s)", reason[:200])
            self.stop()
            self.start()

    def reconfigure(self) -> None:
        """The Settings page changed something: a ComfyUI folder chosen starts one, a folder cleared
        stops Studio's, other changes restart it with the new command line."""
        options = self.options()
        with self._lock:
            state = self.state
            running_line, running_dir = self.argv, self.cwd
            port = self.port
        if options.comfyui_dir is None:
            if state in (State.UNMANAGED, State.STOPPED) and running_line is None:
                with self._lock:
                    self.state = State.UNMANAGED
                return
            if state is not State.UNMANAGED:
                if state is not State.EXTERNAL:
                    self.stop()
                with self._lock:
                    self.port = None
                    self._generation += 1
                    self._set(State.UNMANAGED)
                self.on_url(None)
            return
        if state is State.UNMANAGED:
            with self._lock:
                self._set(State.STOPPED)
            if options.autostart:
                self.start()
            return
        if state not in (State.STARTING, State.READY, State.CRASHED) or running_line is None:
            return
        wanted = argv(options, find_python(options), options.port or port or 0)
        if wanted != running_line or options.comfyui_dir != running_dir:
            threading.Thread(target=self.restart, args=("its settings changed",), name="comfyui-restart",
                             daemon=True).start()

    def shutdown(self) -> None:
        """Studio exits: its own ComfyUI is stopped with it (group and all); an external one is left."""
        with self._lock:
            if self.state in (State.EXTERNAL, State.UNMANAGED) or not self._running():
                self._generation += 1
                self._stopped.set()
                return
        self.stop()

    # -- watching --------------------------------------------------------------------------------------

    def _watch(self, generation: int) -> None:
        threading.Thread(target=self._watch_loop, args=(generation,), name="comfyui-watch", daemon=True).start()

    def _exit_code(self) -> int | None:
        """The exit code once ComfyUI is gone (-1 when it was not Studio's child), else None."""
        if self._child is not None:
            return self._child.poll()
        adopted = self._adopted
        if adopted is None:
            return -1
        try:
            return None if adopted.is_running() and adopted.status() != psutil.STATUS_ZOMBIE else -1
        except psutil.Error:
            return -1

    def _watch_loop(self, generation: int) -> None:
        stopped = self._stopped
        deadline = time.monotonic() + self.start_timeout_s()
        url = self.url or ""
        ready = False
        trimmed_at = time.monotonic()
        while not stopped.is_set():
            with self._lock:
                if generation != self._generation:
                    return
                code = self._exit_code()
            if code is not None:
                self._on_exit(generation, code, ready)
                return
            if ready:
                if time.monotonic() - trimmed_at > 5:
                    self.log.trim()
                    trimmed_at = time.monotonic()
                stopped.wait(0.2)
                continue
            if answers_like_comfyui(url):
                with self._lock:
                    if generation != self._generation:
                        return
                    ready = self._ever_ready = True
                    self.ready_at = datetime.now(UTC).isoformat()
                    self._set(State.READY)
                log.info("comfyui: answering on %s", url)
                continue
            if time.monotonic() > deadline:
                self._gave_up_waiting(generation)
                return
            stopped.wait(self.probe_interval_s)

    def _gave_up_waiting(self, generation: int) -> None:
        timeout = self.start_timeout_s()
        with self._lock:
            if generation != self._generation:
                return
        self.log.note(f"did not answer within {timeout:.0f} s: stopping it")
        self.stop()
        with self._lock:
            self.last_lines = self.log.tail(TAIL_LINES)
            self._set(State.CRASH_LOOP, f"ComfyUI did not answer within {timeout:.0f} s of its start, so Studio "
                      "stopped it. A first start can take long (COMFYUI_START_TIMEOUT_S); see the log.")

    def _on_exit(self, generation: int, code: int, was_ready: bool) -> None:
        with self._lock:
            if generation != self._generation:
                return
            child, pgid = self._child, self._pgid
            self._child = self._adopted = None
            self._pgid = None
            process.signal_group(pgid, signal.SIGKILL)  # a grandchild left behind could still hold the port
            if child is not None:
                child.wait()
            self._drop_record()
            how = f"exited with code {code}" if code >= 0 else "was killed"
            if code < -1:
                how = f"was killed by signal {-code}"
            self.log.note(f"ComfyUI {how}")
            self.last_lines = self.log.tail(TAIL_LINES)
            now = time.monotonic()
            self._exits = [at for at in self._exits if now - at < CRASH_LOOP_WINDOW_S] + [now]
            if not self._ever_ready:
                self._set(State.CRASH_LOOP, f"ComfyUI {how} before it ever answered, so Studio stopped trying. "
                          "Its last lines are below; fix the cause and press Start.")
                log.warning("comfyui: %s before it ever answered; not restarted", how)
                return
            if len(self._exits) >= CRASH_LOOP_EXITS:
                self._set(State.CRASH_LOOP, f"ComfyUI {how}: {len(self._exits)} exits within "
                          f"{CRASH_LOOP_WINDOW_S / 60:.0f} minutes, so Studio stopped trying. See its last lines.")
                log.warning("comfyui: crash loop (%s exits); not restarted", len(self._exits))
                return
            delay = self.backoff_s[min(len(self._exits) - 1, len(self.backoff_s) - 1)]
            self.restarts += 1
            stopped = self._stopped
            self._set(State.CRASHED, f"ComfyUI {how}{' while starting' if not was_ready else ''}. "
                      f"Restarting in {delay:g} s.")
        log.warning("comfyui: %s; restarting in %g s", how, delay)
        if stopped.wait(delay):
            return  # stopped meanwhile: nothing is restarted
        with self._lock:
            if generation != self._generation:
                return
            options = self.options()
            if options.comfyui_dir is None:
                return
            self._launch(options)

    def _watch_external(self, generation: int) -> None:
        stopped = self._stopped
        url = self.url or ""
        misses = 0
        while not stopped.wait(EXTERNAL_PROBE_S):
            if generation != self._generation:
                return
            misses = 0 if answers_like_comfyui(url) else misses + 1
            if misses >= EXTERNAL_MISSES:
                with self._lock:
                    if generation != self._generation:
                        return
                    self._generation += 1
                    self._set(State.STOPPED, "The ComfyUI someone else started on this port stopped answering. "
                              "Press Start to run Studio's own.")
                return

"""One window per data folder: a second launch brings the running window to the front instead of
starting a second Studio on the same database.

The running window holds ``STUDIO_DIR/desktop.lock`` (its pid, its command line, a loopback
control port and a random token, mode 0600). A second launch reads it: a live process with the same
command line is asked over the control port to show its window; anything else (the pid is gone, or
now belongs to another program after a crash and a reboot) is a stale lock and is taken over.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

LOCK_NAME = "desktop.lock"
LINE_LIMIT = 1024  # a control request is one short JSON line
CONTROL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Holder:
    """The process a lock names."""

    pid: int
    cmdline: list[str]
    port: int
    token: str

    @classmethod
    def parse(cls, raw: bytes) -> Holder | None:
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        pid, cmdline, port, token = (data.get(key) for key in ("pid", "cmdline", "port", "token"))
        if not (isinstance(pid, int) and pid > 0 and isinstance(port, int) and 0 < port < 65536):
            return None
        if not (isinstance(cmdline, list) and all(isinstance(part, str) for part in cmdline)):
            return None
        if not isinstance(token, str) or not token:
            return None
        return cls(pid, cmdline, port, token)

    def alive(self) -> bool:
        """The same program still runs under that pid (a pid is reused after a crash or reboot)."""
        try:
            return psutil.Process(self.pid).cmdline() == self.cmdline
        except (psutil.Error, OSError):
            return False

    def focus(self) -> bool:
        """Asks the running window to come to the front; False when it does not answer."""
        request = json.dumps({"action": "focus", "token": self.token}).encode() + b"\n"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=CONTROL_TIMEOUT_S) as conn:
                conn.sendall(request)
                return conn.makefile("rb").readline(LINE_LIMIT).strip() == b"ok"
        except OSError:
            return False


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


class AlreadyRunning(Exception):
    def __init__(self, holder: Holder) -> None:
        super().__init__(f"Studio's window is already open for this data folder (pid {holder.pid})")
        self.holder = holder


class InstanceLock:
    """Held for the life of the window. ``acquire`` raises ``AlreadyRunning`` when a live window
    holds the folder; ``release`` removes the lock only while it is still this process's."""

    def __init__(self, folder: Path, on_focus: Callable[[], None]) -> None:
        self.path = folder / LOCK_NAME
        self.on_focus = on_focus
        self.token = secrets.token_urlsafe(24)
        self._server: _ControlServer | None = None
        self.took_over: Holder | None = None  # the stale lock found at start, for the log

    def acquire(self) -> None:
        self._serve_control()
        record = self._record()
        for _attempt in range(5):
            if self._link(record):
                return
            try:
                found = self.path.read_bytes()
            except FileNotFoundError:
                continue  # its owner released it just now: try again
            holder = Holder.parse(found)
            if holder is not None and holder.alive():
                self._stop_control()
                raise AlreadyRunning(holder)
            # Stale: removed only if it is still the file we judged (another launch may have won).
            with contextlib.suppress(FileNotFoundError):
                if self.path.read_bytes() == found:
                    self.path.unlink()
                    self.took_over = holder
                    log.warning("desktop: took over a stale lock %s (pid %s is gone)", self.path,
                                holder.pid if holder else "unknown")
        self._stop_control()
        raise OSError(f"could not take the lock {self.path}")

    def _record(self) -> bytes:
        assert self._server is not None
        me = psutil.Process()
        return json.dumps({"pid": me.pid, "cmdline": me.cmdline(), "port": self._server.server_address[1],
                           "token": self.token}).encode()

    def _link(self, record: bytes) -> bool:
        """Creates the lock with its whole content at once: a hard link of a finished file fails
        when the lock exists, so a reader never sees a half-written one."""
        scratch = self.path.with_name(f".{LOCK_NAME}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(fd, record)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(scratch, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            scratch.unlink()

    def release(self) -> None:
        self._stop_control()
        with contextlib.suppress(FileNotFoundError):
            holder = Holder.parse(self.path.read_bytes())
            if holder is not None and holder.pid == os.getpid() and holder.token == self.token:
                self.path.unlink()

    def _serve_control(self) -> None:
        lock = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = CONTROL_TIMEOUT_S

            def handle(self) -> None:
                try:
                    message: Any = json.loads(self.rfile.readline(LINE_LIMIT))
                except (ValueError, OSError):
                    return
                if not isinstance(message, dict) or not isinstance(message.get("token"), str):
                    return
                if not hmac.compare_digest(message["token"], lock.token) or message.get("action") != "focus":
                    return
                log.info("desktop: a second launch asked for this window")
                lock.on_focus()
                self.wfile.write(b"ok\n")

        server = _ControlServer(("127.0.0.1", 0), Handler)
        self._server = server
        threading.Thread(target=server.serve_forever, name="desktop-control", daemon=True).start()

    def _stop_control(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

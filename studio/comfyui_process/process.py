"""The operating-system side of running ComfyUI: the environment it gets, its process group
(signalled as a whole: ComfyUI and everything it spawned), and the record that lets the next
Studio find a ComfyUI that an earlier one, killed hard, left running."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from studio.config import Settings
from studio.safepath import write_atomic

log = logging.getLogger(__name__)


def child_environment(settings: Settings | None = None) -> dict[str, str]:
    """Studio's environment minus its own settings: ComfyUI and its custom nodes (code from the
    internet, also while pip or an install.py runs) never see the admin password, the database URL
    or any token given to Studio."""
    own = {name.upper() for name in (type(settings) if settings is not None else Settings).model_fields}
    environment = {key: value for key, value in os.environ.items() if key.upper() not in own}
    environment["PYTHONUNBUFFERED"] = "1"  # its log lines reach the file as they happen
    return environment


def end_group(pgid: int | None, child: subprocess.Popen[bytes] | None, adopted: psutil.Process | None, *,
              grace_s: float, note: Callable[[str], None]) -> None:
    """SIGTERM to the whole group, a grace for everyone in it, then SIGKILL to what is left."""
    deadline = time.monotonic() + grace_s
    signal_group(pgid, signal.SIGTERM)
    try:
        if child is not None:
            child.wait(max(0.0, deadline - time.monotonic()))
        elif adopted is not None:
            adopted.wait(max(0.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        note(f"still running after {grace_s:.0f} s: SIGKILL")
    except psutil.Error:
        pass
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    signal_group(pgid, signal.SIGKILL)
    if child is not None:
        child.wait()  # reaped: no zombie left behind


def signal_group(pgid: int | None, sig: signal.Signals) -> None:
    if pgid is None or pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int | None) -> bool:
    if pgid is None or pgid <= 1:
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def write_record(root: Path, path: Path, record: dict[str, Any]) -> None:
    try:
        write_atomic(root, path, json.dumps(record).encode(), permissions=0o600)
    except OSError as err:
        log.warning("comfyui: could not write %s: %s", path, err)


def recorded_process(path: Path) -> tuple[psutil.Process, dict[str, Any]] | None:
    """The ComfyUI the record names if it still runs with the same command line as the leader of
    its own group; a pid reused by another program is not it."""
    try:
        record = json.loads(path.read_text())
        found = psutil.Process(int(record["pid"]))
        same = (found.cmdline() == list(record["argv"]) and found.status() != psutil.STATUS_ZOMBIE
                and os.getpgid(found.pid) == int(record["pgid"]) and isinstance(record["port"], int))
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    return (found, record) if same else None

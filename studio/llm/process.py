"""The parts of running llama-server that are about the operating system: ports, the model file,
the log file, the API key file and the record that lets a restarted Studio find its server again.

The server writes its log straight into a file (never a pipe to Studio), so it outlives a Studio
that crashes or restarts, and a new Studio can adopt it. Rotation is copy-and-truncate: the server
opened the file for appending, so truncating it under the running process is safe.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections import deque
from pathlib import Path
from typing import Any

import psutil

from studio.errors import BadRequest, Conflict, NotFound
from studio.safepath import name_problem

GGUF_MAGIC = b"GGUF"
LOG_NAME = "llama-server.log"
LOG_LIMIT_BYTES = 10 * 1024 * 1024
LOG_KEEP = 3
RECORD_NAME = "studio-server.json"  # not the original's instances.json: a different shape
KEY_NAME = "api-key"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(configured: int) -> int:
    if not configured:
        return free_port()
    if not port_is_free(configured):
        raise Conflict(f"Port {configured} is already in use by another program. Choose another LLM port in "
                       "Settings, or 0 for any free port.", code="port_in_use")
    return configured


def model_path(models_dirs: list[Path], name: str, *, field: str = "model") -> Path:
    """A GGUF file inside one of the models folders, by its name there (the first folder that has it);
    anything else is a clear 400 or 404."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        raise BadRequest("Name a model file from the LLM models folder.", fields={field: "required"})
    parts = name.replace("\\", "/").split("/")
    if len(parts) > 2 or any(name_problem(part) is not None for part in parts):
        raise BadRequest(f"{name[:80]!r} is not a file name in the LLM models folder.",
                         fields={field: "not a file name"})
    for folder in models_dirs:
        path = folder.joinpath(*parts)
        if not path.is_file() and not path.is_symlink():
            continue
        if path.is_symlink() or not path.resolve().is_relative_to(folder.resolve()):
            raise BadRequest("The model must be a file inside the LLM models folder.", fields={field: "outside"})
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise BadRequest(f"{name[:80]} is not a GGUF model file (llama-server runs only GGUF files).",
                                 code="not_gguf", fields={field: "not a GGUF file"})
        return path
    raise NotFound(f"There is no model file {name[:80]!r} in {', '.join(str(f) for f in models_dirs)}.",
                   code="model_not_found")


def local_models(models_dirs: list[Path]) -> list[dict[str, Any]]:
    """GGUF files in the models folders and one level of their subfolders (a name in two folders:
    the first wins, as for a start); mmproj files are a vision model's companions."""
    found: dict[str, dict[str, Any]] = {}
    for folder in models_dirs:
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.gguf"), *folder.glob("*/*.gguf")]):
            name = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file() or name in found:
                continue
            found[name] = {"file": name, "size": path.stat().st_size, "folder": str(folder),
                           "role": "mmproj" if "mmproj" in path.name.lower() else "model"}
    return sorted(found.values(), key=lambda item: item["file"].lower())


# -- the log ----------------------------------------------------------------------------------------


def open_log(folder: Path) -> int:
    """A fresh log for a new start, the previous ones kept as .1 … .3; a descriptor the child writes."""
    folder.mkdir(parents=True, exist_ok=True)
    current = folder / LOG_NAME
    for number in range(LOG_KEEP, 0, -1):
        older = folder / f"{LOG_NAME}.{number}"
        newer = folder / (LOG_NAME if number == 1 else f"{LOG_NAME}.{number - 1}")
        if newer.exists():
            newer.replace(older)
    return os.open(current, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                   0o600)


def trim_log(folder: Path) -> None:
    current = folder / LOG_NAME
    try:
        if current.stat().st_size <= LOG_LIMIT_BYTES:
            return
        (folder / f"{LOG_NAME}.1").write_bytes(current.read_bytes()[-LOG_LIMIT_BYTES:])
        os.truncate(current, 0)
    except OSError:
        return


def log_tail(folder: Path, lines: int) -> list[str]:
    current = folder / LOG_NAME
    try:
        with current.open("rb") as handle:
            handle.seek(max(0, current.stat().st_size - 256 * 1024))
            kept: deque[str] = deque(maxlen=lines)
            for raw in handle:
                kept.append(raw.decode("utf-8", "replace").rstrip("\n"))
    except OSError:
        return []
    return list(kept)


# -- the key and the record ------------------------------------------------------------------------


def api_key(folder: Path) -> tuple[str, Path]:
    """The key llama-server accepts, in a file only Studio's user can read; kept across restarts so
    an adopted server is still reachable."""
    path = folder / KEY_NAME
    if path.is_file() and not path.is_symlink():
        key = path.read_text().strip()
        if len(key) >= 32:
            return key, path
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, path


def write_record(folder: Path, record: dict[str, Any]) -> None:
    temporary = folder / f".{RECORD_NAME}.tmp"
    temporary.write_text(json.dumps(record))
    temporary.replace(folder / RECORD_NAME)


def read_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def drop_record(folder: Path) -> None:
    (folder / RECORD_NAME).unlink(missing_ok=True)


def recorded_process(record: dict[str, Any]) -> psutil.Process | None:
    """The recorded server if it still runs with the same command line; a reused pid is not it."""
    try:
        process = psutil.Process(int(record["pid"]))
        if process.cmdline() != list(record["argv"]) or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (KeyError, TypeError, ValueError, psutil.Error):
        return None

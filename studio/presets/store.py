"""Presets on disk: one JSON file each, ``STUDIO_DIR/presets/<id>.json``, in the original Studio's format.

Existing users' folders must load as they are, and a file Studio cannot use (hand-edited, cut short,
from a newer version) must never hide the others: it is listed with the reason instead. Everything
Studio does not know in a file is kept when Studio saves it. Files are re-read only when their size
or modification time changes, so listing presets costs a ``stat`` per file.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import jsonio, safepath

log = logging.getLogger(__name__)

PRESET_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Names of the routes beside ``/api/presets/<id>``: never an id, so ``PUT /api/presets/export`` is a 405.
RESERVED_IDS = frozenset({"export", "import"})
MAX_FILE_BYTES = 1024 * 1024
SUFFIX = ".json"
THUMBS = ".thumbs"


@dataclass(frozen=True)
class Problem:
    file: str
    reason: str

    def view(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


def id_problem(preset_id: object) -> str | None:
    if not isinstance(preset_id, str) or not PRESET_ID.match(preset_id):
        return "must be 1-64 letters, digits, '-' or '_'"
    if preset_id in RESERVED_IDS:
        return f"may not be {preset_id!r}, a name Studio's addresses use"
    return None


def _shape_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "is not a JSON object"
    workflow = data.get("workflow")
    if not isinstance(workflow, dict):
        return "has no \"workflow\" object"
    if not isinstance(workflow.get("workflow_id"), str) or not workflow["workflow_id"]:
        return "names no workflow (workflow.workflow_id)"
    if not isinstance(workflow.get("params", {}), dict):
        return "has workflow.params that is not an object"
    for key, kind in (("name", str), ("description", str), ("private", bool), ("overridable", list),
                      ("seed_policy", str), ("owner_id", int)):
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            return f"has a \"{key}\" that is not a {kind.__name__}"
    return None


def parse(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """A preset document from a file's bytes, or why it cannot be one."""
    if len(raw) > MAX_FILE_BYTES:
        return None, f"is larger than {MAX_FILE_BYTES // 1024} KiB"
    try:
        data = jsonio.loads(raw)
    except ValueError as err:  # JSONRefused, a syntax error, undecodable bytes
        return None, f"is not usable JSON ({err})"
    problem = _shape_problem(data)
    if problem:
        return None, problem
    return data, None


class PresetStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], dict[str, Any] | None, str | None]] = {}

    def _read(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        try:
            stat = path.lstat()
        except OSError as err:
            return None, f"cannot be read ({err.strerror})"
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path.name)
        if cached and cached[0] == key:
            return cached[1], cached[2]
        if not path.is_file() or path.is_symlink():
            found: tuple[dict[str, Any] | None, str | None] = (None, "is not a plain file")
        elif stat.st_size > MAX_FILE_BYTES:
            found = (None, f"is larger than {MAX_FILE_BYTES // 1024} KiB")
        else:
            try:
                with safepath.open_inside(self.folder, path, "rb") as handle:
                    found = parse(handle.read(MAX_FILE_BYTES + 1))
            except (OSError, safepath.UnsafePath) as err:
                found = (None, f"cannot be read ({err})")
        self._cache[path.name] = (key, *found)
        return found

    def load(self) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
        """Every usable preset by id (the file's name is its id) and every file that is not one."""
        presets: dict[str, dict[str, Any]] = {}
        problems: list[Problem] = []
        if not self.folder.is_dir():
            return presets, problems
        with self._lock:
            names = sorted(entry.name for entry in self.folder.iterdir() if entry.name.endswith(SUFFIX))
            for stale in set(self._cache) - set(names):
                del self._cache[stale]
            for name in names:
                preset_id = name[: -len(SUFFIX)]
                if id_problem(preset_id):
                    problems.append(Problem(name, "has a name that is not a usable preset id "
                                                  "(letters, digits, '-' or '_')"))
                    continue
                data, problem = self._read(self.folder / name)
                if data is None:
                    problems.append(Problem(name, problem or "cannot be read"))
                else:
                    presets[preset_id] = data
        return presets, problems

    def get(self, preset_id: str) -> dict[str, Any] | None:
        if id_problem(preset_id):
            return None
        path = self.folder / f"{preset_id}{SUFFIX}"
        if not path.exists():
            return None
        with self._lock:
            data, _ = self._read(path)
        return data

    def save(self, preset_id: str, data: dict[str, Any]) -> None:
        assert id_problem(preset_id) is None
        safepath.makedirs_durable(self.folder)
        body = jsonio.dumps({**data, "id": preset_id}, indent=2, ensure_ascii=False) + "\n"
        safepath.write_atomic(self.folder, self.folder / f"{preset_id}{SUFFIX}", body.encode())

    def delete(self, preset_id: str) -> None:
        assert id_problem(preset_id) is None
        safepath.unlink_inside(self.folder, self.folder / f"{preset_id}{SUFFIX}")
        safepath.unlink_inside(self.folder, self.thumbnail_path(preset_id))

    def thumbnail_path(self, preset_id: str) -> Path:
        return self.folder / THUMBS / f"{preset_id}.webp"

    def save_thumbnail(self, preset_id: str, data: bytes) -> None:
        safepath.makedirs_inside(self.folder, self.folder / THUMBS)
        safepath.write_atomic(self.folder, self.thumbnail_path(preset_id), data)

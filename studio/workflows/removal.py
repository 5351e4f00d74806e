"""Taking workflows out of the library: a user's folder removed from disk, a bundled one hidden.

Bundled workflows ship with Studio and come back with every update, so deleting one only hides it:
its id goes into ``STUDIO_DIR/workflows/.hidden.json`` (a dot name, never read as a workflow folder),
which survives restarts and updates, and restoring it takes the id out again.

A user's folder is removed without ever following a link: the walk to it goes through
``safepath`` (no component below the workflows folder may be a link), and a folder that is itself a
link loses only the link, never what it points to.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path

from studio import jsonio, safepath
from studio.errors import Conflict

log = logging.getLogger(__name__)

HIDDEN_FILE = ".hidden.json"
# A hand-edited file larger than this is not a list of ids: it is ignored rather than read.
MAX_HIDDEN_BYTES = 1024 * 1024


def read_hidden(user_dir: Path) -> frozenset[str]:
    """The bundled ids a person hid; a missing, unreadable or malformed file hides nothing."""
    try:
        with safepath.open_inside(user_dir, user_dir / HIDDEN_FILE) as handle:
            raw = handle.read(MAX_HIDDEN_BYTES + 1)
    except OSError:
        return frozenset()
    if len(raw) > MAX_HIDDEN_BYTES:
        log.warning("workflows/%s is too large to be a list of ids; nothing is hidden", HIDDEN_FILE)
        return frozenset()
    try:
        data = jsonio.loads(raw)
    except jsonio.JSONRefused:
        log.warning("workflows/%s is not usable JSON; nothing is hidden", HIDDEN_FILE)
        return frozenset()
    ids = data.get("hidden") if isinstance(data, dict) else None
    return frozenset(item for item in ids if isinstance(item, str)) if isinstance(ids, list) else frozenset()


def write_hidden(user_dir: Path, ids: set[str] | frozenset[str]) -> None:
    body = json.dumps({"hidden": sorted(ids)}, indent=2).encode()
    try:
        safepath.write_atomic(user_dir, user_dir / HIDDEN_FILE, body)
    except safepath.UnsafePath as err:
        raise Conflict(f"workflows/{HIDDEN_FILE} is reached through a link; Studio does not write through it.",
                       code="workflow_folder_unsafe") from err


def remove_folder(user_dir: Path, folder: Path) -> None:
    """Deletes ``folder`` (directly below ``user_dir``) and everything in it, never through a link."""
    if folder.parent != user_dir or safepath.name_problem(folder.name, reserve=0) is not None:
        raise Conflict(f"{folder} is not a folder of the workflow library; it is left alone.",
                       code="workflow_folder_unsafe")
    try:
        with safepath.parent_fd(user_dir, folder) as (fd, leaf):
            if fd is None:  # no openat (Windows): the chain was checked for links already
                if os.path.islink(leaf) or not os.path.isdir(leaf):
                    os.unlink(leaf)
                else:
                    shutil.rmtree(leaf)
                return
            mode = os.stat(leaf, dir_fd=fd, follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                shutil.rmtree(leaf, dir_fd=fd)  # the fd-based walk: links inside are removed, not followed
            else:
                os.unlink(leaf, dir_fd=fd)  # a link (or a file) where the folder was: only it goes
    except FileNotFoundError:
        return
    except OSError as err:
        log.warning("workflows/%s was not removed: %s", folder.name, err)
        raise Conflict(f"workflows/{folder.name} could not be removed ({err.strerror or type(err).__name__}).",
                       code="workflow_not_removed") from err

"""A finished job's files: found in ComfyUI's history, kept in ``assets/output/studio/<job>/``.

Whatever ComfyUI's history names (``../x.png``, another job's folder, an absolute path, a NUL),
the local copy is ``assets/output/studio/<job id>/<safe name>``: the last part of the name, cleaned,
made unique within the job. When ComfyUI writes into Studio's own output folder (the container
passes ``--output-directory``) and the file it names is inside this job's folder, it is used (or
copied) from there; anything else is fetched over ``/view``. Every step goes through
``studio.safepath`` from ``assets/output``, so a link planted anywhere below it is never followed.
Previews in ComfyUI's temp folder are left out.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from studio import safepath
from studio.comfy import ComfyClient
from studio.comfy.client import STREAM_CHUNK

log = logging.getLogger(__name__)

KINDS = {
    "png": "image", "jpg": "image", "jpeg": "image", "webp": "image", "bmp": "image", "avif": "image",
    "gif": "gif",
    "mp4": "video", "webm": "video", "mov": "video", "mkv": "video",
    "wav": "audio", "mp3": "audio", "flac": "audio", "ogg": "audio", "opus": "audio",
    "glb": "3d", "gltf": "3d", "obj": "3d", "ply": "3d", "stl": "3d", "fbx": "3d",
}
# Room for " (999)" and the ".part" of the download beside it, below the file system's 255 bytes.
MAX_NAME_BYTES = safepath.NAME_MAX - safepath.SUFFIX_ROOM - 16
MAX_OUTPUTS = 1000
# Control characters (C0, DEL, C1) and format characters (Unicode category Cf: the bidi overrides that
# make "spoof\u202egnp.exe" read "spoofexe.png", zero-width joiners, BOMs): never part of a kept name.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(text: str) -> str:
    return "".join(ch for ch in _UNSAFE.sub("", text) if unicodedata.category(ch) != "Cf")
IMAGE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
                Image.DecompressionBombError, Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Planned:
    """One output of the history: where ComfyUI says it is, and the name it gets in the job's folder."""

    node_id: str
    filename: str
    subfolder: str
    local_name: str


class Refused(ValueError):
    """An output that cannot be kept (its name has nothing usable left); the job says which."""


def files_in_history(entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(node id, {filename, subfolder, type}) for every saved file, previews excluded."""
    found = []
    outputs = entry.get("outputs")
    for node_id, ui in (outputs.items() if isinstance(outputs, dict) else []):
        if not isinstance(ui, dict):
            continue
        # Whatever the key ("images", "audio", "3d", …: each node type picks its own, and new ones
        # keep coming), a saved file is an item with a file name in ComfyUI's output folder.
        for items in ui.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and item.get("filename") and item.get("type", "output") == "output":
                    found.append((str(node_id)[:64], item))
    return found


def safe_name(raw: Any) -> str:
    """The last part of ``raw`` as a file name that can exist in any folder, or ``Refused``."""
    text = raw if isinstance(raw, str) else str(raw)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(text) else text
    text = _visible(unicodedata.normalize("NFC", text)).strip().strip(".").strip()
    if not text:
        raise Refused(f"ComfyUI named an output with nothing usable in it: {str(raw)[:80]!r}")
    stem, dot, extension = text.rpartition(".")
    if not dot or len(extension) > 16:
        stem, dot, extension = text, "", ""
    budget = MAX_NAME_BYTES - len(f"{dot}{extension}".encode())
    stem = stem.encode()[:budget].decode("utf-8", "ignore")
    name = f"{stem}{dot}{extension}".strip().strip(".") or "output"
    if safepath.name_problem(name) is not None:
        raise Refused(f"ComfyUI named an output that cannot be a file name: {str(raw)[:80]!r}")
    return name


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def plan(entry: dict[str, Any]) -> tuple[list[Planned], list[str]]:
    """Every output to keep with its unique local name, and why any could not be kept."""
    planned: list[Planned] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for index, (node_id, item) in enumerate(files_in_history(entry)):
        if index >= MAX_OUTPUTS:
            skipped.append(f"more than {MAX_OUTPUTS} outputs: the rest were not kept")
            break
        filename, subfolder = item.get("filename"), item.get("subfolder") or ""
        if not isinstance(filename, str) or not isinstance(subfolder, str):
            skipped.append(f"an output of node {node_id} has no file name")
            continue
        try:
            name = safe_name(filename)
        except Refused as err:
            skipped.append(str(err))
            continue
        stem, dot, extension = name.rpartition(".") if "." in name else (name, "", "")
        unique, counter = name, 2
        while unique.casefold() in taken:
            unique, counter = f"{stem} ({counter}){dot}{extension}", counter + 1
        taken.add(unique.casefold())
        planned.append(Planned(node_id, filename, subfolder, unique))
    return planned, skipped


def _claimed(outputs_root: Path, item: Planned) -> Path | None:
    """Where the file would be if ComfyUI shares Studio's output folder; None for a name that
    leaves it, is absolute, or could not be a path at all."""
    parts = [part for part in item.subfolder.split("/") if part] + [item.filename]
    if item.subfolder.startswith("/") or "\\" in item.subfolder or "\\" in item.filename:
        return None
    if any(safepath.name_problem(part, reserve=0) for part in parts):
        return None
    return outputs_root.joinpath(*parts)


def keep(comfy: ComfyClient, outputs_root: Path, job_id: str, item: Planned) -> Path:
    """The local copy of one output inside ``studio/<job id>/``: used in place, copied from inside the
    job's folder, or downloaded over ``/view``."""
    if safepath.name_problem(job_id) is not None:
        raise Refused(f"the job id {job_id[:40]!r} cannot be a folder name")
    job_dir = outputs_root / "studio" / job_id
    target = job_dir / item.local_name
    claimed = _claimed(outputs_root, item)
    if safepath.is_file_inside(outputs_root, target):
        if claimed == target or os.path.getsize(target) > 0:
            return target  # ComfyUI wrote it here itself, or an earlier attempt fetched it
    elif safepath.lexists_inside(outputs_root, target):  # a link, a folder: never written through or over
        raise Refused(f"{item.local_name} is already taken in the job's folder by something that is not a file")
    local = claimed if claimed is not None and claimed.parent.is_relative_to(job_dir) else None
    if local is not None and not safepath.is_file_inside(outputs_root, local) and os.path.lexists(local):
        # In the job's own folder but a link (or behind one): neither read here nor fetched, since a
        # ComfyUI sharing this folder would follow the link when asked for it over /view.
        raise Refused(f"{item.local_name}: ComfyUI's copy in the job's folder is reached through a link")
    safepath.makedirs_durable(outputs_root)
    # fsynced and renamed into place: after a power cut the job's output is whole or absent, never torn
    with safepath.atomic_file(outputs_root, target, temporary=job_dir / f".{item.local_name}.part") as handle:
        if local is not None and safepath.is_file_inside(outputs_root, local):
            with safepath.open_inside(outputs_root, local, "rb") as source:
                shutil.copyfileobj(source, handle, STREAM_CHUNK)
        else:
            with comfy.view(item.filename, subfolder=item.subfolder) as response:
                for chunk in response.iter_content(STREAM_CHUNK):
                    handle.write(chunk)
    return target


def describe(path: Path) -> dict[str, Any]:
    kind = KINDS.get(path.suffix.lower().lstrip("."), "file")
    width = height = None
    if kind in ("image", "gif"):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except IMAGE_ERRORS:
            log.warning("output %s is not a readable image", path.name)
    return {"kind": kind, "size": path.stat().st_size, "width": width, "height": height}

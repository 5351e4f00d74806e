"""A finished job's files: found in ComfyUI's history, fetched into ``assets/output/studio/<job>/``.

When ComfyUI writes into Studio's output folder (the container passes ``--output-directory``) the
files are already there; a remote ComfyUI's files are streamed over ``/view``. Previews in
ComfyUI's temp folder are left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from studio.comfy import ComfyClient
from studio.comfy.client import STREAM_CHUNK

log = logging.getLogger(__name__)

KINDS = {
    "png": "image", "jpg": "image", "jpeg": "image", "webp": "image", "bmp": "image",
    "gif": "gif",
    "mp4": "video", "webm": "video", "mov": "video", "mkv": "video",
    "wav": "audio", "mp3": "audio", "flac": "audio", "ogg": "audio", "opus": "audio",
}


def files_in_history(entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(node id, {filename, subfolder, type}) for every saved file, previews excluded."""
    found = []
    for node_id, ui in (entry.get("outputs") or {}).items():
        for key in ("images", "gifs", "videos", "video", "audio", "animated"):
            items = ui.get(key)
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and item.get("filename") and item.get("type", "output") == "output":
                    found.append((str(node_id), item))
    return found


def fetch(comfy: ComfyClient, outputs_root: Path, item: dict[str, Any]) -> Path:
    """The local copy of one output, downloading it when ComfyUI's folder is not ours."""
    subfolder = str(item.get("subfolder") or "")
    target = (outputs_root / subfolder / str(item["filename"])).resolve()
    if not target.is_relative_to(outputs_root.resolve()):
        raise ValueError(f"ComfyUI named an output outside the output folder: {subfolder}/{item['filename']}")
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with comfy.view(str(item["filename"]), subfolder=subfolder) as response, partial.open("wb") as handle:
        for chunk in response.iter_content(STREAM_CHUNK):
            handle.write(chunk)
    partial.replace(target)
    return target


def describe(path: Path) -> dict[str, Any]:
    kind = KINDS.get(path.suffix.lower().lstrip("."), "file")
    width = height = None
    if kind in ("image", "gif"):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError):
            log.warning("output %s is not a readable image", path.name)
    return {"kind": kind, "size": path.stat().st_size, "width": width, "height": height}

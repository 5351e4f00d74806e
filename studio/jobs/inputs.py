"""Input images: uploaded once, stored by content hash, sent to ComfyUI when a job needs them.

The stored name (``studio/<sha256 prefix>.<ext>``) is also the name LoadImage sees in ComfyUI's
input folder, so the same picture uploaded twice is one file and one ComfyUI upload. Every read and
write goes through ``studio.safepath`` from ``assets/input``: a link planted in the folder (the
``studio`` folder itself, a stored name, the temporary file) is never followed.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from studio import safepath
from studio.errors import BadRequest, Conflict, PayloadTooLarge

MAX_IMAGE_BYTES = 64 * 1024 * 1024
# Pillow's default limit, applied explicitly: more pixels than this is refused before anything decodes
# the picture (a small PNG can claim 50,000 x 50,000 pixels).
MAX_IMAGE_PIXELS = 89_478_485
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
SUBFOLDER = "studio"
# What Pillow can raise on a broken or hostile file, besides refusing it as unknown.
IMAGE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
                Image.DecompressionBombError, Image.DecompressionBombWarning)


def _read_image(data: bytes) -> tuple[str, tuple[int, int]]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, size = image.format or "", image.size
            if size[0] * size[1] > MAX_IMAGE_PIXELS:
                raise BadRequest(f"The image is too large ({size[0]} x {size[1]} pixels).",
                                 fields={"image": "too many pixels"})
            image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadRequest("The image is too large (too many pixels).", fields={"image": "too many pixels"}) from err
    except IMAGE_ERRORS as err:
        raise BadRequest("That file is not an image Studio can read.", fields={"image": "not an image"}) from err
    return kind, size


class InputStore:
    def __init__(self, folder: Path) -> None:
        self.root = folder
        self.folder = folder / SUBFOLDER

    def save(self, data: bytes) -> dict[str, object]:
        if len(data) > MAX_IMAGE_BYTES:
            raise PayloadTooLarge("Images up to 64 MiB can be used as inputs.")
        kind, size = _read_image(data)
        extension = FORMATS.get(kind)
        if extension is None:
            raise BadRequest(f"{kind or 'This'} images are not supported; use PNG, JPEG or WebP.",
                             fields={"image": "unsupported format"})
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest[:32]}.{extension}"
        path = self.folder / name
        created = not safepath.is_file_inside(self.root, path)
        if created:
            try:
                self._write(path, data)
            except safepath.UnsafePath as err:
                raise Conflict("Studio's input folder is reached through a link; nothing was written.",
                               code="unsafe_folder") from err
        return {"name": f"{SUBFOLDER}/{name}", "sha256": digest, "width": size[0], "height": size[1],
                "size": len(data), "created": created}

    def _write(self, path: Path, data: bytes) -> None:
        """Written beside its name and renamed into place; whatever was planted at either is replaced,
        never written through (the temporary name is created exclusively, without following links)."""
        safepath.makedirs_durable(self.root)  # the data folder's own folder: a link there is allowed
        with safepath.atomic_file(self.root, path, temporary=path.with_name(f".{path.name}.part")) as handle:
            handle.write(data)

    def path_of(self, name: str) -> Path | None:
        """The stored file for a parameter value, or None (also for anything that tries to escape)."""
        if not isinstance(name, str) or not name.startswith(f"{SUBFOLDER}/"):
            return None
        leaf = name.removeprefix(f"{SUBFOLDER}/")
        if safepath.name_problem(leaf, reserve=0) is not None:
            return None
        path = self.folder / leaf
        return path if safepath.is_file_inside(self.root, path) else None

    def open(self, name: str) -> IO[Any] | None:
        """The stored file, opened without following a link anywhere below ``assets/input``."""
        path = self.path_of(name)
        if path is None:
            return None
        try:
            return safepath.open_inside(self.root, path, "rb")
        except OSError:
            return None

    def read(self, name: str) -> bytes | None:
        handle = self.open(name)
        if handle is None:
            return None
        with handle:
            return handle.read()

    def exists(self, name: str) -> bool:
        return self.path_of(name) is not None

    def recent(self, limit: int = 50) -> list[dict[str, object]]:
        if not self.folder.is_dir() or self.folder.is_symlink():
            return []
        found = []
        for entry in os.scandir(self.folder):
            if entry.name.startswith(".") or entry.name.rsplit(".", 1)[-1] not in FORMATS.values():
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode):
                found.append((info.st_mtime, entry.name, info.st_size))
        found.sort(reverse=True)
        return [{"name": f"{SUBFOLDER}/{name}", "size": size} for _, name, size in found[:limit]]

"""Input images: uploaded once, stored by content hash, sent to ComfyUI when a job needs them.

The stored name (``studio/<sha256 prefix>.<ext>``) is also the name LoadImage sees in ComfyUI's
input folder, so the same picture uploaded twice is one file and one ComfyUI upload.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from studio.errors import BadRequest, PayloadTooLarge

MAX_IMAGE_BYTES = 64 * 1024 * 1024
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
SUBFOLDER = "studio"


class InputStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder / SUBFOLDER

    def save(self, data: bytes) -> dict[str, object]:
        if len(data) > MAX_IMAGE_BYTES:
            raise PayloadTooLarge("Images up to 64 MiB can be used as inputs.")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                kind, size = image.format or "", image.size
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise BadRequest("That file is not an image Studio can read.", fields={"image": "not an image"}) from err
        extension = FORMATS.get(kind)
        if extension is None:
            raise BadRequest(f"{kind or 'This'} images are not supported; use PNG, JPEG or WebP.",
                             fields={"image": "unsupported format"})
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest[:32]}.{extension}"
        path = self.folder / name
        created = not path.is_file()
        if created:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".part")
            temporary.write_bytes(data)
            temporary.replace(path)
        return {"name": f"{SUBFOLDER}/{name}", "sha256": digest, "width": size[0], "height": size[1],
                "size": len(data), "created": created}

    def path_of(self, name: str) -> Path | None:
        """The stored file for a parameter value, or None (also for anything that tries to escape)."""
        if not name.startswith(f"{SUBFOLDER}/"):
            return None
        path = (self.folder / name.removeprefix(f"{SUBFOLDER}/")).resolve()
        if not path.is_relative_to(self.folder.resolve()) or not path.is_file():
            return None
        return path

    def exists(self, name: str) -> bool:
        return self.path_of(name) is not None

    def recent(self, limit: int = 50) -> list[dict[str, object]]:
        if not self.folder.is_dir():
            return []
        files = sorted((p for p in self.folder.iterdir() if p.suffix.lstrip(".") in FORMATS.values()),
                       key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
        return [{"name": f"{SUBFOLDER}/{p.name}", "size": p.stat().st_size} for p in files]

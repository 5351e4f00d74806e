"""Preview pictures of local models, kept on disk: the Models page never waits for CivitAI's image
host, and never sends the browser there (which would tell CivitAI who looks at what).

CivitAI's bytes are not trusted: they are decoded with Pillow (a size limit against decompression
bombs), shrunk and written again as WebP, so what Studio serves is always an image it made itself.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_PIXELS = 64_000_000
LONG_SIDE = 384


class PreviewStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, sha256: str) -> Path | None:
        """The preview of this hash, when there is one (the name is checked: nothing else is reachable)."""
        if not SHA256.match(sha256):
            return None
        found = self.folder / f"{sha256}.webp"
        return found if found.is_file() and not found.is_symlink() else None

    def save(self, sha256: str, data: bytes) -> str | None:
        """Decodes ``data``, writes a WebP of at most ``LONG_SIDE`` pixels; the file's name, or None
        when the bytes are not an image Studio will decode."""
        if not SHA256.match(sha256):
            return None
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    return None
                image.seek(0)
                frame = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            return None
        frame.thumbnail((LONG_SIDE, LONG_SIDE))
        if self.folder.is_symlink():
            log.warning("previews folder %s is a link; not writing through it", self.folder)
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{sha256}.webp"
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                frame.save(out, "WEBP", quality=82)
            os.replace(temporary, self.folder / name)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            raise
        return name

    def remove(self, sha256: str) -> None:
        found = self.path(sha256)
        if found is not None:
            found.unlink(missing_ok=True)

"""What the window remembers between runs, kept in the person's own folders (not the data folder,
which a container or a second Studio may share): the window's size and place, the recent remotes,
and one browser profile (cookies, storage) per Studio the window has shown."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs

from studio.safepath import makedirs_durable, write_atomic

log = logging.getLogger(__name__)

APP_NAME = "comfyui-studio"
RECENT_LIMIT = 8
# Anything outside these is a corrupt file or a monitor that is gone: the default is used instead.
MIN_WIDTH, MIN_HEIGHT = 380, 600
MAX_EDGE = 16_384


@dataclass(frozen=True)
class Geometry:
    width: int = 1280
    height: int = 800
    x: int | None = None
    y: int | None = None

    @classmethod
    def parse(cls, raw: object) -> Geometry:
        """A remembered geometry, or the default when the file holds anything unexpected."""
        if not isinstance(raw, dict):
            return cls()
        width, height = _whole(raw.get("width"), MIN_WIDTH), _whole(raw.get("height"), MIN_HEIGHT)
        if width is None or height is None:
            return cls()
        x, y = _whole(raw.get("x"), -MAX_EDGE), _whole(raw.get("y"), -MAX_EDGE)
        if x is None or y is None:
            x = y = None  # a place half remembered is no place: the window manager chooses
        return cls(width, height, x, y)


def _whole(value: object, low: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not low <= value <= MAX_EDGE:
        return None
    return int(value)


class UserFiles:
    """The person's config folder (geometry, recent remotes) and data folder (browser profiles)."""

    def __init__(self, config_dir: Path | None = None, data_dir: Path | None = None) -> None:
        self.config_dir = config_dir or Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
        self.data_dir = data_dir or Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))

    def _read(self, name: str) -> Any:
        try:
            return json.loads((self.config_dir / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("desktop: ignoring unreadable %s: %s", name, err)
            return None

    def _write(self, name: str, value: Any) -> None:
        makedirs_durable(self.config_dir, mode=0o700)
        write_atomic(self.config_dir, self.config_dir / name, json.dumps(value, indent=2).encode(), permissions=0o600)

    def geometry(self, mode: str) -> Geometry:
        saved = self._read("window.json")
        return Geometry.parse(saved.get(mode) if isinstance(saved, dict) else None)

    def save_geometry(self, mode: str, geometry: Geometry) -> None:
        saved = self._read("window.json")
        saved = saved if isinstance(saved, dict) else {}
        saved[mode] = asdict(geometry)
        self._write("window.json", saved)

    def recent_remotes(self) -> list[str]:
        saved = self._read("remotes.json")
        urls = saved.get("recent") if isinstance(saved, dict) else None
        if not isinstance(urls, list):
            return []
        return [url for url in urls if isinstance(url, str) and len(url) <= 2048][:RECENT_LIMIT]

    def remember_remote(self, url: str) -> None:
        """Most recent first, each once."""
        recent = [url] + [known for known in self.recent_remotes() if known != url]
        self._write("remotes.json", {"recent": recent[:RECENT_LIMIT]})

    def forget_remote(self, url: str) -> None:
        self._write("remotes.json", {"recent": [known for known in self.recent_remotes() if known != url]})

    def profile_dir(self, origin: str | None) -> Path:
        """One browser profile per Studio: cookies are scoped by host, not port, so two Studios on
        127.0.0.1 sharing one profile would overwrite each other's session cookie."""
        name = "local" if origin is None else "remote-" + hashlib.sha256(origin.encode()).hexdigest()[:16]
        folder = self.data_dir / "desktop-profiles" / name
        makedirs_durable(folder, mode=0o700)
        return folder

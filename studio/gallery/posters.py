"""A video's poster frame, for its gallery thumbnails: PyAV when it is importable, else ``ffmpeg`` when it
is on PATH, else none (the grid keeps its ▶ placeholder).

PyAV is not a dependency: its wheel bundles FFmpeg (36 MB), more than a thumbnail is worth to everyone
who never saves a video; a container with ffmpeg installed, or a ``pip install av``, turns posters on.
Which decoder is used is decided once per process (``decoder``). Either way the frame is the first one
the file decodes to, its size is checked against the same pixel limit as every picture before it is
decoded (PyAV) or after (ffmpeg, which decodes in a separate process with a time limit), and the answer
is PNG bytes that ``studio.jobs.thumbnails.render`` then turns into the usual two WebP sizes.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from PIL import Image

from studio.jobs.outputs import IMAGE_ERRORS
from studio.jobs.thumbnails import MAX_PIXELS

log = logging.getLogger(__name__)

FFMPEG_TIMEOUT_S = 20.0
MAX_POSTER_BYTES = 64 * 1024 * 1024


class NoPoster(Exception):
    """This video gives no poster frame (no decoder here, unreadable, too large)."""


@functools.cache
def decoder() -> str | None:
    """"pyav", "ffmpeg" or None: what this machine can take a frame out of a video with."""
    if importlib.util.find_spec("av") is not None:
        return "pyav"
    return "ffmpeg" if shutil.which("ffmpeg") else None


def poster_png(path: Path) -> bytes:
    """The first frame of the video at ``path`` (a file Studio checked is inside its folder) as PNG bytes."""
    found = decoder()
    if found is None:
        raise NoPoster("neither PyAV nor ffmpeg is available")
    image = _with_pyav(path) if found == "pyav" else _with_ffmpeg(path)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _with_pyav(path: Path) -> Image.Image:
    import av  # optional: found by ``decoder``

    try:
        with av.open(str(path), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise NoPoster("the file has no video stream")
            width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
            if width * height > MAX_PIXELS:
                raise NoPoster(f"{width}x{height} pixels is more than a thumbnail is made of")
            frame: Any = next(container.decode(stream), None)
            if frame is None:
                raise NoPoster("the video has no frame")
            image: Image.Image = frame.to_image()
            return image
    except (av.FFmpegError, OSError, ValueError, StopIteration) as err:
        raise NoPoster(f"not a readable video ({type(err).__name__})") from err


def _with_ffmpeg(path: Path) -> Image.Image:
    command = [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{path}",
               "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NoPoster(f"ffmpeg did not give a frame ({type(err).__name__})") from err
    if done.returncode != 0 or not done.stdout or len(done.stdout) > MAX_POSTER_BYTES:
        raise NoPoster(f"ffmpeg did not give a frame (exit {done.returncode})")
    try:
        with Image.open(io.BytesIO(done.stdout), formats=("PNG",)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise NoPoster(f"{width}x{height} pixels is more than a thumbnail is made of")
            image.load()
            return image.copy()
    except IMAGE_ERRORS as err:
        raise NoPoster(f"ffmpeg's frame is not a readable picture ({type(err).__name__})") from err

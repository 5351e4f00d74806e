"""A job as a ZIP (job.json, its input images, its outputs), streamed as it is built.

Files are copied in chunks through a small buffer that the response drains after every chunk,
so a job with large videos never sits in memory. Media is stored, not compressed: PNG, JPEG and
MP4 are compressed already.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio import jsonio
from studio.safepath import open_inside

log = logging.getLogger(__name__)

CHUNK = 256 * 1024


class Drain:
    """A write-only file that hands out what was written since the last ``take``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def job_json(job: dict[str, Any]) -> bytes:
    """job.json as UTF-8 text a person can read, and valid whatever a stored value holds (a lone
    surrogate from an old job is written as its ``\\ud800`` escape; NaN as null)."""
    text = jsonio.dumps(job, indent=2, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return jsonio.dumps(job, indent=2, ensure_ascii=True).encode("ascii")


def stream_zip(job: dict[str, Any], files: list[tuple[str, Path, Path]]) -> Iterator[bytes]:
    """Yields the ZIP of ``job`` (as job.json) and ``files`` (archive name, the folder it must stay
    inside, path on disk). A file that is gone, or reached through a link, is left out."""
    sink = Drain()
    seen = {"job.json"}
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[call-overload]
        archive.writestr("job.json", job_json(job), compress_type=zipfile.ZIP_DEFLATED)
        yield sink.take()
        for name, root, path in files:
            if name in seen:
                continue
            try:
                source = open_inside(root, path, "rb")
            except OSError as err:
                log.warning("export of job %s: %s left out (%s)", job.get("id"), name, err.strerror or err)
                continue
            seen.add(name)
            with source, archive.open(name, mode="w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield sink.take()
    yield sink.take()

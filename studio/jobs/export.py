"""A job as a ZIP (job.json, its input images, its outputs), streamed as it is built.

Files are copied in chunks through a small buffer that the response drains after every chunk,
so a job with large videos never sits in memory. Media is stored, not compressed: PNG, JPEG and
MP4 are compressed already.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 256 * 1024


class _Drain:
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


def stream_zip(job: dict[str, Any], files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """Yields the ZIP of ``job`` (as job.json) and ``files`` (archive name, path on disk)."""
    sink = _Drain()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[call-overload]
        archive.writestr("job.json", json.dumps(job, indent=2, ensure_ascii=False),
                         compress_type=zipfile.ZIP_DEFLATED)
        yield sink.take()
        for name, path in files:
            with path.open("rb") as source, archive.open(name, mode="w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield sink.take()
    yield sink.take()

"""A selection of gallery items as one ZIP, streamed as it is built (the way a job's export is:
``studio.jobs.export``), with ``gallery.json`` saying what each file was made with. Media is stored,
not compressed (PNG, WebP and MP4 are compressed already); a file gone meanwhile is left out."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.jobs.export import (
    CHUNK,
    Drain,  # the same streaming sink History's export uses
    job_json,
)
from studio.safepath import open_inside

log = logging.getLogger(__name__)


def stream(manifest: dict[str, Any], files: list[tuple[str, Path, Path]]) -> Iterator[bytes]:
    sink = Drain()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[call-overload]
        archive.writestr("gallery.json", job_json(manifest), compress_type=zipfile.ZIP_DEFLATED)
        yield sink.take()
        for name, root, path in files:
            try:
                source = open_inside(root, path, "rb")
            except OSError as err:
                log.warning("gallery ZIP: %s left out (%s)", name, err.strerror or err)
                continue
            with source, archive.open(name, mode="w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield sink.take()
    yield sink.take()

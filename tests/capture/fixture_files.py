"""Reading and writing a capture's files: gzip with no timestamp (so a capture that did not change
is the same bytes), JSON sorted and compact, progress lines on stdout (the scripts are not tests,
so they print; ``T201`` would forbid ``print``)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any


def say(*parts: Any) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def gz_write(path: Path, data: bytes) -> None:
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as out:
        out.write(data)


def gz_json(path: Path) -> Any:
    return json.loads(gzip.decompress(path.read_bytes()))


def dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()

"""What durability costs: a small file written atomically (catalog, manifest, key) with the fsyncs
of ``studio.safepath.atomic_file`` against the same write and rename without them, and the fsync
of a finished download before its rename (``sync_inside``) per GB. Prints milliseconds per write
and seconds per GB; the data folder is a temporary one on the file system of ``--dir``."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio import safepath  # noqa: E402


def plain_write(root: Path, target: Path, data: bytes) -> None:
    """The same steps as ``write_atomic`` without any fsync: the baseline."""
    temporary = target.with_name(f".{target.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, target)


def timed(write: object, root: Path, count: int, data: bytes) -> list[float]:
    times = []
    for index in range(count):
        start = time.perf_counter()
        write(root, root / f"file-{index % 10}.json", data)  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=None, help="where to write (default: the system's temporary folder)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size-kb", type=int, default=16)
    parser.add_argument("--download-mb", type=int, default=256)
    args = parser.parse_args()
    data = os.urandom(args.size_kb * 1024)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        root = Path(folder)
        for name, write in (("no fsync", plain_write), ("atomic_file (fsync file + folder)", safepath.write_atomic)):
            times = timed(write, root, args.count, data)
            print(f"{name:36s} {args.size_kb} KB: p50 {statistics.median(times):7.2f} ms  "
                  f"p99 {sorted(times)[int(len(times) * 0.99) - 1]:7.2f} ms")
        part = root / "model.safetensors.part"
        with open(part, "wb") as handle:
            chunk = os.urandom(1024 * 1024)
            for _ in range(args.download_mb):
                handle.write(chunk)
        start = time.perf_counter()
        safepath.sync_inside(root, part)
        elapsed = time.perf_counter() - start
        print(f"fsync of a finished {args.download_mb} MB download before its rename: {elapsed:.2f} s "
              f"({elapsed / args.download_mb * 1024:.2f} s per GB still in the page cache)")


if __name__ == "__main__":
    main()

"""Download throughput: one large file over loopback through Studio's download manager (Range-capable
transfer, SHA-256 while streaming, atomic rename) versus curl. Prints MB/s, the ratio, and CPU
seconds per GB for each. The file is served by ``python -m http.server`` in a child process."""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.services import build_services  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0)
    size = int(parser.parse_args().gb * 1024**3)
    with tempfile.TemporaryDirectory() as root_name:
        root = Path(root_name)
        served = root / "served"
        served.mkdir()
        block = os.urandom(8 * 1024 * 1024)
        digest = hashlib.sha256()
        with (served / "big.safetensors").open("wb") as handle:
            written = 0
            while written < size:
                piece = block[: min(len(block), size - written)]
                handle.write(piece)
                digest.update(piece)
                written += len(piece)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                  cwd=served, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            url = f"http://127.0.0.1:{port}/big.safetensors"
            gb = size / 1024**3

            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(["curl", "-s", "-o", str(root / "curl.bin"), url], check=True)
            curl_s = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            curl_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            (root / "curl.bin").unlink()

            settings = Settings(studio_dir=root / "studio", comfyui_url="http://127.0.0.1:9",
                                studio_models_dir=root / "models")
            DataDir(settings.studio_dir).ensure()
            services = build_services(settings)
            upgrade(services.engine)
            services.downloads.margin = 0
            cpu_before = time.process_time()
            started = time.perf_counter()
            services.downloads.start()
            item = services.downloads.enqueue(url=url, dest="checkpoints", file_name="big.safetensors",
                                              expected_sha256=digest.hexdigest())
            while services.downloads.get(item["id"]).status.value not in ("completed", "failed"):
                time.sleep(0.02)
            studio_s = time.perf_counter() - started
            studio_cpu = time.process_time() - cpu_before
            result = services.downloads.get(item["id"])
            services.downloads.stop()
            assert result.status.value == "completed", result.error
            print(f"{gb:.1f} GB over loopback: curl {size / curl_s / 1e6:.0f} MB/s ({curl_cpu / gb:.2f} CPU-s/GB); "
                  f"Studio {size / studio_s / 1e6:.0f} MB/s ({studio_cpu / gb:.2f} CPU-s/GB, SHA-256 included); "
                  f"Studio/curl throughput {curl_s / studio_s:.2f}")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()

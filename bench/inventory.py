"""The model inventory: how long the background hasher takes per GB, and what listing a large
models folder costs a request (GET /api/models scans the folders and joins the hash cache).

Makes a throwaway models folder with ``--files`` small files plus one ``--gb`` file, then prints
hashing throughput and the p50/p95 of /api/models and /api/models/disk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.app import create_app  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.services import build_services  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root_name:
        root = Path(root_name)
        models = root / "models"
        for index in range(args.files):
            folder = models / ("loras", "checkpoints", "vae", "embeddings")[index % 4] / f"set{index % 37}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"model_{index}.safetensors").write_bytes(os.urandom(1024))
        big = models / "checkpoints" / "big.safetensors"
        block = os.urandom(8 * 1024 * 1024)
        with big.open("wb") as handle:
            for _ in range(int(args.gb * 1024**3) // len(block)):
                handle.write(block)
        settings = Settings(studio_dir=root / "studio", comfyui_url="http://127.0.0.1:9", studio_models_dir=models,
                            studio_admin_password="bench-password-123")
        DataDir(settings.studio_dir).ensure()
        services = build_services(settings)
        upgrade(services.engine)
        services.users.setup_admin("admin", "bench-password-123")
        started, cpu = time.perf_counter(), time.process_time()
        hashed = services.inventory.hash_pending()
        took, cpu_took = time.perf_counter() - started, time.process_time() - cpu
        size_gb = sum(f.size for f in services.models_root.scan()) / 1024**3
        print(f"hashed {hashed} files, {size_gb:.2f} GB in {took:.2f} s: {size_gb / took:.2f} GB/s, "
              f"{cpu_took / size_gb:.2f} CPU-s/GB")

        app = create_app(settings, services=services)
        client = app.test_client()
        token = client.post("/api/auth/login", json={"username": "admin", "password": "bench-password-123"},
                            headers={"Origin": "http://localhost"}).get_json()
        assert token is not None
        for path in ("/api/models", "/api/models/disk"):
            times = []
            for _ in range(30):
                started = time.perf_counter()
                answer = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.get_json()
            times.sort()
            print(f"GET {path} with {args.files + 1} files: p50 {statistics.median(times):.1f} ms, "
                  f"p95 {times[int(len(times) * 0.95) - 1]:.1f} ms")


if __name__ == "__main__":
    main()

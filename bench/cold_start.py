"""Cold start of ``studio serve``: process start (fresh data folder, migrations included) to the
first 200 from ``/api/health``. Prints min / median / max over several runs."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run() -> float:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "STUDIO_DIR": data, "COMFYUI_URL": "http://127.0.0.1:9"}
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                        return time.perf_counter() - started
                except requests.ConnectionError:
                    time.sleep(0.005)
                if process.poll() is not None:
                    raise SystemExit("studio serve exited early")
        finally:
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = sorted(one_run() for _ in range(parser.parse_args().runs))
    print(f"cold start to first /api/health 200 over {len(runs)} runs: "
          f"min {runs[0]*1000:.0f} ms, median {statistics.median(runs)*1000:.0f} ms, max {runs[-1]*1000:.0f} ms")


if __name__ == "__main__":
    main()

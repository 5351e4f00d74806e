"""Added latency of a ComfyUI round trip through ``studio.comfy`` versus raw ``requests``.

Both post the same prompt to ``/prompt`` on the ComfyUI test server over loopback. Prints p50 and
p99 for a bare ``requests.post`` (new connection each time), a ``requests.Session`` and
``ComfyClient.queue_prompt``."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.comfy import ComfyClient  # noqa: E402
from tests.servers.comfyui import ComfyUITestServer  # noqa: E402

PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench/rt"}},
}


def measure(name: str, call: Callable[[], object], count: int, server: ComfyUITestServer) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    requests.post(f"{server.url}/queue", json={"clear": True}, timeout=5)
    timings.sort()
    p50 = statistics.median(timings) * 1000
    p99 = timings[int(len(timings) * 0.99) - 1] * 1000
    print(f"{name:<34} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    count = parser.parse_args().count
    with tempfile.TemporaryDirectory() as root, ComfyUITestServer(Path(root)) as server:
        server.node_delays["EmptyImage"] = 3600  # keep the worker busy: measure the HTTP path alone
        session = requests.Session()
        client = ComfyClient(server.url)

        def body() -> dict:
            return {"prompt": PROMPT, "prompt_id": str(uuid.uuid4())}

        measure("warm-up", lambda: client.queue_prompt(PROMPT), 50, server)
        raw = measure("raw requests.post", lambda: requests.post(f"{server.url}/prompt", json=body(), timeout=10),
                      count, server)
        raw_session = measure("raw requests.Session().post",
                              lambda: session.post(f"{server.url}/prompt", json=body(), timeout=10), count, server)
        ours = measure("studio.comfy ComfyClient.queue_prompt", lambda: client.queue_prompt(PROMPT), count, server)
        added50 = (statistics.median(ours) - statistics.median(raw_session)) * 1000
        print(f"added by studio.comfy over a raw session: p50 {added50:+.2f} ms; "
              f"over bare requests.post: p50 {(statistics.median(ours) - statistics.median(raw)) * 1000:+.2f} ms")


if __name__ == "__main__":
    main()

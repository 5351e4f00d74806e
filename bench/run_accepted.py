"""Run-to-202 and SSE figures: how fast a run is accepted, and how fast progress reaches a follower.

1. ``POST /api/workflows/<id>/run`` → ``202`` p50/p99 with 50 jobs waiting (the queue paused, each
   new job cancelled after it is timed so the wait list stays at 50), without and with an
   ``Idempotency-Key`` (a new key each time, and the replay of one key).
2. SSE delivery latency: from the moment the ComfyUI test server emits a ``progress`` message to
   the moment a plain HTTP client following ``GET /api/jobs/<id>/events`` reads that step's event.
   Both ends are in this process, so one monotonic clock times them.

Runs Studio in this process against the ComfyUI test server; prints figures only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.jobs import _png, percentile, start  # noqa: E402

SAMPLER = {"positive_prompt": "a lighthouse at dusk", "checkpoint": "random_sd15.safetensors",
           "resolution": {"w": 64, "h": 64}}


def bench_accepted(session: requests.Session, base: str, count: int, waiting: int) -> None:
    image = session.post(f"{base}/api/inputs", files={"image": ("x.png", _png())}, timeout=10).json()["name"]
    body = {"params": {"image": image, "width": 8, "height": 8}}
    assert session.post(f"{base}/api/queue/pause", json={}, timeout=10).status_code == 200
    for _ in range(waiting):
        assert session.post(f"{base}/api/workflows/image-resize/run", json=body, timeout=10).status_code == 202

    def timed(headers: dict[str, str]) -> tuple[float, dict[str, Any], requests.Response]:
        started = time.perf_counter()
        answer = session.post(f"{base}/api/workflows/image-resize/run", json=body, headers=headers, timeout=10)
        took = time.perf_counter() - started
        assert answer.status_code == 202, answer.text
        return took, answer.json(), answer

    plain, keyed, replayed = [], [], []
    for _ in range(count):
        took, answer, _ = timed({})
        plain.append(took)
        session.post(f"{base}/api/jobs/{answer['items'][0]['id']}/cancel", json={}, timeout=10)  # stays at 50
        took, answer, _ = timed({"Idempotency-Key": str(uuid.uuid4())})
        keyed.append(took)
        session.post(f"{base}/api/jobs/{answer['items'][0]['id']}/cancel", json={}, timeout=10)
    key = {"Idempotency-Key": "bench-replay"}
    first = timed(key)[1]
    session.post(f"{base}/api/jobs/{first['items'][0]['id']}/cancel", json={}, timeout=10)
    for _ in range(count):
        took, _, answer = timed(key)
        assert answer.headers.get("Idempotent-Replayed") == "true"
        replayed.append(took)
    queue = session.get(f"{base}/api/queue", timeout=10).json()
    still = len(queue["queued"])
    print(f"POST /run → 202 with {waiting} jobs waiting ({count} each; {still} waiting at the end):")  # noqa: T201
    for name, values in (("no key", plain), ("new Idempotency-Key", keyed), ("replayed key", replayed)):
        print(f"  {name:<20} p50 {percentile(values, .5):6.2f} ms  p99 {percentile(values, .99):6.2f} ms")  # noqa: T201
    assert session.post(f"{base}/api/queue/cancel-waiting", json={}, timeout=10).status_code == 200
    assert session.post(f"{base}/api/queue/resume", json={}, timeout=10).status_code == 200


def bench_sse(session: requests.Session, base: str, comfy: Any, jobs: int, steps: int, step_delay_s: float) -> None:
    emitted: dict[tuple[str, int], float] = {}
    original = comfy.worker.emit

    def emit(event: str, data: Any, sid: str | None) -> None:
        if event == "progress" and isinstance(data, dict):
            emitted[(str(data.get("prompt_id")), int(data.get("value", 0)))] = time.monotonic()
        original(event, data, sid)

    comfy.worker.emit = emit
    comfy.step_delay_s = step_delay_s
    latencies: list[float] = []
    missed = 0
    for _ in range(jobs):
        answer = session.post(f"{base}/api/workflows/sd15-txt2img/run",
                              json={"params": {**SAMPLER, "steps": steps}}, timeout=10).json()
        job_id = answer["items"][0]["id"]
        received: dict[int, float] = {}
        with session.get(f"{base}{answer['links'][0]['events']}", stream=True, timeout=60) as stream:
            event = ""
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "progress":
                    step = json.loads(line[6:]).get("step", 0)
                    if step and step not in received:
                        received[step] = time.monotonic()
                elif line.startswith("data: ") and event == "finished":
                    break
        for step in range(1, steps + 1):
            if step in received and (job_id, step) in emitted:
                latencies.append(received[step] - emitted[(job_id, step)])
            else:
                missed += 1  # before the stream connected, or coalesced away by a newer step
    comfy.worker.emit = original
    print(f"SSE progress delivery, ComfyUI test server's message → client ({jobs} jobs × {steps} steps, "  # noqa: T201
          f"{step_delay_s * 1000:.0f} ms a step): p50 {percentile(latencies, .5):.2f} ms "
          f"p99 {percentile(latencies, .99):.2f} ms; {len(latencies)} timed, {missed} coalesced or missed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="timed POSTs per variant")
    parser.add_argument("--waiting", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=10, help="sampler jobs followed over SSE")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-delay", type=float, default=0.02, help="seconds per sampler step")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would bury the figures
    with tempfile.TemporaryDirectory() as root:
        runtime, comfy, token = start(Path(root))
        base = f"http://127.0.0.1:{runtime.port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        try:
            bench_accepted(session, base, args.count, args.waiting)
            bench_sse(session, base, comfy, args.jobs, args.steps, args.step_delay)
        finally:
            runtime.stop()
            comfy.stop()


if __name__ == "__main__":
    main()

"""Job figures: submission overhead, live events to many sockets, History at scale.

1. Submission: POST /api/workflows/<id>/run through Studio (HTTP, token, validation, database)
   versus POST /prompt straight to ComfyUI, and end to end for a model-free job (submit → done).
2. Fan-out: 200 authenticated /ws clients (in a child process) following 10 sampler jobs with a
   preview every step: p50/p99 event latency and events lost (non-coalesced events must all arrive).
3. History: 100,000 jobs in the database; list, filter and text-search latency (p50/p95).

Runs Studio in this process against the ComfyUI test server; prints figures only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.app import create_app  # noqa: E402
from studio.auth.models import TokenScope  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.jobs.models import Job, JobStatus  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.runtime import Runtime  # noqa: E402
from studio.services import build_services  # noqa: E402
from tests.servers.comfyui import ComfyUITestServer  # noqa: E402

PASSWORD = "bench password 123"
RESIZE = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
          "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def start(root: Path, **overrides: Any) -> tuple[Runtime, ComfyUITestServer, str]:
    comfy = ComfyUITestServer(root / "comfyui").start()
    settings = Settings(studio_dir=root / "studio", comfyui_url=comfy.url, **overrides)
    DataDir(settings.studio_dir).ensure()
    services = build_services(settings)
    upgrade(services.engine)
    services.users.setup_admin("bench", PASSWORD)
    _, identity = services.auth.login("bench", PASSWORD, ip="127.0.0.1", user_agent="bench")
    token, _ = services.auth.create_token(identity, name="bench", scope=TokenScope.FULL, expires_at=None)
    runtime = Runtime(create_app(settings, services), services)
    runtime.start_in_thread()
    services.stream.wait_for(services.stream.state.CONNECTED, 10)
    return runtime, comfy, token


def wait_done(session: requests.Session, base: str, job_id: str) -> None:
    while session.get(f"{base}/api/jobs/{job_id}", timeout=10).json()["status"] not in (
            "completed", "failed", "cancelled", "interrupted"):
        time.sleep(0.002)


def bench_submission(count: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        runtime, comfy, token = start(Path(root))
        base = f"http://127.0.0.1:{runtime.port}"
        studio = requests.Session()
        studio.headers["Authorization"] = f"Bearer {token}"
        raw = requests.Session()
        image = studio.post(f"{base}/api/inputs", files={"image": ("x.png", _png())}, timeout=10).json()["name"]
        body = {"params": {"image": image, "width": 8, "height": 8}}
        direct, through, e2e_direct, e2e_studio = [], [], [], []
        for _ in range(count):
            started = time.perf_counter()
            answer = raw.post(f"{comfy.url}/prompt", json={"prompt": RESIZE, "prompt_id": str(uuid.uuid4())},
                              timeout=10).json()
            direct.append(time.perf_counter() - started)
            while not raw.get(f"{comfy.url}/history/{answer['prompt_id']}", timeout=10).json():
                time.sleep(0.002)
            e2e_direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            job = studio.post(f"{base}/api/workflows/image-resize/run", json=body, timeout=10).json()["items"][0]
            through.append(time.perf_counter() - started)
            wait_done(studio, base, job["id"])
            e2e_studio.append(time.perf_counter() - started)
        print(f"submission ({count} jobs): POST straight to ComfyUI p50 {percentile(direct, .5):.2f} ms "
              f"p99 {percentile(direct, .99):.2f} ms; POST /run through Studio p50 {percentile(through, .5):.2f} ms "
              f"p99 {percentile(through, .99):.2f} ms")
        print(f"end to end (model-free job, polled): ComfyUI alone p50 {percentile(e2e_direct, .5):.1f} ms "
              f"p99 {percentile(e2e_direct, .99):.1f} ms; through Studio p50 {percentile(e2e_studio, .5):.1f} ms "
              f"p99 {percentile(e2e_studio, .99):.1f} ms")
        runtime.stop()
        comfy.stop()


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def _follow(port: int, token: str, count: int, ready: Any, done: Any, results: Any) -> None:
    """Child process: ``count`` sockets, each recording (type, latency) for every job event."""
    records: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    sockets = [websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=120, skip_utf8_validation=True,
                                           header=[f"Authorization: Bearer {token}"]) for _ in range(count)]

    def read(index: int) -> None:
        ws = sockets[index]
        while not done.is_set():
            try:
                frame = json.loads(ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return
            now = time.time()
            for event in frame if isinstance(frame, list) else [frame]:
                if event["type"].startswith("jobs/"):
                    records[index].append((event["type"], now - event["ts"]))

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    ready.set()
    done.wait(600)
    for ws in sockets:
        ws.close()
    results.put(records)


def bench_fanout(clients: int, jobs: int, steps: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        runtime, comfy, token = start(Path(root), comfyui_max_in_flight=jobs)
        comfy.step_delay_s = 0.05
        published: dict[str, int] = {}
        runtime.services.bus.subscribe(lambda e: published.__setitem__(e.type, published.get(e.type, 0) + 1))
        context = multiprocessing.get_context("fork")
        ready, done, results = context.Event(), context.Event(), context.Queue()
        child = context.Process(target=_follow, args=(runtime.port, token, clients, ready, done, results))
        child.start()
        ready.wait(120)
        while runtime.services.hub.client_count < clients:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{runtime.port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        params = {"positive_prompt": "bench", "checkpoint": "random_sd15.safetensors", "steps": steps,
                  "resolution": {"w": 64, "h": 64}}
        started = time.perf_counter()
        created = session.post(f"{base}/api/workflows/sd15-txt2img/run", json={"params": params, "count": jobs},
                               timeout=30).json()["items"]
        for job in created:
            wait_done(session, base, job["id"])
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # let the last frames drain before counting
        done.set()
        records = results.get(timeout=120)
        child.join(30)
        latencies = [lat for client in records for _, lat in client]
        must_arrive = ("jobs/update", "jobs/finished", "jobs/output")
        lost = sum(max(0, published.get(t, 0) - sum(1 for kind, _ in client if kind == t))
                   for client in records for t in must_arrive)
        previews = [sum(1 for kind, _ in client if kind == "jobs/preview") for client in records]
        print(f"fan-out: {jobs} jobs × {steps} steps (a preview each) followed by {clients} sockets in "
              f"{elapsed:.1f}s: event latency p50 {percentile(latencies, .5):.1f} ms, "
              f"p99 {percentile(latencies, .99):.1f} ms; ordinary events lost {lost} "
              f"(of {sum(published.get(t, 0) for t in must_arrive)} per socket); previews per socket "
              f"{min(previews)}–{max(previews)} of {published.get('jobs/preview', 0)} (latest-wins)")
        runtime.stop()
        comfy.stop()


def bench_history(rows: int, queries: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        runtime, comfy, token = start(Path(root))
        engine = runtime.services.engine
        owner = runtime.services.users.list_users()[0]["id"]
        words = ["castle", "forest", "portrait", "city", "ocean", "dragon", "robot", "garden"]
        now = datetime.now(UTC)
        started = time.perf_counter()
        with engine.begin() as connection:
            batch = []
            for n in range(rows):
                batch.append({
                    "id": str(uuid.uuid4()), "workflow_id": "sd15-txt2img" if n % 3 else "image-resize",
                    "workflow_name": "bench", "owner_id": owner,
                    "status": (JobStatus.COMPLETED if n % 10 else JobStatus.FAILED).name,
                    "params": "{}", "prompt": "{}", "progress": "{}", "timeline": "[]", "position": float(n),
                    "priority": 0, "prompt_text": f"a {words[n % 8]} number {n} at dusk",
                    "created_at": now - timedelta(seconds=rows - n),
                })
                if len(batch) == 5000:
                    connection.execute(Job.__table__.insert(), batch)
                    batch = []
            if batch:
                connection.execute(Job.__table__.insert(), batch)
        print(f"history: inserted {rows} jobs in {time.perf_counter() - started:.1f}s")
        base = f"http://127.0.0.1:{runtime.port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        for label, query in (("newest 50", "limit=50"), ("status=failed", "status=failed&limit=50"),
                             ("workflow filter", "workflow=image-resize&limit=50"),
                             ("text search 'dragon'", "q=dragon&limit=50"),
                             ("text search, no match", "q=unicorn&limit=50"),
                             ("page 100 (keyset)", None)):
            timings = []
            for _ in range(queries):
                if query is None:
                    page = session.get(f"{base}/api/jobs?limit=50", timeout=30).json()
                    for _ in range(99):
                        page = session.get(f"{base}/api/jobs?limit=50&before={page['next']}", timeout=30).json()
                    t0 = time.perf_counter()
                    session.get(f"{base}/api/jobs?limit=50&before={page['next']}", timeout=30)
                    timings.append(time.perf_counter() - t0)
                    if len(timings) >= 5:
                        break
                    continue
                t0 = time.perf_counter()
                answer = session.get(f"{base}/api/jobs?{query}", timeout=30)
                timings.append(time.perf_counter() - t0)
                assert answer.status_code == 200
            print(f"  {label:<24} p50 {percentile(timings, .5):7.1f} ms   p95 {percentile(timings, .95):7.1f} ms")
        runtime.stop()
        comfy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["submission", "fanout", "history"])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    if args.only in (None, "submission"):
        bench_submission(args.count)
    if args.only in (None, "fanout"):
        bench_fanout(args.clients, args.jobs, args.steps)
    if args.only in (None, "history"):
        bench_history(args.rows, args.queries)


if __name__ == "__main__":
    main()

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
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws_followers import Followers  # noqa: E402

PASSWORD = "bench password 123"
RESIZE = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
          "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def start(root: Path, *, shared_output: bool = False, **overrides: Any) -> tuple[Runtime, ComfyUITestServer, str]:
    """Studio in this process against a fresh ComfyUI test server; ``shared_output``: ComfyUI writes
    into Studio's own output folder, as the container starts it."""
    output_dir = DataDir(root / "studio").outputs if shared_output else None
    comfy = ComfyUITestServer(root / "comfyui", output_dir=output_dir).start()
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
        image = studio.post(f"{base}/api/inputs", files={"image": ("x.png", png())}, timeout=10).json()["name"]
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
        socket_e2e(runtime, comfy, token, image, body, count)
        runtime.stop()
        comfy.stop()


def socket_e2e(runtime: Runtime, comfy: ComfyUITestServer, token: str, image: str, body: dict[str, Any],
               count: int) -> None:
    """End to end as a client that follows the socket sees it, nothing polled: ComfyUI's own /ws
    (``executing`` with node null) for the same workflow posted straight to it, versus Studio's /ws
    (``jobs/finished``) for the same job through Studio."""
    same = {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
            "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "lanczos", "width": 8,
                                                          "height": 8, "crop": "disabled"}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bench"}}}
    client_id = uuid.uuid4().hex
    comfy_ws = websocket.create_connection(f"{comfy.url.replace('http', 'ws', 1)}/ws?clientId={client_id}",
                                           timeout=10, skip_utf8_validation=True)
    studio_ws = websocket.create_connection(f"ws://127.0.0.1:{runtime.port}/ws", timeout=10,
                                            skip_utf8_validation=True, header=[f"Authorization: Bearer {token}"])
    raw, studio = requests.Session(), requests.Session()
    studio.headers["Authorization"] = f"Bearer {token}"
    direct, through = [], []
    for _ in range(count):
        prompt_id = str(uuid.uuid4())
        started = time.perf_counter()
        raw.post(f"{comfy.url}/prompt", json={"prompt": same, "prompt_id": prompt_id, "client_id": client_id},
                 timeout=10)
        while not _comfy_done(comfy_ws.recv(), prompt_id):
            pass
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        job = studio.post(f"http://127.0.0.1:{runtime.port}/api/workflows/image-resize/run", json=body,
                          timeout=10).json()["items"][0]
        while not _studio_done(studio_ws.recv(), job["id"]):
            pass
        through.append(time.perf_counter() - started)
    comfy_ws.close()
    studio_ws.close()
    print(f"end to end (same model-free workflow, followed on the socket): ComfyUI alone p50 "
          f"{percentile(direct, .5):.1f} ms p99 {percentile(direct, .99):.1f} ms; through Studio p50 "
          f"{percentile(through, .5):.1f} ms p99 {percentile(through, .99):.1f} ms")


def _comfy_done(frame: str | bytes, prompt_id: str) -> bool:
    if isinstance(frame, bytes):
        return False
    message = json.loads(frame)
    data = message.get("data") or {}
    return bool(message.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id)


def _studio_done(frame: str | bytes, job_id: str) -> bool:
    parsed = json.loads(frame)
    return any(event.get("type") == "jobs/finished" and event["payload"].get("id") == job_id
               for event in (parsed if isinstance(parsed, list) else [parsed]))


def png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def finished_waiter(runtime: Runtime) -> Callable[[list[str], float], None]:
    """Waits for ``jobs/finished`` of the given jobs on the bus, in this process: a bench that polls
    Studio's API competes with what it measures for the same 2 cores."""
    finished: set[str] = set()
    changed = threading.Condition()

    def on_event(event: Any) -> None:
        if event.type == "jobs/finished":
            with changed:
                finished.add(str(event.payload.get("id")))
                changed.notify_all()

    runtime.services.bus.subscribe(on_event)

    def wait(job_ids: list[str], timeout: float) -> None:
        with changed:
            if not changed.wait_for(lambda: finished.issuperset(job_ids), timeout):
                raise SystemExit(f"jobs not finished within {timeout} s")

    return wait


def bench_fanout(clients: int, jobs: int, steps: int, *, kind: str, procs: int, deflate: bool, pin: bool) -> None:
    with tempfile.TemporaryDirectory() as root:
        runtime, comfy, token = start(Path(root), comfyui_max_in_flight=jobs)
        comfy.step_delay_s = 0.05
        published: dict[str, int] = {}
        runtime.services.bus.subscribe(lambda e: published.__setitem__(e.type, published.get(e.type, 0) + 1))
        wait_finished = finished_waiter(runtime)
        followers = Followers(runtime.port, token, clients, procs=procs, kind=kind, deflate=deflate, pin=pin)
        while runtime.services.hub.client_count < clients:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{runtime.port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        params = {"positive_prompt": "bench", "checkpoint": "random_sd15.safetensors", "steps": steps,
                  "resolution": {"w": 64, "h": 64}}
        cpu_before = time.process_time()
        started = time.perf_counter()
        created = session.post(f"{base}/api/workflows/sd15-txt2img/run", json={"params": params, "count": jobs},
                               timeout=30).json()["items"]
        wait_finished([job["id"] for job in created], 600)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        time.sleep(1.0)  # let the last frames drain before counting
        records = followers.stop()
        latencies = [lat for client in records for _, lat in client]
        must_arrive = ("jobs/update", "jobs/finished", "jobs/output")
        lost = sum(max(0, published.get(t, 0) - sum(1 for kind, _ in client if kind == t))
                   for client in records for t in must_arrive)
        previews = [sum(1 for kind, _ in client if kind == "jobs/preview") for client in records]
        sent = sum(published.get(t, 0) for t in published if t.startswith("jobs/"))
        print(f"fan-out ({kind} clients in {1 if kind == 'threads' else procs} processes"
              f"{', permessage-deflate' if deflate else ''}{', pinned apart' if pin else ''}): {jobs} jobs × "
              f"{steps} steps (a preview each) followed by {clients} sockets in {elapsed:.1f}s "
              f"({sent / elapsed:.0f} job events/s published, {len(latencies) / elapsed:.0f} frames/s delivered, "
              f"Studio's process {cpu / elapsed * 100:.0f}% CPU): event latency p50 "
              f"{percentile(latencies, .5):.1f} ms, p99 {percentile(latencies, .99):.1f} ms; ordinary events lost "
              f"{lost} (of {sum(published.get(t, 0) for t in must_arrive)} per socket); previews per socket "
              f"{min(previews)}–{max(previews)} of {published.get('jobs/preview', 0)} (latest-wins)")
        kinds = sorted({kind for client in records for kind, _ in client})
        print("  by type: " + "; ".join(
            f"{kind} p50 {percentile(of, .5):.1f} / p99 {percentile(of, .99):.1f} ms"
            for kind in kinds for of in [[lat for client in records for k, lat in client if k == kind]]))
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
    parser.add_argument("--follower", choices=["asyncio", "threads"], default="asyncio",
                        help="fan-out clients: aiohttp on an event loop per process, or a thread per socket")
    parser.add_argument("--procs", type=int, default=2, help="processes the asyncio clients are spread over")
    parser.add_argument("--deflate", action="store_true", help="clients offer permessage-deflate, as browsers do")
    parser.add_argument("--pin", action="store_true", help="clients on the last CPU, Studio on the others")
    parser.add_argument("--switch-interval", type=float, metavar="S",
                        help="sys.setswitchinterval for Studio's process (Python's default is 0.005)")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.only in (None, "submission"):
        bench_submission(args.count)
    if args.only in (None, "fanout"):
        bench_fanout(args.clients, args.jobs, args.steps, kind=args.follower, procs=args.procs,
                     deflate=args.deflate, pin=args.pin)
    if args.only in (None, "history"):
        bench_history(args.rows, args.queries)


if __name__ == "__main__":
    main()

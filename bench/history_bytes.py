"""What a History page of 50 results costs to transfer, and how fast thumbnails are made.

1. Bytes: 50 finished 512×512 results through Studio and the ComfyUI test server, twice: photo-like
   pictures (smooth light, shapes, grain: what real results compress like) and the test sampler's
   pure noise (the worst case for any image codec). For each: the jobs API page, the 256 px
   thumbnails a desktop grid loads, the 768 px ones a phone at 3× loads, and the full files the grid
   used to load.
2. Rate: thumbnail sets (both sizes of one output) made per second by the worker, from job
   completion to the last file written, and by ``render`` alone on the same files.
3. Summaries: the cost of each job's ``summary`` for a page of 50, first asked and again, on the
   bundled text-to-image graph and on one 40 times its size.

Runs Studio in this process; prints figures only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.jobs import start, wait_done  # noqa: E402
from studio.jobs import thumbnails  # noqa: E402
from studio.jobs.models import Job  # noqa: E402
from studio.jobs.summary import summarize  # noqa: E402
from tests.test_browser_results import photo_png  # noqa: E402

KB = 1024


def _results(studio: requests.Session, base: str, kind: str, count: int) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    if kind == "photo":
        for seed in range(5):
            upload = {"image": ("p.png", photo_png(seed))}
            name = studio.post(f"{base}/api/inputs", files=upload, timeout=30).json()["name"]
            jobs += studio.post(f"{base}/api/workflows/image-resize/run", timeout=30, json={
                "params": {"image": name, "width": 512, "height": 512}, "count": count // 5}).json()["items"]
    else:
        jobs += studio.post(f"{base}/api/workflows/sd15-txt2img/run", timeout=30, json={"params": {
            "positive_prompt": "noise", "checkpoint": "random_sd15.safetensors", "steps": 1,
            "resolution": {"w": 512, "h": 512}}, "count": count}).json()["items"]
    return jobs


def _bytes(studio: requests.Session, url: str) -> int:
    return len(studio.get(url, timeout=30).content)


def bench(kind: str, count: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        runtime, comfy, token = start(Path(root))
        base = f"http://127.0.0.1:{runtime.port}"
        studio = requests.Session()
        studio.headers["Authorization"] = f"Bearer {token}"
        maker: thumbnails.Thumbnails = runtime.app.extensions["studio.thumbnails"]
        jobs = _results(studio, base, kind, count)
        began = time.perf_counter()
        for job in jobs:
            wait_done(studio, base, job["id"])
        maker.wait_idle(300)
        worker_s = time.perf_counter() - began
        page = studio.get(f"{base}/api/jobs?limit={count}", timeout=30)
        outputs = [o for job in page.json()["items"] for o in job["outputs"]]
        small = sum(_bytes(studio, base + o["thumbs"]["256"]) for o in outputs)
        large = sum(_bytes(studio, base + o["thumbs"]["768"]) for o in outputs)
        full = sum(o["size"] for o in outputs)
        files = sorted((Path(root) / "studio" / "assets" / "output" / "studio").glob("*/*.png"))
        began = time.perf_counter()
        for path in files:
            thumbnails.render(path, Path(root) / "studio" / "assets" / "output")
        render_s = time.perf_counter() - began
        print(f"{kind:>5}: {len(outputs)} results · API page {len(page.content) / KB:.0f} KB · "  # noqa: T201
              f"desktop grid (256 px) {(len(page.content) + small) / KB:.0f} KB · "
              f"phone grid (768 px) {(len(page.content) + large) / KB:.0f} KB · full files {full / KB / KB:.1f} MB")
        print(f"{kind:>5}: thumbnails {len(files) / render_s:.1f} sets/s rendering alone, "  # noqa: T201
              f"{len(outputs) / worker_s:.1f} results/s from queue to last thumbnail (jobs included)")
        runtime.stop()
        comfy.stop()


def _wide(prompt: dict[str, Any], copies: int) -> dict[str, Any]:
    """``copies`` of the graph side by side, links renumbered: a large workflow's shape."""
    wide: dict[str, Any] = {}
    for copy in range(copies):
        for node_id, node in json.loads(json.dumps(prompt)).items():
            for field, value in node["inputs"].items():
                if isinstance(value, list):
                    node["inputs"][field] = [str(int(value[0]) + copy * 1000), value[1]]
            wide[str(int(node_id) + copy * 1000)] = node
    return wide


def bench_summaries() -> None:
    prompt = json.loads((Path(__file__).resolve().parent.parent / "workflows/sd15-txt2img/workflow.json").read_text())
    for name, graph in (("text to image (7 nodes)", prompt), ("40 times as large", _wide(prompt, 40))):
        jobs = [Job(id=str(uuid.uuid4()), workflow_id="w", workflow_name="w", prompt=graph) for _ in range(50)]
        times = []
        for _ in range(2):
            began = time.perf_counter()
            for job in jobs:
                summarize(job)
            times.append((time.perf_counter() - began) * 1000)
        print(f"summary: {name}: {times[0]:.1f} ms for a page of 50 first asked, {times[1]:.2f} ms again")  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    bench_summaries()
    for kind in ("photo", "noise"):
        bench(kind, args.count)


if __name__ == "__main__":
    main()

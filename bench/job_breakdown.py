"""Where a model-free job's time goes, from POST /run to ``jobs/finished``, stage by stage.

Runs Studio in this process against the ComfyUI test server (as ``bench/jobs.py`` does), one job at a
time, and wraps the functions on the job's path with timers (the bench only: nothing in Studio knows
it is measured). For each stage it prints p50/p99 per job and how many database transactions it
opened (``begin``) and committed (writes), so a change to the path shows up here as a number:

  POST /run (client)      the whole request, as the client sees it
    readiness (facts)     the route's readiness check (ComfyUI's object_info, the workflow's needs)
    parse/validate        the form values checked against the workflow and object_info
    submit write          the job rows written (one transaction)
    publish               every EventBus.publish (subscribers run in the publisher's thread)
  dispatcher wake-up      the submit's commit → the engine taking the job
    engine woke           the submit's commit → the engine thread starting its round
  mark submitted          the conditional UPDATE queued → submitted
  input upload            POST /upload/image (the workflow's input image)
  ComfyUI POST            POST /prompt
  ComfyUI runs it         /prompt answered → "executing node null" on the socket (ComfyUI's own time)
  ws message → finalize   that message → the engine starting to finish the job
  /history read           GET /history/<id>
  output fetch            each output kept in the job's folder (over /view, or in place)
  outputs write           the JobOutput rows (inside the final mark's transaction)
  final mark              the conditional UPDATE to completed, and its events
  end to end              POST sent → ``jobs/finished`` published (seen by an in-process subscriber,
                          so no polling competes with Studio for the 2 cores)

``--shared-output`` points the test server's output folder at Studio's own (as the container does),
so outputs are used in place instead of fetched. ``--profile FILE`` also writes a pyinstrument HTML
profile of the submitting thread (pyinstrument profiles one thread; py-spy ``record --pid`` sees all).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import studio.jobs.finish as finish_module  # noqa: E402
import studio.jobs.outputs as outputs_module  # noqa: E402
import studio.jobs.service as service_module  # noqa: E402
import studio.workflows.api as workflows_api  # noqa: E402
import studio.workflows.params as params_module  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_jobs", ROOT / "bench" / "jobs.py")
assert _spec is not None
assert _spec.loader is not None
bench_jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_jobs)

STAGES = ["POST /run (client)", "  readiness (facts)", "  parse/validate", "  submit write", "publish (all)",
          "dispatcher wake-up", "  engine woke", "mark submitted", "input upload", "ComfyUI POST", "ComfyUI runs it",
          "ws message → finalize", "/history read", "output fetch", "outputs write", "final mark",
          "end to end"]


class Probe:
    """Per-job stage times and per-stage database transactions; one job runs at a time."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, float]] = []
        self.current: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self.local = threading.local()
        self.begins: dict[str, int] = defaultdict(int)
        self.commits: dict[str, int] = defaultdict(int)
        self.finished = threading.Event()

    def stage(self) -> str:
        return getattr(self.local, "stage", None) or f"other ({threading.current_thread().name})"

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        outer = getattr(self.local, "stage", None)
        self.local.stage = name
        started = time.perf_counter()
        try:
            yield
        finally:
            self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - started
            self.local.stage = outer

    def wrap(self, owner: Any, attribute: str, name: str | Callable[..., str],
             before: Callable[..., None] | None = None, after: Callable[..., None] | None = None) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if before:
                before(*args, **kwargs)
            label = name(*args, **kwargs) if callable(name) else name
            with self.timing(label):
                result = original(*args, **kwargs)
            if after:
                after(*args, **kwargs)
            return result

        setattr(owner, attribute, timed)

    def next_job(self) -> None:
        self.current, self.marks = {}, {}
        self.finished.clear()

    def close_job(self) -> None:
        self.jobs.append(self.current)


def instrument(runtime: Any, probe: Probe) -> None:
    services = runtime.services
    engine, jobs, comfy, bus = services.job_engine, services.jobs, services.comfy, services.bus

    @event.listens_for(services.engine, "begin")
    def _begin(_connection: Any) -> None:
        probe.begins[probe.stage()] += 1

    @event.listens_for(services.engine, "commit")
    def _commit(_connection: Any) -> None:
        probe.commits[probe.stage()] += 1

    probe.wrap(workflows_api, "_facts", "  readiness (facts)")
    probe.wrap(params_module, "validate", "  parse/validate")
    original_submit_write = service_module.write_with_retry

    def write(db: Any, work: Any, **kwargs: Any) -> Any:
        if getattr(probe.local, "stage", None) == "POST /run (server)":
            with probe.timing("  submit write"):
                result = original_submit_write(db, work, **kwargs)
            probe.marks["committed"] = time.perf_counter()
            return result
        return original_submit_write(db, work, **kwargs)

    service_module.write_with_retry = write  # type: ignore[assignment]
    probe.wrap(jobs, "submit", "POST /run (server)")
    probe.wrap(bus, "publish", "publish (all)")

    def taken(job: Any) -> None:
        if "committed" in probe.marks and "dispatcher wake-up" not in probe.current:
            probe.current["dispatcher wake-up"] = time.perf_counter() - probe.marks["committed"]

    def woke() -> None:
        if "committed" in probe.marks and "  engine woke" not in probe.current:
            probe.current["  engine woke"] = time.perf_counter() - probe.marks["committed"]

    probe.wrap(engine, "step", "engine step", before=woke)
    probe.wrap(engine, "_submit", "engine submit", before=taken)
    probe.wrap(jobs, "mark", lambda job_id, status, **_: "mark submitted" if status.value == "submitted"
               else "final mark" if status.value in ("completed", "failed") else f"mark {status.value}")
    probe.wrap(comfy, "upload_image", "input upload")
    probe.wrap(comfy, "queue_prompt", "ComfyUI POST",
               after=lambda *a, **k: probe.marks.__setitem__("posted", time.perf_counter()))
    probe.wrap(comfy, "history", "/history read")
    probe.wrap(outputs_module, "keep", "output fetch")
    if hasattr(finish_module, "add_rows"):  # the rows go with the final status, in its transaction
        probe.wrap(finish_module, "add_rows", "outputs write")
    else:  # an older Studio: a transaction of their own
        probe.wrap(finish_module, "write_with_retry", "outputs write")

    def finalize_starts(*_: Any) -> None:
        if "executed" in probe.marks:
            probe.current["ws message → finalize"] = time.perf_counter() - probe.marks["executed"]

    probe.wrap(engine, "_finalize", "finalize", before=finalize_starts)

    def on_message(message: Any) -> None:
        if message.type == "executing" and message.data.get("node") is None:
            probe.marks["executed"] = time.perf_counter()
            if "posted" in probe.marks:
                probe.current["ComfyUI runs it"] = probe.marks["executed"] - probe.marks["posted"]

    services.stream._message_listeners.insert(0, on_message)

    def on_event(published: Any) -> None:
        if published.type == "jobs/finished" and "sent" in probe.marks:
            probe.current["end to end"] = time.perf_counter() - probe.marks["sent"]
            probe.finished.set()

    bus.subscribe(on_event)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


def run(count: int, warmup: int, shared_output: bool, profile: str | None) -> None:
    with tempfile.TemporaryDirectory() as root:
        runtime, comfy, token = bench_jobs.start(Path(root), shared_output=shared_output)
        probe = Probe()
        instrument(runtime, probe)
        base = f"http://127.0.0.1:{runtime.port}"
        studio = requests.Session()
        studio.headers["Authorization"] = f"Bearer {token}"
        image = studio.post(f"{base}/api/inputs", files={"image": ("x.png", bench_jobs.png())},
                            timeout=10).json()["name"]
        body = {"params": {"image": image, "width": 8, "height": 8}}
        profiler = None
        for n in range(warmup + count):
            if n == warmup:
                probe.jobs.clear()
                probe.begins.clear()
                probe.commits.clear()
                if profile:
                    from pyinstrument import Profiler

                    profiler = Profiler(interval=0.0005)
                    profiler.start()
            probe.next_job()
            probe.marks["sent"] = started = time.perf_counter()
            answer = studio.post(f"{base}/api/workflows/image-resize/run", json=body, timeout=10)
            probe.current["POST /run (client)"] = time.perf_counter() - started
            assert answer.status_code == 202, answer.text
            if not probe.finished.wait(10):
                raise SystemExit("a job did not finish in 10 s")
            time.sleep(0.005)  # let the engine's last writes after jobs/finished land in this job
            probe.close_job()
        if profiler is not None:
            profiler.stop()
            Path(profile or "").write_text(profiler.output_html())
        where = "in place (shared output folder)" if shared_output else "over /view"
        print(f"model-free job (image-resize), {count} jobs one at a time, outputs {where}:")
        print(f"  {'stage':<26}{'p50 ms':>9}{'p99 ms':>9}{'txns/job':>10}{'writes/job':>11}")
        labels = {"POST /run (server)": "  submit write"}
        for stage in STAGES:
            values = [job.get(stage, 0.0) for job in probe.jobs]
            begins = probe.begins.get(stage, 0) + sum(v for k, v in probe.begins.items() if labels.get(k) == stage)
            commits = probe.commits.get(stage, 0) + sum(v for k, v in probe.commits.items()
                                                        if labels.get(k) == stage)
            print(f"  {stage:<26}{percentile(values, .5):9.2f}{percentile(values, .99):9.2f}"
                  f"{begins / count:10.1f}{commits / count:11.1f}")
        others: dict[str, int] = defaultdict(int)
        for stage, begins in probe.begins.items():
            if stage not in STAGES and stage not in labels:
                others[re.sub(r"Thread-\d+ \((\w+)\)", r"\1", stage)] += begins
        commits: dict[str, int] = defaultdict(int)
        for stage, done in probe.commits.items():
            commits[re.sub(r"Thread-\d+ \((\w+)\)", r"\1", stage)] += done
        for stage, begins in sorted(others.items()):
            print(f"  {stage:<26}{'':>18}{begins / count:10.1f}{commits.get(stage, 0) / count:11.1f}")
        print(f"  database transactions per job: {sum(probe.begins.values()) / count:.1f} opened, "
              f"{sum(probe.commits.values()) / count:.1f} committed")
        runtime.stop()
        comfy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--shared-output", action="store_true",
                        help="ComfyUI writes into Studio's output folder, as in the container")
    parser.add_argument("--profile", metavar="FILE", help="write a pyinstrument HTML profile of the POSTs")
    parser.add_argument("--switch-interval", type=float, metavar="S",
                        help="sys.setswitchinterval (Python's default 0.005): how long a thread that wants the "
                             "GIL waits for a busy one")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    run(args.count, args.warmup, args.shared_output, args.profile)


if __name__ == "__main__":
    main()

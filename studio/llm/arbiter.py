"""The one place that decides who holds the GPU: ComfyUI's jobs or the LLM.

Policies (the ``llm_gpu_policy`` setting):

- ``share``: nobody waits for anybody; for a GPU with room for both.
- ``take_turns``: before a job is sent, the LLM is stopped (after waiting up to ``llm_job_wait_s``
  for a chat that is being answered); before the LLM loads, ComfyUI's queue must drain and
  ComfyUI is asked to ``/free`` its models. The model a job pushed out is loaded again by the next
  chat, not before: a queue of jobs never pays for reloads nobody asked for.
- ``llm_never``: as ``take_turns`` for the jobs, but a chat while jobs run or wait is refused
  (409) instead of waiting.

Neither side can wait for ever: a job is held at most ``llm_job_wait_s`` (then it goes), a chat
waits at most as long for ComfyUI's queue (then a 503 in words). The job engine asks
``before_job`` from its own thread, which must never block: holding a job only means "not this
round", and whatever ends the wait (a chat ending, the LLM stopped) wakes the engine.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from studio.comfy import ComfyClient, ComfyError
from studio.errors import Conflict, ServiceUnavailable
from studio.events import EventBus
from studio.jobs.models import IN_FLIGHT, Job, JobStatus
from studio.llm import process
from studio.llm.server import STOP_GRACE_S, LaunchConfig, LlamaServer, State
from studio.system.telemetry import TelemetrySampler

log = logging.getLogger(__name__)

POLL_S = 0.1
GONE = (State.STOPPED, State.CRASHED)


class Policy(StrEnum):
    SHARE = "share"
    TAKE_TURNS = "take_turns"
    LLM_NEVER = "llm_never"


class Phase(StrEnum):
    IDLE = "idle"
    WAITING_FOR_COMFYUI = "waiting_for_comfyui"  # a load waits for ComfyUI's queue to drain
    LOADING = "loading"
    STOPPING_FOR_JOB = "stopping_for_job"


class VramArbiter:
    def __init__(self, llm: LlamaServer, comfy: ComfyClient, engine: Any, bus: EventBus,
                 telemetry: TelemetrySampler, *, policy: Callable[[], str], job_wait_s: Callable[[], float],
                 comfy_connected: Callable[[], bool], wake_jobs: Callable[[], None]) -> None:
        self.llm = llm
        self.comfy = comfy
        self.engine = engine  # the database, for counting Studio's own jobs
        self.bus = bus
        self.telemetry = telemetry
        self.policy_setting = policy
        self.job_wait_s = job_wait_s
        self.comfy_connected = comfy_connected
        self.wake_jobs = wake_jobs
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time; a second chat waits for the first's
        self._chats = 0
        self._held: dict[str, float] = {}  # job id → when it was first held back
        self._evicting: threading.Thread | None = None
        self.phase = Phase.IDLE
        self.resume: LaunchConfig | None = None  # the model a job pushed out: the next chat loads it
        self.last_error: str | None = None

    def policy(self) -> Policy:
        try:
            return Policy(self.policy_setting())
        except ValueError:
            return Policy.TAKE_TURNS

    def _publish(self, reason: str) -> None:
        self.bus.publish("llm/server", {**self.llm.status(full=False), "phase": self.phase.value,
                                        "policy": self.policy().value, "reason": reason})

    # -- what ComfyUI is doing ---------------------------------------------------------------------------

    def _studio_jobs(self, statuses: tuple[JobStatus, ...]) -> int:
        query = select(func.count(col(Job.id))).where(col(Job.status).in_(statuses))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def _comfy_queue(self) -> int:
        """What ComfyUI runs or holds, from anyone; 0 when it does not answer (then it holds no GPU
        worth waiting for)."""
        if not self.comfy_connected():
            return 0
        try:
            return self.comfy.get_queue().remaining
        except ComfyError:
            return 0

    def comfy_busy(self) -> int:
        """Jobs in ComfyUI's hands (the count that must reach 0 before the LLM loads)."""
        return max(self._studio_jobs(IN_FLIGHT), self._comfy_queue())

    def jobs_busy(self) -> int:
        """Jobs that run or wait, Studio's queue included (what ``llm_never`` refuses chats for)."""
        return max(self._studio_jobs((JobStatus.QUEUED, *IN_FLIGHT)), self._comfy_queue())

    # -- the job side (the engine's thread: never blocks) --------------------------------------------------

    def before_job(self, job: Job) -> bool:
        """May ``job`` be sent now? False holds the queue for this round; the engine is woken when
        the answer changes."""
        policy = self.policy()
        if policy is Policy.SHARE:
            self._held.clear()
            return True
        now = time.monotonic()
        limit = self.job_wait_s()
        with self._lock:
            since = self._held.setdefault(job.id, now)
            waited = now - since
            evicting = self._evicting is not None and self._evicting.is_alive()
            loading = self.phase in (Phase.LOADING, Phase.WAITING_FOR_COMFYUI)  # a chat's turn is next
            if not evicting and self.llm.state in GONE and not loading:
                self._held.clear()
                return True
            if waited >= limit + STOP_GRACE_S + 5:
                log.warning("llm: job %s waited %.0f s for the GPU; it goes anyway", job.id, waited)
                self._held.pop(job.id, None)
                return True  # the queue never waits for ever, whatever the LLM does
            if evicting:
                return False
            if (loading or self._chats > 0) and waited < limit:
                return False  # a chat is being answered (or waits to load): it gets its turn, within the limit
            if self.llm.state in GONE:
                self._held.pop(job.id, None)
                return True  # waited its limit for a load that has not begun: the job goes
            self.phase = Phase.STOPPING_FOR_JOB
            self._evicting = threading.Thread(target=self._evict, name="llm-evict", daemon=True)
            self._evicting.start()
            return False

    def _evict(self) -> None:
        config = self.llm.config
        if config is not None and self.llm.state not in GONE:
            self.resume = config
        self.llm.stop()
        with self._lock:
            self.phase = Phase.IDLE
        log.info("llm: stopped so that a ComfyUI job can have the GPU (%s)", self.policy().value)
        self._publish("stopped for a ComfyUI job; the next chat loads the model again")
        self.wake_jobs()

    # -- the chat side (request threads: may wait, within limits) ------------------------------------------

    def ready_for_chat(self) -> None:
        """Called before a chat goes upstream: refuses it (``llm_never`` while jobs run or wait) or
        loads the model a job pushed out, waiting for ComfyUI's queue first under ``take_turns``."""
        if self.policy() is Policy.LLM_NEVER:
            busy = self.jobs_busy()
            if busy:
                raise Conflict(f"The LLM is off while ComfyUI jobs run or wait ({busy} now): the GPU policy is "
                               "“LLM never during jobs”. Try again when the queue is empty.", code="llm_gpu_busy")
        resume = self.resume
        if resume is not None and self.llm.state in (*GONE, State.STARTING):
            self._load(resume)

    def start(self, config: LaunchConfig) -> dict[str, Any]:
        """An admin's start: under ``take_turns`` it waits for ComfyUI's queue in the background
        (202 at once); under ``llm_never`` it is refused while jobs run or wait."""
        policy = self.policy()
        if policy is Policy.LLM_NEVER and (busy := self.jobs_busy()):
            raise Conflict(f"The LLM cannot start while ComfyUI jobs run or wait ({busy} now): the GPU policy is "
                           "“LLM never during jobs”.", code="llm_gpu_busy")
        self.last_error = None
        if policy is Policy.TAKE_TURNS and self.comfy_busy():
            self.resume = config
            threading.Thread(target=self._load_quietly, args=(config,), name="llm-load", daemon=True).start()
            return {**self.llm.status(), "phase": Phase.WAITING_FOR_COMFYUI.value}
        self.resume = None
        if policy is not Policy.SHARE:
            self._free_comfyui()
        return self.llm.start(config)

    def stop(self) -> dict[str, Any]:
        """A person's stop: nothing is loaded again by the next chat."""
        self.resume = None
        return self.llm.stop()

    def _load_quietly(self, config: LaunchConfig) -> None:
        try:
            self._load(config)
        except (ServiceUnavailable, Conflict) as err:
            self.last_error = err.message
            self._publish(err.message)
        except Exception as err:  # noqa: BLE001 - shown on the page; nobody waits on this thread
            log.exception("llm: loading the model failed")
            self.last_error = str(err)[:300]
            self._publish(self.last_error)

    def _load(self, config: LaunchConfig) -> None:
        with self._load_lock:
            if self.llm.state is State.READY:
                return
            try:
                if self.llm.state is not State.STARTING:
                    if not self._make_room(config):
                        return  # stopped (or another model started) while it waited: nothing to load
                    with self._lock:
                        self.phase = Phase.LOADING
                    self._publish("loading the model")
                    self.llm.start(config)
                self._wait_ready()
                self.resume = None
            finally:
                with self._lock:
                    self.phase = Phase.IDLE
                self.wake_jobs()

    def _make_room(self, config: LaunchConfig) -> bool:
        """Waits for ComfyUI's queue and has it free its models; False when the load was called off meanwhile."""
        if self.policy() is Policy.SHARE:
            return True
        deadline = time.monotonic() + self.job_wait_s()
        with self._lock:
            self.phase = Phase.WAITING_FOR_COMFYUI
        announced = False
        while busy := self.comfy_busy():
            if not announced:
                announced = True
                self._publish(f"waiting for ComfyUI's queue ({busy} jobs) before loading the model")
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"ComfyUI is still busy with {busy} job(s); the LLM loads once its queue "
                                         "is empty. Try again in a moment.", code="llm_waiting_for_comfyui")
            time.sleep(POLL_S)
        if self.resume is not config:
            return False
        self._free_comfyui()
        return True

    def _free_comfyui(self) -> None:
        if not self.comfy_connected():
            return
        try:
            self.comfy.free(unload_models=True, free_memory=True)
            log.info("llm: asked ComfyUI to unload its models before the LLM loads")
        except ComfyError as err:
            log.info("llm: ComfyUI could not be asked to free its memory: %s", err)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.llm.load_timeout_s + 5
        while time.monotonic() < deadline:
            state = self.llm.state
            if state is State.READY:
                return
            if state in GONE:
                break
            time.sleep(POLL_S)
        raise ServiceUnavailable(f"The LLM could not be loaded: {self.llm.last_error or 'it did not start'}",
                                 code="llm_not_ready")

    def chatting(self, answer: Iterator[bytes]) -> Iterator[bytes]:
        """``answer`` counted as a chat in progress until it ends or the reader goes away."""
        self.chat_started()
        try:
            yield from answer
        finally:
            self.chat_ended()

    def chat_started(self) -> None:
        with self._lock:
            self._chats += 1

    def chat_ended(self) -> None:
        with self._lock:
            self._chats -= 1
            held = bool(self._held)
        if held:
            self.wake_jobs()  # a job waits for this chat: its turn now

    # -- what is loaded where ----------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The GPU(s), their memory, and who holds how much of it, for the Home page."""
        sample = self.telemetry.latest()
        gpus = [dict(gpu) for gpu in sample.get("gpus") or []]
        holders: list[dict[str, Any]] = []
        comfy = self._comfy_memory()
        if comfy is not None:
            holders.append(comfy)
        config = self.llm.config
        if config is not None and self.llm.state not in GONE:
            holders.append(self._llm_memory(config))
        with self._lock:
            waiting, chats, phase = len(self._held), self._chats, self.phase.value
        return {"policy": self.policy().value, "job_wait_s": self.job_wait_s(), "phase": phase, "chats": chats,
                "jobs_held": waiting, "resume_model": self.resume.model if self.resume else None,
                "last_error": self.last_error, "gpu_source": sample.get("gpu_source"), "gpus": gpus,
                "holders": holders}

    def chat_view(self) -> dict[str, Any]:
        """What the chat page needs besides the server's state: may a message be sent although no
        model runs (one is loaded for it), and what the arbiter is doing."""
        return {"resume_model": self.resume.model if self.resume else None, "phase": self.phase.value,
                "policy": self.policy().value}

    def _comfy_memory(self) -> dict[str, Any] | None:
        if not self.comfy_connected():
            return None
        try:
            devices = self.comfy.system_stats().get("devices") or []
        except ComfyError:
            return None
        gpus = [d for d in devices if isinstance(d, dict) and d.get("type") != "cpu"]
        if not gpus:
            return None  # ComfyUI runs on the CPU: it holds no GPU memory
        held = sum(int(d.get("torch_vram_total") or 0) for d in gpus)
        return {"who": "comfyui", "label": "ComfyUI", "bytes": held, "approximate": False,
                "detail": "memory its PyTorch has reserved"}

    def _llm_memory(self, config: LaunchConfig) -> dict[str, Any]:
        files = {item["file"]: int(item["size"]) for item in process.local_models(self.llm.models_dirs)}
        size = files.get(config.model, 0) + (files.get(config.mmproj, 0) if config.mmproj else 0)
        on_gpu = size if config.gpu_layers > 0 else 0
        measured = _nvml_process_bytes(self.llm.pid)
        return {"who": "llm", "label": f"LLM: {config.model}", "model": config.model, "state": self.llm.state.value,
                "bytes": measured if measured is not None else on_gpu, "approximate": measured is None,
                "file_bytes": size, "gpu_layers": config.gpu_layers,
                "detail": "measured by NVML" if measured is not None else
                ("about its file size (weights on the GPU)" if on_gpu else "on the CPU (0 GPU layers)")}


def _nvml_process_bytes(pid: int | None) -> int | None:
    """What the process really holds on the GPUs, when NVML is there to say (pynvml may be absent)."""
    if pid is None:
        return None
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no NVML: the estimate stands
        return None
    try:
        total = 0
        found = False
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for running in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if running.pid == pid and running.usedGpuMemory:
                    total += int(running.usedGpuMemory)
                    found = True
        return total if found else None
    except Exception:  # noqa: BLE001 - NVML refuses on some containers: the estimate stands
        return None
    finally:
        with contextlib.suppress(Exception):  # nothing to do about a failing shutdown
            pynvml.nvmlShutdown()

"""The ComfyUI test server's prompt worker: runs queued prompts and emits ComfyUI's message order.

Per node: ``progress_state`` (running) → ``executing`` → [progress ticks] → [``executed``] →
``progress_state`` (finished). Per prompt: ``execution_start``, ``execution_cached``, the nodes, then
``execution_success`` | ``execution_error`` | ``execution_interrupted``, the history entry, a
``status``, and last ``executing`` with ``node: null``. Messages that ComfyUI only sends to the
prompt's client are skipped when the prompt has no ``client_id``; progress and previews then go to
every socket (``comfyui-protocol.md`` §7.1).
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.servers.comfy_nodes import NODES, NodeContext, NodeFailure, placeholder_outputs

SENSITIVE_EXTRA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
HISTORY_LIMIT = 10000
NEVER_CACHED = frozenset({"SaveImageWebsocket"})

Emit = Callable[[str, Any, str | None], None]


class Interrupted(Exception):
    pass


def now_ms() -> int:
    return int(time.time() * 1000)


def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for value in prompt[node_id].get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                visit(str(value[0]))
        order.append(node_id)

    for output_id in outputs:
        visit(output_id)
    return order


class PromptRun(NodeContext):
    """One prompt's execution; also the context its nodes see."""

    def __init__(self, worker: PromptWorker, item: tuple[Any, ...]) -> None:
        self.worker = worker
        self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs_to_execute = item
        self.client_id: str | None = self.extra_data.get("client_id")
        self.prompt = self.prompt
        self.extra_pnginfo = self.extra_data.get("extra_pnginfo")
        self.input_dir = worker.input_dir
        self.output_dir = worker.output_dir
        self.temp_dir = worker.temp_dir
        self.node_id = ""
        self.states: dict[str, dict[str, Any]] = {}
        self.messages: list[list[Any]] = []
        self.ui_outputs: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self.executed: list[str] = []

    # -- NodeContext --------------------------------------------------------------------------

    @property
    def step_delay_s(self) -> float:  # type: ignore[override]
        return self.worker.step_delay_s

    def sleep(self, seconds: float) -> None:
        self.worker.stopping.wait(seconds)

    def progress(self, value: int, total: int, preview: tuple[int, bytes] | None = None) -> None:
        if self.worker.interrupt_flag.is_set():
            raise Interrupted
        self._state(self.node_id, "running", value, total)
        meta = {
            "node_id": self.node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": self.node_id,
            "parent_node_id": None,
            "real_node_id": self.node_id,
        }
        if preview:
            self.worker.emit("preview4", (preview, meta), self.client_id)
        progress = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id}
        self.worker.emit("progress", progress, self.client_id)
        if preview:
            self.worker.emit("preview1", (preview, meta), self.client_id)

    def text(self, text: str) -> None:
        self.worker.emit("text", (self.node_id, text), None)

    # -- running --------------------------------------------------------------------------------

    def _add_message(self, event: str, data: dict[str, Any], *, broadcast: bool) -> None:
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.worker.emit(event, data, self.client_id)

    def _state(self, node_id: str, state: str, value: float, total: float) -> None:
        self.states[node_id] = {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        snapshot = {"prompt_id": self.prompt_id, "nodes": json.loads(json.dumps(self.states))}
        self.worker.emit("progress_state", snapshot, self.client_id)

    def run(self) -> dict[str, Any]:
        worker = self.worker
        self._add_message("execution_start", {"prompt_id": self.prompt_id, "timestamp": now_ms()}, broadcast=False)
        order = execution_order(self.prompt, self.outputs_to_execute)
        signatures = {node_id: worker.signature(self.prompt, node_id) for node_id in order}
        cached = [n for n in order if worker.cache.get(n, (None,))[0] == signatures[n]]
        self._add_message(
            "execution_cached", {"nodes": cached, "prompt_id": self.prompt_id, "timestamp": now_ms()}, broadcast=False
        )
        values: dict[str, tuple[Any, ...]] = {}
        new_cache: dict[str, tuple[str, tuple[Any, ...], Any]] = {}
        status = "success"
        try:
            for node_id in order:
                if node_id in cached:
                    _, values[node_id], ui = worker.cache[node_id]
                    new_cache[node_id] = worker.cache[node_id]
                    if ui:
                        self._record_ui(node_id, ui)
                        self._state(node_id, "finished", 1, 1)
                    continue
                ui = self._run_node(node_id, values)
                new_cache[node_id] = (signatures[node_id], values[node_id], ui)
            self._add_message("execution_success", {"prompt_id": self.prompt_id, "timestamp": now_ms()},
                              broadcast=False)
        except Interrupted:
            status = "error"
            self._add_message(
                "execution_interrupted",
                {
                    "prompt_id": self.prompt_id,
                    "node_id": self.node_id,
                    "node_type": self.prompt[self.node_id]["class_type"],
                    "executed": list(self.executed),
                    "timestamp": now_ms(),
                },
                broadcast=True,
            )
        except NodeFailure as failure:
            status = "error"
            node = self.prompt[self.node_id]
            self._add_message(
                "execution_error",
                {
                    "prompt_id": self.prompt_id,
                    "node_id": self.node_id,
                    "node_type": node["class_type"],
                    "executed": list(self.executed),
                    "exception_message": failure.message,
                    "exception_type": failure.exception_type,
                    "traceback": [f'  File "<test-server>/nodes.py", in {node["class_type"]}\n'],
                    "current_inputs": {k: [v] for k, v in node.get("inputs", {}).items() if not isinstance(v, list)},
                    "current_outputs": [n for n in order if n in values or n == self.node_id],
                    "timestamp": now_ms(),
                },
                broadcast=True,
            )
        worker.cache = new_cache
        extra = {k: v for k, v in self.extra_data.items() if k not in SENSITIVE_EXTRA_KEYS}
        return {
            "prompt": [self.number, self.prompt_id, self.prompt, extra, list(self.outputs_to_execute)],
            "outputs": self.ui_outputs if status == "success" else {},
            "status": {"status_str": status, "completed": status == "success", "messages": self.messages},
            "meta": self.meta if status == "success" else {},
        }

    def _record_ui(self, node_id: str, ui: dict[str, Any]) -> None:
        self.ui_outputs[node_id] = ui
        self.meta[node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None,
                              "real_node_id": node_id}
        if self.client_id is not None:
            self.worker.emit(
                "executed",
                {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id},
                self.client_id,
            )

    def _run_node(self, node_id: str, values: dict[str, tuple[Any, ...]]) -> dict[str, Any] | None:
        worker = self.worker
        node = self.prompt[node_id]
        class_type = node["class_type"]
        self.node_id = node_id
        self._state(node_id, "running", 0.0, 1.0)
        worker.last_node_id = node_id
        if self.client_id is not None:
            worker.emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id},
                        self.client_id)
        if worker.interrupt_flag.is_set():
            raise Interrupted
        delay = worker.node_delays.get(class_type, 0.0)
        if delay:
            self.sleep(delay)
        if class_type in worker.fail_nodes:
            raise NodeFailure(*worker.fail_nodes[class_type])
        inputs = {}
        for name, value in node.get("inputs", {}).items():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in values:
                inputs[name] = values[str(value[0])][value[1]]
            else:
                inputs[name] = value
        implementation = NODES.get(class_type)
        if implementation is None:
            outputs, ui = placeholder_outputs(worker.object_info.get(class_type, {})), None
        else:
            outputs, ui = implementation(self, inputs)
        values[node_id] = outputs
        if ui:
            self._record_ui(node_id, ui)
        self.executed.append(node_id)
        last = self.states[node_id]
        finished_at = last["max"] if last["state"] == "running" and last["max"] != 1.0 else 1.0
        self._state(node_id, "finished", finished_at, finished_at)
        return ui


class PromptWorker:
    """Owns the queue and history; runs one prompt at a time in its own thread, like ComfyUI."""

    def __init__(self, *, emit: Emit, object_info: dict[str, Any], root: Path, output_dir: Path | None = None) -> None:
        self.emit = emit
        self.object_info = object_info
        self.input_dir = root / "input"
        self.output_dir = output_dir or root / "output"
        self.history_hook: Callable[[dict[str, Any]], None] | None = None
        self.temp_dir = root / "temp"
        for folder in (self.input_dir, self.output_dir, self.temp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.node_delays: dict[str, float] = {}
        self.fail_nodes: dict[str, tuple[str, str]] = {}
        self.step_delay_s = 0.0
        self.lock = threading.Condition()
        self.pending: list[tuple[Any, ...]] = []
        self.running: dict[str, tuple[Any, ...]] = {}
        self.history: dict[str, Any] = {}
        self.cache: dict[str, tuple[str, tuple[Any, ...], Any]] = {}
        self.counter = 0
        self.interrupt_flag = threading.Event()
        self.stopping = threading.Event()
        self.last_node_id: str | None = None
        self.running_client: str | None = None
        self.thread = threading.Thread(target=self._loop, name="fake-comfy-worker", daemon=True)

    def remaining(self) -> int:
        with self.lock:
            return len(self.pending) + len(self.running)

    def status_data(self) -> dict[str, Any]:
        return {"status": {"exec_info": {"queue_remaining": self.remaining()}}}

    def put(self, item: tuple[Any, ...]) -> None:
        with self.lock:
            self.pending.append(item)
            self.lock.notify_all()
        self.emit("status", self.status_data(), None)

    def delete(self, prompt_ids: list[str]) -> None:
        with self.lock:
            self.pending = [item for item in self.pending if item[1] not in prompt_ids]
        self.emit("status", self.status_data(), None)

    def clear(self) -> None:
        with self.lock:
            self.pending = []
        self.emit("status", self.status_data(), None)

    def interrupt(self, prompt_id: str | None) -> None:
        with self.lock:
            if prompt_id is not None and prompt_id not in self.running:
                return
        self.interrupt_flag.set()

    def stop(self) -> None:
        self.stopping.set()
        self.interrupt_flag.set()
        with self.lock:
            self.lock.notify_all()
        if self.thread.is_alive():
            self.thread.join(5)

    def signature(self, prompt: dict[str, Any], node_id: str) -> str:
        node = prompt[node_id]
        parts: dict[str, Any] = {}
        for name, value in sorted(node.get("inputs", {}).items()):
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                parts[name] = ["link", self.signature(prompt, str(value[0])), value[1]]
            else:
                parts[name] = value
        if node["class_type"] in NEVER_CACHED:  # their IS_CHANGED returns the time
            parts["__now__"] = time.time_ns()
        if node["class_type"] == "LoadImage":
            path = self.input_dir / str(node.get("inputs", {}).get("image", ""))
            parts["__file__"] = [path.stat().st_mtime_ns, path.stat().st_size] if path.is_file() else None
        return json.dumps([node["class_type"], parts], sort_keys=True, default=str)

    def _take(self) -> tuple[Any, ...] | None:
        with self.lock:
            while not self.pending and not self.stopping.is_set():
                self.lock.wait()
            if self.stopping.is_set():
                return None
            self.pending.sort(key=lambda item: item[0])
            item = self.pending.pop(0)
            self.running[item[1]] = item
        self.emit("status", self.status_data(), None)
        return item

    def _loop(self) -> None:
        while True:
            item = self._take()
            if item is None:
                return
            self.interrupt_flag.clear()
            run = PromptRun(self, item)
            self.running_client = run.client_id
            entry = run.run()
            if self.stopping.is_set():
                return
            if self.history_hook is not None:
                self.history_hook(entry)
            with self.lock:
                self.history[run.prompt_id] = entry
                while len(self.history) > HISTORY_LIMIT:
                    self.history.pop(next(iter(self.history)))
                self.running.pop(run.prompt_id, None)
            self.running_client = None
            self.last_node_id = None
            self.emit("status", self.status_data(), None)
            if run.client_id is not None:
                self.emit("executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id)


def encode_frame(event: str, data: Any, flags: dict[str, Any], preview_meta: dict[str, Any] | None = None,
                 ) -> str | bytes | None:
    """One message as it goes on the wire to a socket with ``flags``: type-4 previews only to sockets
    that sent ``supports_preview_metadata``, type 1 to the others (§7.3); None when it is not sent."""
    wants_metadata = bool(flags.get("supports_preview_metadata"))
    if event == "preview4":
        if not wants_metadata:
            return None
        (image_format, image), meta = data
        meta = {**meta, "image_type": "image/png" if image_format == 2 else "image/jpeg", **(preview_meta or {})}
        meta_bytes = json.dumps(meta).encode()
        return struct.pack(">II", 4, len(meta_bytes)) + meta_bytes + image
    if event == "preview1":
        if wants_metadata:
            return None
        (image_format, image), _meta = data
        return struct.pack(">II", 1, image_format) + image
    if event == "text":
        node_id, text = data
        node_bytes = node_id.encode()
        return struct.pack(">II", 3, len(node_bytes)) + node_bytes + text.encode()
    return json.dumps({"type": event, "data": data})

"""A ComfyUI test server that speaks ComfyUI 0.3.64's real protocol over real sockets.

``version="0.38.1"`` makes it answer as newer releases do (``comfy_newer.py``: the Jobs API,
``prompt_id`` validation, the newer NodeInfo and ``/system_stats`` keys), from ComfyUI's source as
``comfyui-protocol.md`` §11 records it rather than from captures.

Built on aiohttp like ComfyUI itself, answering as ``shared/design/comfyui-protocol.md`` and the
captures in ``tests/fixtures/comfyui/`` record: ``/prompt`` validation with the same 400 bodies, the
queue with ``front`` and ``delete``, interrupt, history, ``/view``, ``/upload/image``, WebSocket
messages in the same order, type 1 / 3 / 4 binary frames, and the clientId-reuse quirk.
The queue and history routes are in ``comfy_queue.py``, ``/upload/image`` and ``/view`` in
``comfy_files.py``, running prompts in ``comfy_exec.py``.

Faults for tests: ``fail_nodes`` (a node raises), ``drop_sockets()`` (socket drop mid-job),
``restart()`` (history and queue forgotten), ``stop()`` (connections refused until ``start()``),
``answer_prompt`` (answer ``POST /prompt`` yourself: ``body -> (status, text) | None``),
``drop_prompt_posts`` (close the next N ``POST /prompt`` connections without an answer) and
``history_hook`` (rewrite a finished prompt's history entry, as a buggy or hostile ComfyUI would).
``output_dir`` puts ComfyUI's output folder elsewhere (Studio's own, as the container does).
``path_delays`` (path → seconds) holds every request for that path before it is answered: a large
value is a ComfyUI that accepts connections and never answers (removing the path answers the
requests held so far); ``paths_asked`` counts requests per path. ``preview_meta`` is merged into
every type-4 preview frame's metadata (a hostile ``image_type``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.servers.comfy_exec import PromptWorker, encode_frame
from tests.servers.comfy_files import FileRoutes
from tests.servers.comfy_newer import CAPTURED, NEWER_NODE_INFO, VERSIONS, JobsApi, newer, prompt_id_problem, stamp
from tests.servers.comfy_newer import system_stats as newer_system_stats
from tests.servers.comfy_queue import QueueRoutes
from tests.servers.comfy_validate import PromptInvalid, Validator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "comfyui"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision", "style_models",
    "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models", "custom_nodes",
    "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
]
MODEL_COMBOS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
}
FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600}
SERVER_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"


def load_object_info() -> dict[str, Any]:
    return json.loads((FIXTURES / "object_info.json").read_text())


_BASE_OBJECT_INFO = load_object_info()


class ComfyUITestServer(FileRoutes, QueueRoutes, JobsApi):
    def __init__(self, root: Path, *, port: int = 0, models: dict[str, list[str]] | None = None,
                 output_dir: Path | None = None, version: str = CAPTURED) -> None:
        if version not in VERSIONS:
            raise ValueError(f"the test server knows ComfyUI {', '.join(VERSIONS)}, not {version}")
        self.version = version
        self.root = root
        self.output_dir = output_dir
        self.port = port
        self.models = models if models is not None else {"checkpoints": ["random_sd15.safetensors"]}
        self.devices: list[dict[str, Any]] = [
            {"name": "cpu", "type": "cpu", "index": None, "vram_total": 25276510208, "vram_free": 23747248128,
             "torch_vram_total": 25276510208, "torch_vram_free": 23747248128}
        ]
        # Custom node packs "installed" in this server (class_type → its /object_info entry).
        self.custom_nodes: dict[str, dict[str, Any]] = {}
        self.models_api = True  # False: an older ComfyUI without GET /models
        self.node_delays: dict[str, float] = {}
        self.fail_nodes: dict[str, tuple[str, str]] = {}
        self._step_delay_s = 0.0
        self.prompts_received: list[dict[str, Any]] = []
        # Faults at the POST: answer it yourself (None: as ComfyUI would), or drop the next N connections.
        self.answer_prompt: Callable[[dict[str, Any]], tuple[int, str] | None] | None = None
        self.drop_prompt_posts = 0
        self.prompt_posts = 0
        # Called with each finished prompt's history entry before it is stored; may change it in place.
        self.history_hook: Callable[[dict[str, Any]], None] | None = None
        # Seconds to hold a request for a path (``/object_info``; ``/api`` prefixes count as the same
        # path) before answering it, and how many requests each path got.
        self.path_delays: dict[str, float] = {}
        self.paths_asked: dict[str, int] = {}
        # Merged into the metadata of every type-4 preview frame, after the real image_type.
        self.preview_meta: dict[str, Any] = {}
        # Message types lost on the way to every socket (a flaky link), while the queue runs as ever.
        self.lost_events: set[str] = set()
        # Every POST /free as (its body, how many prompts ComfyUI still had then): the LLM's arbiter asks it.
        self.free_calls: list[tuple[dict[str, Any], int]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._outbox: asyncio.Queue[tuple[str, Any, str | None]] | None = None
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.socket_flags: dict[str, dict[str, Any]] = {}
        self.worker: PromptWorker | None = None

    @property
    def step_delay_s(self) -> float:
        """Seconds each sampler step takes; can be changed while the server runs."""
        return self._step_delay_s

    @step_delay_s.setter
    def step_delay_s(self, value: float) -> None:
        self._step_delay_s = value
        if self.worker is not None:
            self.worker.step_delay_s = value

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ComfyUITestServer:
        self.worker = PromptWorker(emit=self._emit, object_info={**_BASE_OBJECT_INFO, **self.custom_nodes},
                                   root=self.root, output_dir=self.output_dir)
        self.worker.history_hook = lambda entry: self.history_hook(entry) if self.history_hook else None
        self.worker.node_delays = self.node_delays
        self.worker.fail_nodes = self.fail_nodes
        self.worker.step_delay_s = self._step_delay_s
        self._start_http()
        self.worker.thread.start()
        return self

    def _start_http(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="fake-comfyui", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("ComfyUI test server did not start")

    def _serve(self, ready: threading.Event) -> None:
        # Local references: a restart replaces self._loop while this thread may still be closing.
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._outbox = asyncio.Queue()
        app = web.Application(middlewares=[self._faults, self._origin_check],
                              client_max_size=FEATURES["max_upload_size"])
        self._add_routes(app)
        # A killed ComfyUI does not wait for its clients' keep-alive connections.
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.05)
        self._runner = runner
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        loop.run_until_complete(site.start())
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        sender = loop.create_task(self._send_loop())
        ready.set()
        loop.run_forever()
        sender.cancel()
        server = runner.server
        for connection in list(server.connections if server is not None else []):
            transport = connection.transport
            if transport is not None:
                transport.abort()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def stop(self) -> None:
        """Like killing the process: sockets are dropped, the port refuses connections."""
        if self.worker:
            self.worker.stop()
        self._stop_http()

    def stop_answering(self) -> None:
        """Unreachable, and still working: sockets dropped and connections refused (a network outage,
        a frozen proxy), while the queue keeps running and history is kept. ``answer_again()`` ends it."""
        self._stop_http()

    def answer_again(self) -> None:
        self._start_http()

    def _stop_http(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._abort_sockets(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if self._thread.is_alive():
                raise RuntimeError("the ComfyUI test server did not stop")
        self.sockets = {}
        self.socket_flags = {}

    def restart(self) -> None:
        """A new process on the same port: queue, history and caches are gone."""
        self.stop()
        self.start()

    def drop_sockets(self) -> None:
        """Drop every WebSocket connection mid-whatever, without a close handshake."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._abort_sockets(), self._loop).result(5)

    async def _abort_sockets(self) -> None:
        for ws in list(self.sockets.values()):
            transport = ws._req.transport if ws._req is not None else None  # type: ignore[union-attr]
            if transport is not None:
                transport.abort()
        self.sockets.clear()

    def __enter__(self) -> ComfyUITestServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- sending --------------------------------------------------------------------------------

    def _emit(self, event: str, data: Any, sid: str | None) -> None:
        loop, outbox = self._loop, self._outbox
        if loop is None or outbox is None or loop.is_closed():
            return
        # If the loop is shutting down the message is lost, as with a dying ComfyUI.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(outbox.put_nowait, (event, data, sid))

    async def _send_loop(self) -> None:
        assert self._outbox is not None
        while True:
            event, data, sid = await self._outbox.get()
            if event in self.lost_events:
                continue
            targets = list(self.sockets.items()) if sid is None else [(sid, self.sockets.get(sid))]
            for target_sid, ws in targets:
                if ws is None or ws.closed:
                    continue
                frame = encode_frame(event, data, self.socket_flags.get(target_sid, {}), self.preview_meta)
                if frame is None:
                    continue
                try:
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
                except (ConnectionError, RuntimeError):
                    continue

    # -- HTTP -----------------------------------------------------------------------------------

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path.removeprefix("/api") if request.path.startswith("/api/") else request.path
        self.paths_asked[path] = self.paths_asked.get(path, 0) + 1
        delay = self.path_delays.get(path)
        if delay:  # held until the delay has passed or the test takes it away (ComfyUI answers again)
            deadline = asyncio.get_running_loop().time() + delay
            while self.path_delays.get(path) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
        return await handler(request)

    @web.middleware
    async def _origin_check(self, request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        host = request.headers.get("Host", "")
        if origin and host.rsplit(":", 1)[0] in LOOPBACK_HOSTS:
            origin_host = origin.split("://", 1)[-1]
            if origin_host != host:
                return web.Response(status=403)
        return await handler(request)

    async def post_free(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        self.free_calls.append((await self._json_or_empty(request), self.worker.remaining()))
        return web.Response(status=200)

    def _add_routes(self, app: web.Application) -> None:
        table = [
            ("GET", "/ws", self.ws),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("POST", "/history", self.post_history),
            ("GET", "/object_info", self.get_object_info),
            ("GET", "/object_info/{node_class}", self.get_node_info),
            ("GET", "/system_stats", self.get_system_stats),
            ("GET", "/features", self.get_features),
            ("GET", "/embeddings", self.get_embeddings),
            ("GET", "/models", self.get_model_folders),
            ("GET", "/models/{folder}", self.get_models),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/view", self.view),
        ]
        for method, path, handler in table:
            app.router.add_route(method, path, handler)
            if path != "/ws":
                app.router.add_route(method, "/api" + path, handler)
        if newer(self.version):
            self.add_jobs_routes(app)

    def install_node(self, class_type: str, info: dict[str, Any]) -> None:
        self.custom_nodes[class_type] = info
        if self.worker is not None:
            self.worker.object_info[class_type] = info

    def object_info(self) -> dict[str, Any]:
        info = {**_BASE_OBJECT_INFO, **self.custom_nodes}
        for (class_type, input_name), folder in MODEL_COMBOS.items():
            if class_type in info:
                node = copy.deepcopy(info[class_type])
                node["input"]["required"][input_name][0] = list(self.models.get(folder, []))
                info[class_type] = node
        load_image = copy.deepcopy(info["LoadImage"])
        input_dir = self.root / "input"
        files = sorted(str(p.relative_to(input_dir)) for p in input_dir.rglob("*") if p.is_file())
        load_image["input"]["required"]["image"][0] = files
        info["LoadImage"] = load_image
        if newer(self.version):
            info = {name: {**node, **NEWER_NODE_INFO} for name, node in info.items()}
        return info

    def _check_load_image(self, name: str, value: Any) -> str | None:
        if name != "image":
            return None
        path = (self.root / "input" / str(value)).resolve()
        if not path.is_relative_to((self.root / "input").resolve()) or not path.is_file():
            return f"Invalid image file: {value}"
        return None

    async def post_prompt(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        self.prompt_posts += 1
        if self.drop_prompt_posts > 0:
            self.drop_prompt_posts -= 1
            if request.transport is not None:
                request.transport.abort()  # as a ComfyUI that dies mid-request: no answer at all
            return web.Response(status=500, text=SERVER_ERROR_TEXT)
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=500, text=SERVER_ERROR_TEXT)
        if self.answer_prompt is not None and isinstance(body, dict):
            answer = self.answer_prompt(body)
            if answer is not None:
                status, text = answer
                return web.Response(status=status, text=text,
                                    content_type="application/json" if text[:1] in "{[" and text else "text/plain")
        number: float = self.worker.counter
        self.worker.counter += 1
        if "number" in body:
            number = float(body["number"])
        elif body.get("front"):
            number = -number
        if "prompt" not in body:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                     "extra_info": {}}
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        if newer(self.version) and (refused := prompt_id_problem(body)) is not None:
            return web.json_response(refused, status=400)
        self.prompts_received.append(body)
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        validator = Validator(self.object_info(), {"LoadImage": self._check_load_image})
        try:
            outputs, node_errors = validator.validate(body["prompt"], body.get("partial_execution_targets"))
        except PromptInvalid as invalid:
            return web.json_response(invalid.body, status=400)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if newer(self.version):
            stamp(extra_data, request.headers)
        self.worker.put((number, prompt_id, body["prompt"], extra_data, outputs))
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def get_object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.object_info())

    async def get_node_info(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        info = self.object_info().get(name)
        return web.json_response({name: info} if info else {})

    async def get_system_stats(self, request: web.Request) -> web.Response:
        system = {
            "os": "posix", "ram_total": 25276510208, "ram_free": 23747248128, "comfyui_version": "0.3.64",
            "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
            "required_templates_version": "0.1.95", "python_version": "3.11.7", "pytorch_version": "2.14.1+cu130",
            "embedded_python": False, "argv": ["main.py", "--cpu", "--port", str(self.port)],
        }
        return web.json_response({"system": newer_system_stats(system) if newer(self.version) else system,
                                  "devices": self.devices})

    async def get_features(self, request: web.Request) -> web.Response:
        return web.json_response(FEATURES)

    async def get_embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def get_model_folders(self, request: web.Request) -> web.Response:
        if not self.models_api:
            return web.Response(status=404, text="404: Not Found")
        return web.json_response(MODEL_FOLDERS)

    async def get_models(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(list(self.models.get(folder, [])))

    # -- WebSocket ------------------------------------------------------------------------------

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        assert self.worker is not None
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = ws
        self.socket_flags.pop(sid, None)
        try:
            await ws.send_str(json.dumps({"type": "status", "data": {**self.worker.status_data(), "sid": sid}}))
            if self.worker.running_client == sid and self.worker.last_node_id is not None:
                await ws.send_str(json.dumps({"type": "executing", "data": {"node": self.worker.last_node_id}}))
            first = True
            async for message in ws:
                if message.type.name != "TEXT" or not first:
                    continue
                first = False
                try:
                    parsed = json.loads(message.data)
                except ValueError:
                    continue
                if isinstance(parsed, dict) and parsed.get("type") == "feature_flags":
                    self.socket_flags[sid] = dict(parsed.get("data") or {})
                    await ws.send_str(json.dumps({"type": "feature_flags", "data": FEATURES}))
        finally:
            # ComfyUI's quirk: closing an old socket forgets the id even if a newer socket reuses it.
            self.sockets.pop(sid, None)
        return ws

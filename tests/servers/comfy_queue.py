"""The queue and history routes of the ComfyUI test server, as ComfyUI 0.3.64 answers them
(``comfyui-protocol.md``): ``GET /prompt`` (what is left), ``GET``/``POST /queue`` (``clear``,
``delete``), targeted and global ``/interrupt``, ``/free``, and ``/history`` with ``max_items`` and
``offset`` (the newest items when only ``max_items`` is given), one prompt's entry, ``clear`` and
``delete``. A body that is not a JSON object counts as empty, as in ComfyUI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.servers.comfy_exec import PromptWorker


class QueueRoutes:
    """Mixed into the test server, whose ``worker`` holds the queue and the history."""

    worker: PromptWorker | None

    async def get_prompt(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        return web.json_response({"exec_info": {"queue_remaining": self.worker.remaining()}})

    async def get_queue(self, request: web.Request) -> web.Response:
        worker = self.worker
        assert worker is not None
        with worker.lock:
            running = [list(item) for item in worker.running.values()]
            pending = [list(item) for item in worker.pending]
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def _json_or_empty(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    async def post_queue(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        body = await self._json_or_empty(request)
        if body.get("clear"):
            self.worker.clear()
        if "delete" in body:
            self.worker.delete([str(i) for i in body["delete"]])
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        body = await self._json_or_empty(request)
        self.worker.interrupt(body.get("prompt_id"))
        return web.Response(status=200)

    async def post_free(self, request: web.Request) -> web.Response:
        await self._json_or_empty(request)
        return web.Response(status=200)

    async def get_history(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        max_items = request.query.get("max_items")
        offset = request.query.get("offset")
        with self.worker.lock:
            items = list(self.worker.history.items())
        count = int(max_items) if max_items is not None else None
        start = int(offset) if offset is not None else (max(len(items) - count, 0) if count is not None else 0)
        end = start + count if count is not None else len(items)
        return web.json_response(dict(items[start:end]))

    async def get_history_item(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        prompt_id = request.match_info["prompt_id"]
        with self.worker.lock:
            entry = self.worker.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def post_history(self, request: web.Request) -> web.Response:
        assert self.worker is not None
        body = await self._json_or_empty(request)
        with self.worker.lock:
            if body.get("clear"):
                self.worker.history.clear()
            for prompt_id in body.get("delete", []):
                self.worker.history.pop(str(prompt_id), None)
        return web.Response(status=200)

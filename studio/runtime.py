"""Everything that runs in the background of one Studio process, started after ``create_app``.

One process owns the ComfyUI listener, the telemetry sampler and (later) the scheduler and bot, so
none of them ever exists twice. ``Runtime`` starts them, serves HTTP + WebSocket with Werkzeug's
threaded server (flask-sock works on it and it runs on every platform), and stops them in order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from studio.errors import HTTP_STATUS_CODES, error_body
from studio.jsonio import dumps
from studio.services import Services

log = logging.getLogger(__name__)


class StudioRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, answering the errors it raises before Flask sees a request (414 URI too
    long, 431 headers too large, 400 malformed request line) with Studio's JSON error body
    instead of the standard library's HTML page."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        plain = HTTP_STATUS_CODES.get(code)
        if code == 414:
            plain = ("uri_too_long", "The address is too long.")
        elif code == 431:
            plain = ("headers_too_large", "The request headers are too large.")
        label, text = plain or ("http_error", message or "The request could not be handled.")
        body = dumps(error_body(label, text)).encode()
        self.log_error("code %d, message %s", code, message or text)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@dataclass
class Runtime:
    app: Flask
    services: Services
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    server: BaseWSGIServer | None = None

    def start_background(self) -> None:
        # Values saved on the Settings page in an earlier run win over the configuration.
        self.services.preferences.apply()
        self.services.library.refresh(force=True)
        # Studio's own ComfyUI (COMFYUI_DIR): started or taken over before the listener connects to it.
        self.services.comfyui_process.start_background()
        self.services.stream.start()
        self.services.job_engine.start()
        self.services.downloads.start()
        self.services.inventory.start()
        self.services.civitai_meta.start()
        self.services.gallery.start()  # reconciles with the output folder now and on a schedule
        self.services.webhooks.start()
        self.services.schedules.start()
        # The bot polls only when a token is set; a token saved later starts it (Settings → Telegram).
        self.services.telegram.enable(self.services.preferences.get("telegram_bot_token"))
        self.services.llm.adopt()  # a llama-server an earlier Studio left running is taken over, not doubled
        telemetry = threading.Thread(target=self._telemetry_loop, name="telemetry", daemon=True)
        telemetry.start()
        self._threads.append(telemetry)

    def _telemetry_loop(self) -> None:
        interval = self.services.settings.studio_telemetry_interval_s
        while not self._stop.wait(interval):
            if self.services.hub.client_count == 0:
                continue  # nobody is looking: don't poll ComfyUI for figures no one sees
            self.services.bus.publish("system/telemetry", self.services.telemetry.sample())

    def bind(self, host: str, port: int) -> BaseWSGIServer:
        self.server = make_server(host, port, self.app, threaded=True, request_handler=StudioRequestHandler)
        return self.server

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_port)

    def serve_forever(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.2)

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start background work and serve from a thread; returns the port. For tests and the desktop."""
        self.bind(host, port)
        self.start_background()
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self.port

    def stop(self) -> None:
        self._stop.set()
        self.services.hub.close_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.services.job_engine.stop()
        self.services.downloads.stop()
        self.services.inventory.stop()
        self.services.civitai_meta.stop()
        self.services.gallery.stop()
        self.services.schedules.stop()
        self.services.telegram.stop()
        self.services.llm.detach()  # it goes on serving; the next Studio adopts it
        self.services.webhooks.stop()
        self.services.comfyui_process.shutdown()  # its whole process group; an external one is left
        self.services.stream.stop()
        for thread in self._threads:
            thread.join(5)
        self.services.comfy.close()

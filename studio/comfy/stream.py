"""The WebSocket side: one listener per ComfyUI backend.

Rules taken from ComfyUI's real behaviour (``shared/design/comfyui-protocol.md`` §7):
- each connection gets a fresh ``clientId``: reusing one across sockets makes ComfyUI silently stop
  sending to the new socket when the old one closes;
- ``feature_flags`` with ``supports_preview_metadata`` is sent first, so previews arrive as type-4
  frames that name their prompt and node;
- reconnects back off exponentially with jitter up to a cap, and others can watch the
  connected/disconnected state (to reconcile jobs after a reconnect, to show it in the page).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import websocket

from studio.comfy.errors import ComfyProtocolError
from studio.comfy.messages import (
    ComfyMessage,
    PreviewImage,
    ProgressText,
    decode_binary_frame,
    decode_json_message,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StateChange:
    state: ConnectionState
    client_id: str | None
    error: str | None = None
    # How many times the socket connected so far: a reconnect is any connect after the first.
    connects: int = 0


MessageListener = Callable[[ComfyMessage], None]
BinaryListener = Callable[[PreviewImage | ProgressText], None]
StateListener = Callable[[StateChange], None]


class ComfyStream:
    def __init__(
        self,
        ws_url: str,
        *,
        connect_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 10.0,
        ping_interval_s: float = 20.0,
    ) -> None:
        self.ws_url = ws_url
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.ping_interval_s = ping_interval_s
        self._message_listeners: list[MessageListener] = []
        self._binary_listeners: list[BinaryListener] = []
        self._state_listeners: list[StateListener] = []
        self._state = ConnectionState.DISCONNECTED
        self._state_cond = threading.Condition()
        self._client_id: str | None = None
        self._stop = threading.Event()
        self._socket: websocket.WebSocket | None = None
        self._thread: threading.Thread | None = None
        self.connects = 0
        self.last_error: str | None = None
        self.server_features: dict[str, object] = {}

    # -- observers ------------------------------------------------------------------------------

    def on_message(self, listener: MessageListener) -> None:
        self._message_listeners.append(listener)

    def on_binary(self, listener: BinaryListener) -> None:
        self._binary_listeners.append(listener)

    def on_state(self, listener: StateListener) -> None:
        self._state_listeners.append(listener)

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    @property
    def client_id(self) -> str | None:
        """The clientId of the live socket: pass it as ``client_id`` when queueing prompts."""
        return self._client_id if self.connected else None

    def wait_for(self, state: ConnectionState, timeout: float) -> bool:
        with self._state_cond:
            return self._state_cond.wait_for(lambda: self._state is state, timeout)

    # -- lifecycle ------------------------------------------------------------------------------

    def set_url(self, ws_url: str) -> None:
        """Point the listener at another server: the live socket is dropped and the next one uses ``ws_url``."""
        if ws_url == self.ws_url:
            return
        self.ws_url = ws_url
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                sock.abort()

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._set_state(ConnectionState.CONNECTING, None)
        self._thread = threading.Thread(target=self._run, name="comfy-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                sock.abort()
        if self._thread:
            self._thread.join(timeout)
        self._set_state(ConnectionState.STOPPED, None)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._session()
                failures = 0
            except (OSError, websocket.WebSocketException, ComfyProtocolError) as err:
                self.last_error = f"{err.__class__.__name__}: {err}".strip(": ")
                failures += 1
            except Exception as err:  # noqa: BLE001 - whatever ComfyUI (or a bad URL) does, keep trying
                log.exception("the ComfyUI socket failed unexpectedly; reconnecting")
                self.last_error = f"{err.__class__.__name__}: {err}".strip(": ")[:300]
                failures += 1
            if self._stop.is_set():
                break
            self._set_state(ConnectionState.DISCONNECTED, self.last_error)
            delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(failures, 16))
            self._stop.wait(delay * random.uniform(0.5, 1.0))

    def _session(self) -> None:
        client_id = uuid.uuid4().hex
        sock = websocket.WebSocket(enable_multithread=True)
        sock.settimeout(self.connect_timeout_s)
        sock.connect(f"{self.ws_url}?clientId={client_id}")
        self._socket = sock
        try:
            sock.send(json.dumps(FEATURE_FLAGS))
            self._client_id = client_id
            self.connects += 1
            self.last_error = None
            self._set_state(ConnectionState.CONNECTED, None)
            self._receive_loop(sock)
        finally:
            self._socket = None
            self._client_id = None
            with contextlib.suppress(OSError, websocket.WebSocketException):
                sock.close(timeout=0.2)

    def _receive_loop(self, sock: websocket.WebSocket) -> None:
        sock.settimeout(self.ping_interval_s)
        awaiting_pong = False
        while not self._stop.is_set():
            try:
                opcode, payload = sock.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                if awaiting_pong:
                    raise
                sock.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.last_error = "ComfyUI closed the connection"
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self._dispatch_text(payload.decode("utf-8", "replace"))
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                self._dispatch_binary(payload)

    def _dispatch_text(self, text: str) -> None:
        try:
            message = decode_json_message(text)
        except ComfyProtocolError as err:
            log.warning("ignoring a ComfyUI message: %s", err)
            return
        if message.type == "feature_flags":
            self.server_features = dict(message.data)
        for listener in list(self._message_listeners):
            self._safe_call(listener, message)

    def _dispatch_binary(self, frame: bytes) -> None:
        try:
            decoded = decode_binary_frame(frame)
        except ComfyProtocolError as err:
            log.warning("ignoring a ComfyUI binary frame: %s", err)
            return
        for listener in list(self._binary_listeners):
            self._safe_call(listener, decoded)

    def _set_state(self, state: ConnectionState, error: str | None) -> None:
        with self._state_cond:
            if state is self._state:
                return
            self._state = state
            self._state_cond.notify_all()
        change = StateChange(state, self._client_id, error, self.connects)
        for listener in list(self._state_listeners):
            self._safe_call(listener, change)

    @staticmethod
    def _safe_call(listener: Callable[[T], None], value: T) -> None:
        try:
            listener(value)
        except Exception:  # noqa: BLE001 - a listener's bug must not kill the socket thread
            log.exception("ComfyUI stream listener failed")

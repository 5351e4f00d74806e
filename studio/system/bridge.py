"""Turns the ComfyUI socket's state and queue messages into Studio events."""

from __future__ import annotations

from studio.comfy import ComfyMessage, ComfyStream
from studio.comfy.stream import ConnectionState, StateChange
from studio.events import EventBus


class ComfyBridge:
    def __init__(self, stream: ComfyStream, bus: EventBus, *, url: str) -> None:
        self.bus = bus
        self.url = url
        self._last_connected: bool | None = None
        self.queue_remaining: int | None = None
        stream.on_state(self._on_state)
        stream.on_message(self._on_message)

    def _on_state(self, change: StateChange) -> None:
        if change.state not in (ConnectionState.CONNECTED, ConnectionState.DISCONNECTED):
            return
        connected = change.state is ConnectionState.CONNECTED
        if connected == self._last_connected:
            return
        self._last_connected = connected
        if not connected:
            self.queue_remaining = None
        self.bus.publish(
            "comfy/connection",
            {"connected": connected, "url": self.url, "error": None if connected else change.error,
             "reconnect": connected and change.connects > 1},
        )

    def _on_message(self, message: ComfyMessage) -> None:
        if message.type != "status":
            return
        exec_info = (message.data.get("status") or {}).get("exec_info") or {}
        remaining = exec_info.get("queue_remaining")
        if isinstance(remaining, int) and remaining != self.queue_remaining:
            self.queue_remaining = remaining
            self.bus.publish("comfy/queue", {"queue_remaining": remaining})

"""The socket fan-out's wire: one JSON text per event for every socket.

Browsers offer permessage-deflate; Studio declines it, since a compressed socket keeps its own zlib
stream and every event would be compressed again for each socket. A client that offers it still gets
its socket, uncompressed, and every event on it.
"""

from __future__ import annotations

import json

import websocket

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until


def test_a_socket_offering_compression_gets_plain_frames_and_every_event(
    runtime: Runtime, services: Services, admin_token: str
) -> None:
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{runtime.port}/ws", timeout=5,
        header=[f"Authorization: Bearer {admin_token}",
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
    try:
        assert "sec-websocket-extensions" not in {key.lower() for key in ws.getheaders()}
        assert json.loads(ws.recv())["type"] == "events/hello"
        wait_until(lambda: services.hub.client_count == 1)
        for n in range(20):
            services.bus.publish("system/notice", {"level": "info", "message": "compress me " * 50, "n": n})
        received: list[int] = []
        while len(received) < 20:
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            frame = json.loads(data)  # plain JSON: a compressed frame would not parse
            received += [m["payload"]["n"] for m in (frame if isinstance(frame, list) else [frame])
                         if m["type"] == "system/notice"]
        assert received == list(range(20))
    finally:
        ws.close()


def test_a_socket_that_offers_nothing_is_served_as_before(
    runtime: Runtime, services: Services, admin_token: str
) -> None:
    ws = websocket.create_connection(f"ws://127.0.0.1:{runtime.port}/ws", timeout=5,
                                     header=[f"Authorization: Bearer {admin_token}"])
    try:
        assert json.loads(ws.recv())["type"] == "events/hello"
        wait_until(lambda: services.hub.client_count == 1)
        services.bus.publish("system/notice", {"level": "info", "message": "plain"})
        frame = json.loads(ws.recv())
        assert [m["payload"]["message"] for m in (frame if isinstance(frame, list) else [frame])] == ["plain"]
    finally:
        ws.close()

import json
import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import websocket

from studio.events import EVENT_TYPES, EventBus
from studio.events.hub import ClientQueue, SocketHub
from studio.events.store import ActivityStore
from studio.events.types import SOCKET_MESSAGES
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_every_event_type_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z]+/[a-z_]+)` \|", (ROOT / "docs" / "events.md").read_text(), re.M))
    assert documented == set(EVENT_TYPES) | set(SOCKET_MESSAGES)


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        EventBus(EVENT_TYPES).publish("jobs/typo", {})


def test_publishing_from_many_threads_reaches_every_subscriber_once() -> None:
    bus = EventBus(EVENT_TYPES)
    seen: list[int] = []
    lock = threading.Lock()

    def record(event) -> None:  # type: ignore[no-untyped-def]
        with lock:
            seen.append(event.payload["n"])

    bus.subscribe(record)
    bus.subscribe(lambda event: 1 / 0)  # a broken subscriber must not stop the others
    threads = [
        threading.Thread(target=lambda base=base: [bus.publish("system/notice", {"n": base + i}) for i in range(200)])
        for base in range(0, 1000, 200)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1000))


def test_a_slow_client_gets_the_newest_preview_and_a_reset_instead_of_a_backlog() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=10)
    slow = hub.connect()
    for n in range(50):
        bus.publish("system/telemetry", {"n": n})
    batch = [json.loads(frame) for frame in slow.get_batch(0)]
    assert [m["payload"]["n"] for m in batch] == [49]

    for n in range(11):
        bus.publish("system/notice", {"message": str(n)})
    batch = [json.loads(frame) for frame in slow.get_batch(0)]
    assert batch[0]["type"] == "events/reset"
    assert slow.dropped == 11

    bus.publish("system/notice", {"message": "after"})
    assert [json.loads(m)["payload"]["message"] for m in slow.get_batch(0)] == ["after"]


def test_a_closed_queue_wakes_its_reader() -> None:
    queue = ClientQueue(5)
    threading.Timer(0.05, queue.close).start()
    assert queue.get_batch(5) == []
    assert queue.closed


def test_activity_is_kept_and_trimmed_by_count_and_age(services: Services) -> None:
    store = ActivityStore(services.engine, EVENT_TYPES, max_count=5, max_age=timedelta(days=1))
    old = datetime.now(UTC) - timedelta(days=3)
    store.record("system/notice", {"message": "ancient"}, created_at=old)
    for n in range(8):
        store.record("system/notice", {"message": f"n{n}"})

    removed = store.trim()

    assert removed == 4
    messages = [item["payload"]["message"] for item in store.recent(limit=50)]
    assert messages == ["n7", "n6", "n5", "n4", "n3"]


def test_persisted_events_reach_the_activity_api(client, services: Services) -> None:  # type: ignore[no-untyped-def]
    services.bus.publish("system/notice", {"level": "info", "message": "hello"})
    services.bus.publish("system/telemetry", {"cpu_percent": 3})  # live only, never stored

    items = client.get("/api/events?type=system/").get_json()["items"]

    assert [(i["type"], i["payload"]["message"]) for i in items] == [("system/notice", "hello")]


def _connect(port: int, token: str) -> websocket.WebSocket:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5,
                                     header=[f"Authorization: Bearer {token}"])
    hello = json.loads(ws.recv())
    assert hello["type"] == "events/hello"
    return ws


def test_ws_delivers_events_and_a_stalled_client_blocks_nobody(
    runtime: Runtime, services: Services, admin_token: str
) -> None:
    healthy = _connect(runtime.port, admin_token)
    stalled = socket.create_connection(("127.0.0.1", runtime.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Authorization: Bearer {admin_token}\r\n".encode()
        + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    wait_until(lambda: services.hub.client_count == 2)
    payload = {"level": "info", "message": "x" * 2000}
    for n in range(300):
        services.bus.publish("system/notice", {**payload, "n": n})

    received = []
    while len(received) < 300:
        frame = json.loads(healthy.recv())
        for message in frame if isinstance(frame, list) else [frame]:
            if message["type"] == "system/notice":
                received.append(message["payload"]["n"])
    assert received == list(range(300))
    healthy.close()
    stalled.close()


def test_audit_events_reach_only_admin_sockets() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=10)
    admin, user = hub.connect(is_admin=True), hub.connect(is_admin=False)
    bus.publish("auth/login", {"username": "amy", "ip": "127.0.0.1"})
    bus.publish("system/notice", {"level": "info", "message": "for everyone"})
    assert [json.loads(m)["type"] for m in admin.get_batch(0)] == ["auth/login", "system/notice"]
    assert [json.loads(m)["type"] for m in user.get_batch(0)] == ["system/notice"]

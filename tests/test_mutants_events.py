"""The live socket's fan-out as a person sees it: their own live events and nobody else's, frames
handed over as soon as they wait, in order, and a socket that closes leaves the hub.

Written against the survivors of ``./dev.sh mutate events/hub``."""

from __future__ import annotations

import json
import threading
import time

import websocket

from studio.auth.models import Role, TokenScope
from studio.events import EVENT_TYPES, EventBus
from studio.events.hub import ClientQueue, SocketHub
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary, wait_until

# get_batch is handed a long timeout; anything that waits for it instead of answering at once fails.
LONG = 10.0
AT_ONCE = 3.0


def token_of(services: Services, username: str, password: str) -> tuple[int, str]:
    _, identity = services.auth.login(username, password, ip="127.0.0.1", user_agent="tests")
    plain, _ = services.auth.create_token(identity, name="socket", scope=TokenScope.FULL, expires_at=None)
    return identity.user_id, canary(plain)


def person(services: Services, username: str) -> tuple[int, str]:
    password = canary(f"{username}'s long password")
    services.users.create_user(username, password, Role.USER, actor=ADMIN_NAME)
    return token_of(services, username, password)


def open_socket(port: int, token: str) -> websocket.WebSocket:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5,
                                     header=[f"Authorization: Bearer {token}"])
    hello = json.loads(ws.recv())
    assert hello["type"] == "events/hello"
    return ws


def messages_until_marker(ws: websocket.WebSocket, marker: str) -> list[dict]:
    """Every message the socket receives up to the ``system/notice`` whose message is ``marker``,
    and the rest of the frame that carries it: latest-wins events (progress) published before the
    marker ride at the end of the same batch."""
    seen: list[dict] = []
    while True:
        frame = json.loads(ws.recv())
        messages = frame if isinstance(frame, list) else [frame]
        found = False
        for message in messages:
            if message["type"] == "system/notice" and message["payload"].get("message") == marker:
                found = True
                continue
            seen.append(message)
        if found:
            return seen


def job_ids(messages: list[dict]) -> list[str]:
    return [m["payload"]["id"] for m in messages if m["type"] in ("jobs/update", "jobs/progress")]


def test_one_persons_live_job_events_never_reach_another_persons_socket(
    runtime: Runtime, services: Services
) -> None:
    services.users.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
    _, admin_token = token_of(services, ADMIN_NAME, ADMIN_PASSWORD)
    amy_id, amy_token = person(services, "amy")
    ben_id, ben_token = person(services, "ben")
    sockets = {name: open_socket(runtime.port, token)
               for name, token in (("admin", admin_token), ("amy", amy_token), ("ben", ben_token))}
    wait_until(lambda: services.hub.client_count == 3)

    services.bus.publish("jobs/update", {"id": "amy-1", "status": "queued"}, user_id=amy_id)
    services.bus.publish("jobs/update", {"id": "ben-1", "status": "queued"}, user_id=ben_id)
    services.bus.publish("jobs/progress", {"id": "amy-1", "percent": 50}, key="amy-1", user_id=amy_id)
    services.bus.publish("jobs/progress", {"id": "ben-1", "percent": 10}, key="ben-1", user_id=ben_id)
    services.bus.publish("system/notice", {"level": "info", "message": "for everyone"})
    services.bus.publish("system/notice", {"level": "info", "message": "marker"})

    try:
        seen = {name: messages_until_marker(ws, "marker") for name, ws in sockets.items()}
    finally:
        for ws in sockets.values():
            ws.close()
    assert sorted(job_ids(seen["amy"])) == ["amy-1", "amy-1"]
    assert sorted(job_ids(seen["ben"])) == ["ben-1", "ben-1"]
    assert sorted(job_ids(seen["admin"])) == ["amy-1", "amy-1", "ben-1", "ben-1"]
    for name in sockets:  # what is for everyone reaches everyone, whoever they are
        assert [m["payload"]["message"] for m in seen[name] if m["type"] == "system/notice"] == ["for everyone"]
    wait_until(lambda: services.hub.client_count == 0)


def test_the_hello_names_the_last_event_sent_before_the_socket_opened(
    runtime: Runtime, services: Services, admin_token: str
) -> None:
    last = services.bus.publish("system/notice", {"level": "info", "message": "before"})
    ws = websocket.create_connection(f"ws://127.0.0.1:{runtime.port}/ws", timeout=5,
                                     header=[f"Authorization: Bearer {admin_token}"])
    hello = json.loads(ws.recv())
    assert hello["payload"]["seq"] >= last.seq
    nxt = services.bus.publish("system/notice", {"level": "info", "message": "after"})
    assert nxt.seq > hello["payload"]["seq"]
    ws.close()


def test_a_fresh_hub_has_sent_nothing_and_then_names_the_newest_event() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=10)
    assert hub.last_seq == 0
    bus.publish("system/notice", {"message": "one"})
    newest = bus.publish("system/notice", {"message": "two"})
    assert hub.last_seq == newest.seq


def test_sockets_nobody_said_are_admin_or_someone_get_only_what_is_for_everyone() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=10)
    unnamed, bare = hub.connect(), ClientQueue(10)
    bus.subscribe(bare.put)
    bus.publish("auth/login", {"username": "amy", "ip": "127.0.0.1"})  # audit: admins only
    bus.publish("jobs/update", {"id": "j"}, user_id=7)
    bus.publish("system/notice", {"message": "for everyone"})
    for queue in (unnamed, bare):
        assert [json.loads(m)["type"] for m in queue.get_batch(0)] == ["system/notice"]


def test_frames_already_waiting_are_handed_over_at_once_whatever_their_kind() -> None:
    def waiting_after(*events: tuple[str, dict]) -> tuple[list[str], float]:
        bus = EventBus(EVENT_TYPES)
        queue = SocketHub(bus, queue_size=3).connect(is_admin=True)
        for type_, payload in events:
            bus.publish(type_, payload)
        started = time.monotonic()  # the queue stays open: nothing else will wake the reader
        batch = queue.get_batch(LONG)
        return [json.loads(m)["type"] for m in batch], time.monotonic() - started

    ordinary, took = waiting_after(("system/notice", {"message": "ordinary"}))
    assert ordinary == ["system/notice"]
    assert took < AT_ONCE

    latest_only, took = waiting_after(("system/telemetry", {"cpu_percent": 1}))
    assert latest_only == ["system/telemetry"]
    assert took < AT_ONCE

    # one more than the queue holds: only the reset is left waiting
    overflowed, took = waiting_after(*[("system/notice", {"message": str(n)}) for n in range(4)])
    assert overflowed == ["events/reset"]
    assert took < AT_ONCE


def test_an_open_queue_with_nothing_waiting_answers_after_its_timeout() -> None:
    queue = ClientQueue(5, is_admin=True)
    answers: list[list[str]] = []
    reader = threading.Thread(target=lambda: answers.append(queue.get_batch(0.05)), daemon=True)
    reader.start()
    reader.join(AT_ONCE)
    assert not reader.is_alive(), "get_batch ignored its timeout"
    assert answers == [[]]
    assert not queue.closed  # nothing closed it: the socket goes on waiting


def test_an_event_arriving_wakes_a_waiting_reader() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=5)
    queue = hub.connect(is_admin=True)
    answers: list[list[str]] = []
    reader = threading.Thread(target=lambda: answers.append(queue.get_batch(LONG)), daemon=True)
    reader.start()
    bus.publish("system/notice", {"message": "wake up"})
    reader.join(AT_ONCE)
    assert not reader.is_alive()
    assert [json.loads(m)["payload"]["message"] for m in answers[0]] == ["wake up"]


def test_newest_values_go_out_in_the_order_they_last_changed() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=10)
    queue = hub.connect(is_admin=True)
    bus.publish("downloads/update", {"id": "a", "bytes_done": 1}, key="a")
    bus.publish("downloads/update", {"id": "b", "bytes_done": 1}, key="b")
    bus.publish("downloads/update", {"id": "a", "bytes_done": 2}, key="a")
    batch = [json.loads(m) for m in queue.get_batch(0)]
    assert [(m["payload"]["id"], m["payload"]["bytes_done"]) for m in batch] == [("b", 1), ("a", 2)]
    assert [m["seq"] for m in batch] == sorted(m["seq"] for m in batch)


def test_every_frame_a_slow_client_lost_is_counted_across_overflows() -> None:
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=3)
    slow = hub.connect(is_admin=True)
    for n in range(8):  # overflows twice: 3 queued + the 4th, then again
        bus.publish("system/notice", {"message": str(n)})
    assert slow.dropped == 8
    batch = [json.loads(m)["type"] for m in slow.get_batch(0)]
    assert batch == ["events/reset"]

"""Fan-out of events to many ``/ws`` clients, one of them stalled (it never reads).

Studio serves for real (Werkzeug threads, flask-sock) in this process; the clients are
websocket-client connections in threads. Each event carries its publish time, so delivery latency
is measured on one clock. Prints p50 / p99 latency and events lost per healthy client."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.app import create_app  # noqa: E402
from studio.auth.models import TokenScope  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.events import EVENT_TYPES, EventBus, EventSpec  # noqa: E402
from studio.events.hub import SocketHub  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.runtime import Runtime  # noqa: E402
from studio.services import build_services  # noqa: E402


class Client(threading.Thread):
    def __init__(self, port: int, token: str, expected: int) -> None:
        super().__init__(daemon=True)
        # Browsers validate UTF-8 natively; websocket-client does it in pure Python, which would make
        # the clients, not Studio, the bottleneck.
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=120, skip_utf8_validation=True,
                                              header=[f"Authorization: Bearer {token}"])
        self.expected = expected
        self.latencies: list[float] = []
        self.seen: set[int] = set()
        self.resets = 0

    def run(self) -> None:
        while len(self.seen) < self.expected:
            try:
                frame = json.loads(self.ws.recv())
            except (websocket.WebSocketException, OSError):
                return
            now = time.monotonic()
            for message in frame if isinstance(frame, list) else [frame]:
                if message["type"] == "bench/tick":
                    self.latencies.append(now - message["payload"]["t"])
                    self.seen.add(message["payload"]["n"])
                elif message["type"] == "events/reset":
                    self.resets += 1


def run_clients(port: int, token: str, count: int, expected: int, connected: Any, results: Any, done: Any) -> None:
    """Runs in a child process: the clients must not compete with the server for one GIL."""
    clients = [Client(port, token, expected) for _ in range(count)]
    for client in clients:
        client.start()
    connected.set()
    for client in clients:
        client.join(300)
    results.put([(client.latencies, len(client.seen), client.resets) for client in clients])
    done.wait(30)  # stay alive so the parent can read this process's CPU time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="events published per second")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(studio_dir=Path(data), comfyui_url="http://127.0.0.1:9", studio_ws_queue_size=20_000)
        DataDir(settings.studio_dir).ensure()
        services = build_services(settings)
        upgrade(services.engine)
        services.users.setup_admin("bench", "bench password 123")
        _, identity = services.auth.login("bench", "bench password 123", ip="127.0.0.1", user_agent="bench")
        token, _ = services.auth.create_token(identity, name="bench", scope=TokenScope.FULL, expires_at=None)
        bus = EventBus({**EVENT_TYPES, "bench/tick": EventSpec("bench/tick", "benchmark event")})
        services.hub = SocketHub(bus, queue_size=settings.studio_ws_queue_size)
        runtime = Runtime(create_app(settings, services), services)
        port = runtime.start_in_thread()

        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
                        + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                        + f"Authorization: Bearer {token}\r\n\r\n".encode())
        context = multiprocessing.get_context("fork")
        connected, done, results = context.Event(), context.Event(), context.Queue()
        child = context.Process(target=run_clients,
                                args=(port, token, args.clients - 1, args.events, connected, results, done))
        child.start()
        connected.wait(60)
        while services.hub.client_count < args.clients:
            time.sleep(0.01)

        started = time.perf_counter()
        for n in range(args.events):
            target = started + n / args.rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            bus.publish("bench/tick", {"n": n, "t": time.monotonic(), "pad": "x" * 100})
        publish_s = time.perf_counter() - started
        outcome = results.get(timeout=300)
        client_cpu = psutil.Process(child.pid).cpu_times() if child.is_alive() else None
        done.set()
        child.join(30)
        server_cpu = psutil.Process().cpu_times()
        total_s = time.perf_counter() - started

        latencies = sorted(latency for client_latencies, _, _ in outcome for latency in client_latencies)
        lost = [args.events - seen for _, seen, _ in outcome]
        resets = sum(client_resets for _, _, client_resets in outcome)
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"{args.events} events to {args.clients} /ws clients (1 stalled, never reading), "
              f"published at {args.events / publish_s:.0f}/s, all delivered in {total_s:.1f}s")
        print(f"delivery latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
              f"events lost by healthy clients: {sum(lost)} (worst client {max(lost)}), resets: {resets}")
        clients_cpu_s = f"{client_cpu.user + client_cpu.system:.1f}" if client_cpu else "?"
        print(f"CPU seconds: Studio {server_cpu.user + server_cpu.system:.1f}, clients {clients_cpu_s}")
        stalled.close()
        runtime.stop()


if __name__ == "__main__":
    main()

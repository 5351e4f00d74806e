"""Load generators for the fan-out benches: many ``/ws`` clients in child processes, apart from Studio.

Each socket records (event type, latency) for every ``jobs/*`` event it receives, the latency read
against the event's own ``ts`` (one clock: the same machine). Two kinds of client:

- ``asyncio`` (the default): aiohttp sockets on one event loop per process, its frame reader in C,
  so a few processes hold hundreds of sockets for little CPU and the figure measures Studio, not
  the generator;
- ``threads``: websocket-client, one thread per socket in one process (what the bench used first:
  on 2 cores its 200 threads parsing JSON in pure Python compete with Studio for the CPU).

``deflate`` makes the asyncio clients offer permessage-deflate, as browsers do; ``pin`` puts the
clients on the last CPU and leaves the others to Studio.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
import time
from typing import Any

import websocket

Records = list[list[tuple[str, float]]]


def _jobs_events(frame: Any, now: float, into: list[tuple[str, float]]) -> None:
    for event in frame if isinstance(frame, list) else [frame]:
        if event["type"].startswith("jobs/"):
            into.append((event["type"], now - event["ts"]))


def _follow_threads(port: int, token: str, count: int, ready: Any, done: Any, results: Any) -> None:
    records: Records = [[] for _ in range(count)]
    sockets = [websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=120, skip_utf8_validation=True,
                                           header=[f"Authorization: Bearer {token}"]) for _ in range(count)]

    def read(index: int) -> None:
        ws = sockets[index]
        while not done.is_set():
            try:
                frame = json.loads(ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return
            _jobs_events(frame, time.time(), records[index])

    for index in range(count):
        threading.Thread(target=read, args=(index,), daemon=True).start()
    ready.put(count)
    done.wait(600)
    for ws in sockets:
        ws.close()
    results.put(records)


def _follow_asyncio(port: int, token: str, count: int, deflate: bool, ready: Any, done: Any,
                    results: Any) -> None:
    import aiohttp

    async def main() -> Records:
        records: Records = [[] for _ in range(count)]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            sockets = [await session.ws_connect(f"ws://127.0.0.1:{port}/ws", compress=15 if deflate else 0,
                                                headers={"Authorization": f"Bearer {token}"}, max_msg_size=0)
                       for _ in range(count)]

            async def read(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        return
                    _jobs_events(json.loads(message.data), time.time(), records[index])

            tasks = [asyncio.create_task(read(index, ws)) for index, ws in enumerate(sockets)]
            ready.put(count)
            await asyncio.get_running_loop().run_in_executor(None, done.wait, 600)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        return records

    results.put(asyncio.run(main()))


class Followers:
    """``clients`` sockets over ``procs`` forked processes; ``stop()`` returns every socket's records."""

    def __init__(self, port: int, token: str, clients: int, *, procs: int = 2, kind: str = "asyncio",
                 deflate: bool = False, pin: bool = False) -> None:
        context = multiprocessing.get_context("fork")
        self.ready, self.done, self.results = context.Queue(), context.Event(), context.Queue()
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        procs = 1 if kind == "threads" else max(1, min(procs, clients))
        shares = [clients // procs + (1 if n < clients % procs else 0) for n in range(procs)]
        self.children = []
        for share in shares:
            if kind == "threads":
                args: tuple[Any, ...] = (port, token, share, self.ready, self.done, self.results)
                target: Any = _follow_threads
            else:
                args = (port, token, share, deflate, self.ready, self.done, self.results)
                target = _follow_asyncio
            child = context.Process(target=_pinned, args=(target, args, cpus[-1:] if pin and len(cpus) > 1 else []))
            child.start()
            self.children.append(child)
        if pin and len(cpus) > 1:
            os.sched_setaffinity(0, cpus[:-1])
        for _ in shares:
            self.ready.get(timeout=120)

    def stop(self) -> Records:
        self.done.set()
        records: Records = []
        for _ in self.children:
            records += self.results.get(timeout=120)
        for child in self.children:
            child.join(30)
        return records


def _pinned(target: Any, args: tuple[Any, ...], cpus: list[int]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    target(*args)

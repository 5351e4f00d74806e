"""A stand-in for ComfyUI's ``main.py``: copied into a temporary "ComfyUI folder" by the process
tests, started by Studio exactly as a real ComfyUI is, it serves the ComfyUI test server on the
``--port`` it is given and logs to stdout like ComfyUI. ``standin.json`` next to it says how to
misbehave: ``{"exit": 1}`` dies at once with a traceback, ``{"grandchild": true}`` leaves a process
of its own running (its pid in ``grandchild.pid``), ``{"hang": true}`` never answers,
``{"exit_after_answering": 3}`` dies once Studio has seen it answer. Each start adds its pid to ``starts.txt``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def say(line: str) -> None:
    """A log line on stdout, as ComfyUI writes them (Studio points stdout at comfyui.log)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def answer_once_then_die(port: int, code: int) -> None:
    """Answers /system_stats as ComfyUI does (the standard library only: quick to start), then
    dies the way a crashing ComfyUI does."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    asked = []

    class Stats(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            if self.path not in ("/system_stats", "/api/system_stats"):
                self.send_error(404)
                return
            asked.append(self.path)
            body = json.dumps({"system": {"comfyui_version": "0.3.64"}, "devices": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", port), Stats)
    while not asked:
        server.handle_request()
    time.sleep(0.2)
    say("Segmentation fault (core dumped)")
    os._exit(code)


def main() -> None:
    settings = json.loads((HERE / "standin.json").read_text()) if (HERE / "standin.json").is_file() else {}
    sys.path.insert(0, settings["repo"])
    say("argv: " + json.dumps(sys.argv))
    say("environment has HF_TOKEN: " + ("yes" if "HF_TOKEN" in os.environ else "no"))
    with (HERE / "starts.txt").open("a") as starts:
        starts.write(f"{os.getpid()}\n")
    if settings.get("exit") is not None:
        say("Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>\n"
              "ModuleNotFoundError: No module named 'torch'")
        sys.exit(int(settings["exit"]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--listen")
    args, _ = parser.parse_known_args()
    if settings.get("grandchild"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (HERE / "grandchild.pid").write_text(str(child.pid))
    servers: list[Any] = []

    def ended(signum: int, _frame: object) -> None:
        say(f"got signal {signum}, stopping")
        for server in servers:
            server.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, ended)  # before the slow imports: a stop while starting is heard too
    if settings.get("hang"):
        while True:  # never answers (a first start that takes too long)
            time.sleep(3600)
    if settings.get("exit_after_answering") is not None:
        answer_once_then_die(args.port, int(settings["exit_after_answering"]))
    from tests.servers.comfyui import ComfyUITestServer

    servers.append(ComfyUITestServer(HERE / "fake-root", port=args.port).start())
    say(f"To see the GUI go to: http://{args.listen}:{servers[0].port}")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()

"""A local Comfy Registry (``api.comfy.org``) for node-pack installs, answering the documented shapes.

``GET /nodes/{id}`` (a Node: ``id``, ``name``, ``repository``, ``description``, ``latest_version``),
``GET /nodes/{id}/install[?version=]`` (a NodeVersion: ``id``, ``node_id``, ``version``,
``downloadUrl``, ``dependencies``, ``deprecated``, ``status``, ``createdAt``), 404 with
``{"message"}`` for an unknown pack or version, and the archives themselves under ``/files/``
(where the real registry points at its storage host). ``requests`` records every path asked.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def zip_of(files: dict[str, bytes | str]) -> bytes:
    """A registry archive: the pack's files at the top of the zip, as the registry publishes them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


class ComfyRegistry:
    def __init__(self) -> None:
        # node id -> {"name", "repository", "versions": {version: {"files": {...}, "dependencies": [...], ...}}}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.archives: dict[str, bytes] = {}
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def publish(self, node_id: str, version: str, files: dict[str, bytes | str], *, archive: bytes | None = None,
                dependencies: list[str] | None = None, status: str = "NodeVersionStatusActive",
                repository: str = "https://github.com/example/pack") -> None:
        node = self.nodes.setdefault(node_id, {"name": node_id.replace("-", " ").title(), "repository": repository,
                                               "versions": {}})
        self.archives[f"{node_id}/{version}.zip"] = archive if archive is not None else zip_of(files)
        node["versions"][version] = {"dependencies": dependencies or [], "status": status, "deprecated": False}

    def _version(self, node_id: str, version: str) -> dict[str, Any]:
        found = self.nodes[node_id]["versions"][version]
        return {"id": f"{node_id}-{version}-id", "node_id": node_id, "version": version, "changelog": "",
                "createdAt": "2026-11-01T10:00:00Z", "dependencies": found["dependencies"],
                "deprecated": found["deprecated"], "status": found["status"], "status_reason": "",
                "supported_os": [], "supported_accelerators": [], "comfy_node_extract_status": "success",
                "downloadUrl": f"{self.url}/files/{node_id}/{version}.zip"}

    def start(self) -> ComfyRegistry:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                registry.requests.append(parts.path)
                segments = [s for s in parts.path.split("/") if s]
                if segments[:1] == ["files"]:
                    data = registry.archives.get("/".join(segments[1:]))
                    if data is None:
                        self._json(404, {"message": "not found"})
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/zip")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if len(segments) < 2 or segments[0] != "nodes" or segments[1] not in registry.nodes:
                    self._json(404, {"message": "Node not found"})
                    return
                node = registry.nodes[segments[1]]
                latest = sorted(node["versions"])[-1]
                if segments[2:] == ["install"]:
                    wanted = parse_qs(parts.query).get("version", [latest])[0]
                    if wanted not in node["versions"]:
                        self._json(404, {"message": "Node version not found"})
                        return
                    self._json(200, registry._version(segments[1], wanted))
                elif len(segments) == 2:
                    self._json(200, {"id": segments[1], "name": node["name"], "repository": node["repository"],
                                     "description": "A test pack.", "latest_version": registry._version(
                                         segments[1], latest)})
                else:
                    self._json(404, {"message": "not found"})

        return Handler

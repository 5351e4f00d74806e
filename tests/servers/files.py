"""A plain HTTP file server for download tests: Range support (or not), throttling, a dropped
connection, tokens, redirects to another host, and a record of every request's headers.

Like a real server it sends a strong ``ETag`` (from the content) and ``Last-Modified`` (when that
content first appeared) and honours ``If-Range``: a validator that no longer matches gets the whole
new file with 200 instead of the range. It also answers as an HTTP proxy (a request line with an
absolute URL), so a test can send requests for any host name (``cdn-lfs.hf.co``,
``huggingface.co.evil.com``) to it and see which headers each host would have received.

Its Hugging Face and CivitAI parts answer as the real services do, as far as they publish it:
``tests/fixtures/hub-captures/`` holds what they send (from their API docs and huggingface_hub's
own code and tests) and ``tests/test_files_fakes_replay.py`` holds this server to it."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ignore_range = False
        self.chunk = 64 * 1024
        self.delay_per_chunk = 0.0
        self.drop_after: int | None = None  # close the connection once, after this many bytes
        self.after_drop: Callable[[], None] | None = None  # called once, right before that drop
        self.delays: dict[str, float] = {}  # path -> seconds per chunk, for that path only
        # Validators: a strong ETag (or a weak one, or none) and Last-Modified; If-Range honoured
        # unless ``ignore_if_range`` (a server that sends the range of whatever it has now).
        self.etag: Literal["strong", "weak"] | None = "strong"
        self.last_modified = True
        self.ignore_if_range = False
        self.trickle_after: int | None = None  # once, after this many bytes: a byte every 10 ms, for 20 s
        self.tokens: dict[str, str] = {}  # path -> required bearer token
        self.redirects: dict[str, str] = {}  # path -> absolute URL
        # path -> the Content-Disposition header sent with it, as written (``filename*=UTF-8''…`` too)
        self.dispositions: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        # A Hugging Face Hub: HEAD /{repo}/resolve/{revision}/{file} redirects to a signed storage URL on
        # another host (127.0.0.1 when the Hub is called as localhost), like the real Hub and its CDN.
        self.hub_files: dict[tuple[str, str], bytes] = {}  # LFS files: HEAD/GET redirect to the storage host
        self.hub_small_files: dict[tuple[str, str], bytes] = {}  # plain git files: answered by the Hub itself
        self.hub_private: dict[str, str] = {}  # repo -> required token
        self.hub_gated: dict[str, str] = {}  # repo -> the one token whose account accepted its terms
        self.hub_renamed: dict[str, str] = {}  # old repo name -> new: a relative redirect, as the Hub does
        self.hub_commit = "4b0b0ac4" * 5  # what X-Repo-Commit says for every repo (revision main, or itself)
        self.single_use_signatures = False
        # Where the Hub's storage lives: 127.0.0.1 on this port, or a host name such as
        # ``cas-bridge.xethub.hf.co`` (reached through this server acting as the proxy).
        self.hub_storage_host: str | None = None
        # CivitAI: /api/v1/model-versions/{id} and /api/download/models/{id} → storage on 127.0.0.1.
        self.civitai_versions: dict[int, dict[str, Any]] = {}
        self.civitai_key: str | None = None
        self._signatures: dict[str, bytes] = {}
        self._dispositions: dict[str, str] = {}  # signature -> file name, for Content-Disposition
        self._modified: dict[str, float] = {}  # content hash -> when that content first appeared
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def validators(self, data: bytes) -> tuple[str, str]:
        """(strong ETag, Last-Modified) of this content, as this server sends them."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if digest not in self._modified:
                latest = max(self._modified.values(), default=time.time() - 60)
                self._modified[digest] = max(time.time(), latest + 1)  # a new second for every new content
            when = self._modified[digest]
        return f'"{digest[:32]}"', formatdate(when, usegmt=True)

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _as_origin(self) -> None:
                """A proxy's request line names the whole URL: serve its path, as that host would."""
                if self.path.startswith(("http://", "https://")):
                    parts = urlsplit(self.path)
                    self.path = parts.path + (f"?{parts.query}" if parts.query else "")

            def _json(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _civitai_file(self, version_id: int, version: dict[str, Any]) -> dict[str, Any]:
                data = version["data"]
                digest = hashlib.sha256(data).hexdigest().upper()
                return {"id": version_id * 7, "name": version["name"], "type": "Model", "sizeKB": len(data) / 1024,
                        "metadata": {"format": "SafeTensor", "size": "pruned", "fp": "fp16"},
                        "pickleScanResult": "Success", "virusScanResult": "Success",
                        "hashes": {"AutoV1": digest[:8], "AutoV2": digest[:10], "SHA256": digest,
                                   "CRC32": f"{zlib.crc32(data):08X}", "AutoV3": digest[:12],
                                   "BLAKE3": hashlib.blake2s(data).hexdigest().upper()},  # a 64-hex stand-in
                        "downloadUrl": f"http://localhost:{server.port}/api/download/models/{version_id}",
                        "primary": True}

            def _civitai_version(self, version_id: int, *, nested: bool = False) -> dict[str, Any]:
                """A model version as ``/api/v1/model-versions/{id}`` answers it (``nested``: as an element of
                a model's ``modelVersions``, which has no ``model`` of its own)."""
                version = server.civitai_versions[version_id]
                model_type = version.get("type") or "Checkpoint"
                answer: dict[str, Any] = {
                    "id": version_id, "modelId": version_id * 10, "name": version.get("version_name", "v1"),
                    "description": None, "baseModel": version.get("base_model", "SD 1.5"),
                    "baseModelType": "Standard",
                    "air": f"urn:air:sd1:{model_type.lower()}:civitai:{version_id * 10}@{version_id}",
                    "status": "Published", "availability": "Public", "nsfwLevel": 1,
                    "createdAt": "2024-05-01T10:00:00.000Z", "updatedAt": "2024-05-01T10:05:00.000Z",
                    "publishedAt": "2024-05-01T10:05:00.000Z", "trainedWords": [], "earlyAccessConfig": None,
                    "earlyAccessEndsAt": None, "stats": {"downloadCount": 1234, "thumbsUpCount": 56},
                    "model": {"name": version.get("model_name", version["name"]), "type": model_type,
                              "nsfw": False, "poi": False},
                    "files": [self._civitai_file(version_id, version)], "images": [],
                    "downloadUrl": f"http://localhost:{server.port}/api/download/models/{version_id}"}
                if nested:
                    del answer["model"], answer["modelId"]
                return answer

            def _civitai_lookup(self) -> None:
                """``/api/v1/model-versions/by-hash/{sha}`` and ``/api/v1/models?query=&types=``."""
                from urllib.parse import parse_qs, urlsplit

                parts = urlsplit(self.path)
                if parts.path.startswith("/api/v1/model-versions/by-hash/"):
                    wanted = parts.path.rsplit("/", 1)[-1].lower()
                    for version_id, version in server.civitai_versions.items():
                        if hashlib.sha256(version["data"]).hexdigest() == wanted:
                            self._json(200, self._civitai_version(version_id))
                            return
                    self._json(404, {"error": "Model not found"})
                    return
                query = parse_qs(parts.query)
                words = set(query.get("query", [""])[0].lower().split())
                types = set(query.get("types", [""])[0].split(",")) - {""}
                items = []
                for version_id, version in server.civitai_versions.items():
                    name = str(version.get("model_name", version["name"]))
                    named = words & set(name.lower().replace("-", " ").split())
                    if named and (not types or version.get("type") in types):
                        items.append({"id": version_id * 10, "name": name, "description": "<p>A model.</p>",
                                      "type": version.get("type"), "nsfw": False, "tags": ["style"],
                                      "creator": {"username": "someone", "image": None},
                                      "stats": {"downloadCount": 1234, "thumbsUpCount": 56},
                                      "modelVersions": [self._civitai_version(version_id, nested=True)]})
                # one page holds everything: no nextCursor, as CivitAI answers at the end of the results
                self._json(200, {"items": items[: int(query.get("limit", ["20"])[0])], "metadata": {}})

            def _civitai(self) -> None:
                version_id = int(self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
                version = server.civitai_versions.get(version_id)
                # As on CivitAI, version details are public: only the download asks for a login.
                if (server.civitai_key and not self.path.startswith("/api/v1/")
                        and self.headers.get("Authorization") != f"Bearer {server.civitai_key}"):
                    self._json(401, {"error": "Unauthorized", "message": "The creator of this asset requires you "
                                     "to be logged in to download it"})
                    return
                if version is None:
                    self._json(404, {"error": f"No model version with id {version_id}"})
                    return
                if self.path.startswith("/api/v1/"):
                    self._json(200, self._civitai_version(version_id))
                    return
                signature = uuid.uuid4().hex
                server._signatures[signature] = version["data"]
                server._dispositions[signature] = version["name"]
                self.send_response(307)
                self.send_header("Location", f"http://127.0.0.1:{server.port}/cdn/{signature}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _trickle(self, rest: bytes) -> None:
                """A connection that stays open but barely moves, like a stuck CDN node."""
                deadline = time.monotonic() + 20
                for index in range(len(rest)):
                    if time.monotonic() > deadline:
                        break
                    try:
                        self.wfile.write(rest[index:index + 1])
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    time.sleep(0.01)
                self.connection.close()

            def _hub_error(self, status: int, code: str, message: str, *, commit: bool = False) -> None:
                """An error as the Hub names it: X-Error-Code / X-Error-Message (and a JSON body on GET)."""
                body = b"" if self.command == "HEAD" else json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                if commit:
                    self.send_header("X-Repo-Commit", server.hub_commit)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _hub(self) -> None:
                """HEAD or GET ``/{repo}/resolve/{revision}/{file}``, answered as huggingface.co does."""
                parts = self.path.split("?")[0].strip("/").split("/")
                repo, revision, file_name = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
                if repo in server.hub_renamed:
                    self.send_response(307)
                    self.send_header("Location", f"/{server.hub_renamed[repo]}/resolve/{revision}/{file_name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                known = {r for r, _ in [*server.hub_files, *server.hub_small_files]}
                given = self.headers.get("Authorization")
                needed = server.hub_private.get(repo)
                if repo not in known or (needed and given != f"Bearer {needed}"):
                    # a private repo without its token looks exactly like one that does not exist
                    self._hub_error(401, "RepoNotFound", "Repository not found")
                    return
                gated = server.hub_gated.get(repo)
                if gated and given != f"Bearer {gated}":
                    self._hub_error(401 if not given else 403, "GatedRepo",
                                    f"Access to model {repo} is restricted. You must have access to it and be "
                                    "authenticated to access it. Please log in.")
                    return
                if revision not in ("main", server.hub_commit):
                    self._hub_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                    return
                small = server.hub_small_files.get((repo, file_name))
                data = server.hub_files.get((repo, file_name))
                if small is None and data is None:
                    self._hub_error(404, "EntryNotFound", "Entry not found", commit=True)
                    return
                if small is not None:
                    blob = hashlib.sha1(b"blob %d\0" % len(small) + small).hexdigest()  # noqa: S324 - git's own id
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", server.hub_commit)
                    self.send_header("ETag", f'"{blob}"')
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(small)))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(small)
                    return
                assert data is not None
                signature = uuid.uuid4().hex
                server._signatures[signature] = data
                server._dispositions[signature] = file_name.rsplit("/", 1)[-1]
                storage = server.hub_storage_host or f"127.0.0.1:{server.port}"
                host = self.headers.get("Host") or f"localhost:{server.port}"
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}"
                body = f"Found. Redirecting to http://{storage}/cdn/{signature}".encode()
                self.send_response(302)
                self.send_header("Location", f"http://{storage}/cdn/{signature}")
                self.send_header("X-Repo-Commit", server.hub_commit)
                self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("X-Xet-Hash", hashlib.sha256(b"xet" + data).hexdigest())
                self.send_header("Link", f'<http://{host}/api/models/{repo}/xet-read-token/{server.hub_commit}>; '
                                         'rel="xet-auth"')
                self.send_header("ETag", f'"{hashlib.sha1(pointer.encode()).hexdigest()}"')  # noqa: S324 - the pointer's
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._as_origin()
                server.requests.append({"method": "HEAD", "path": self.path, "host": self.headers.get("Host"),
                                        "authorization": self.headers.get("Authorization")})
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    self.send_response(404)
                    self.end_headers()
                    return
                self._hub()

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._as_origin()
                record = {"path": self.path, "host": self.headers.get("Host"), "range": self.headers.get("Range"),
                          "if_range": self.headers.get("If-Range"),
                          "authorization": self.headers.get("Authorization"), "query": self.path.partition("?")[2]}
                server.requests.append(record)
                if self.path.startswith(("/api/v1/model-versions/by-hash/", "/api/v1/models")):
                    self._civitai_lookup()
                    return
                if self.path.startswith(("/api/v1/model-versions/", "/api/download/models/")):
                    self._civitai()
                    return
                hub_parts = self.path.split("?")[0].strip("/").split("/")
                if len(hub_parts) >= 5 and hub_parts[2] == "resolve":
                    self._hub()
                    return
                disposition = None
                if self.path.startswith("/cdn/"):
                    signature = self.path[5:]
                    data = server._signatures.get(signature)
                    if data is None:
                        self.send_response(403)  # expired or already used, like a signed storage URL
                        self.end_headers()
                        return
                    if server.single_use_signatures:
                        del server._signatures[signature]
                    server.files[self.path] = data
                    disposition = server._dispositions.get(signature)
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.end_headers()
                    return
                needed = server.tokens.get(self.path)
                if needed and self.headers.get("Authorization") != f"Bearer {needed}":
                    self.send_response(401)
                    self.end_headers()
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                etag, modified = server.validators(data)
                start = 0
                wanted = self.headers.get("Range")
                ranged = bool(wanted and not server.ignore_range and wanted.startswith("bytes="))
                condition = self.headers.get("If-Range")
                if ranged and condition and not server.ignore_if_range:
                    if condition.startswith(('"', "W/")):  # only a strong ETag can match (RFC 9110 13.1.5)
                        ranged = server.etag == "strong" and condition == etag
                    else:
                        ranged = server.last_modified and condition == modified
                if ranged and wanted:
                    start = int(wanted[6:].split("-")[0])
                    if start >= len(data):
                        record["status"] = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    record["status"] = 206
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    record["status"] = 200
                    self.send_response(200)
                if server.etag == "strong":
                    self.send_header("ETag", etag)
                elif server.etag == "weak":
                    self.send_header("ETag", f"W/{etag}")
                if server.last_modified:
                    self.send_header("Last-Modified", modified)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                if disposition:  # a signed storage URL names the file, as CivitAI's and the Hub's do
                    self.send_header("Content-Disposition", f'attachment; filename="{disposition}"')
                elif self.path in server.dispositions:
                    self.send_header("Content-Disposition", server.dispositions[self.path])
                self.end_headers()
                sent = 0
                for offset in range(start, len(data), server.chunk):
                    if server.drop_after is not None and sent >= server.drop_after:
                        server.drop_after = None
                        if server.after_drop is not None:
                            hook, server.after_drop = server.after_drop, None
                            hook()
                        self.connection.close()
                        return
                    if server.trickle_after is not None and sent >= server.trickle_after:
                        server.trickle_after = None
                        self._trickle(data[offset:])
                        return
                    try:
                        self.wfile.write(data[offset:offset + server.chunk])
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += server.chunk
                    delay = server.delays.get(self.path, server.delay_per_chunk)
                    if delay:
                        time.sleep(delay)

        return Handler

"""A local CivitAI: the REST API v1, the tRPC call for an image's generation data, and downloads that
redirect to a separate file host, answering in the shapes CivitAI documents.

Sources for the shapes (developer.civitai.com reference pages, the REST API wiki, the tRPC router as
the site calls it) are the same as ``tests/fixtures/hub-captures/civitai.json``:

- ``GET /api/v1/models/{id}`` (versions nested newest first, without their own ``model``),
  ``GET /api/v1/model-versions/{id}`` and ``/by-hash/{sha256}``, ``POST /api/v1/model-versions/by-hash``
  (a JSON array of hashes, at most 100, answered by an array of versions; unknown hashes are absent),
  ``GET /api/v1/models?query=&types=&limit=&cursor=`` (``{"items", "metadata": {"nextCursor"?}}``),
  ``GET /api/v1/images?modelId=&modelVersionId=&imageId=&withMeta=`` (``nsfwLevel`` a word there,
  ``browsingLevel`` the number; ``meta`` only with ``withMeta``), and
  ``GET /api/trpc/image.getGenerationData?input={"json":{"id":N}}`` (``{"result": {"data": {"json": …}}}``,
  errors as ``{"error": {"json": {"message", "code", "data": {"code", "httpStatus", "path"}}}}``).
- Errors as CivitAI sends them: ``{"error": "…"}`` with 404; 401 ``{"error": "Unauthorized", "message"}``
  for a login-required download; 403 for an early-access one; 429 (``Retry-After`` when asked for) and
  5xx as a Cloudflare HTML page, via ``throttle()`` and ``fail()``.
- Two sites on two ports with the same data: ``com`` (SFW only: NSFW models and images are left out,
  as civitai.com does) and ``red`` (everything). Downloads answer 307 to ``storage`` (a third port), and
  preview images live there too; ``storage.requests`` records the headers that host received.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

NSFW_WORDS = {1: "None", 2: "Soft", 4: "Mature", 8: "X", 16: "X"}


def png(color: tuple[int, int, int] = (200, 80, 40), size: tuple[int, int] = (64, 96)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@dataclass
class Version:
    id: int
    model_id: int
    name: str
    file_name: str
    data: bytes
    base_model: str = "SD 1.5"
    trained_words: list[str] = field(default_factory=list)
    login_required: bool = False
    early_access: bool = False
    images: list[int] = field(default_factory=list)  # image ids, first is the preview


@dataclass
class Model:
    id: int
    name: str
    type: str
    nsfw: bool = False
    versions: list[int] = field(default_factory=list)  # oldest first, as added


class _Storage:
    """The file and image host: it never needs, and must never see, a CivitAI key."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str, str | None]] = {}  # path -> (bytes, type, file name)
        self.requests: list[dict[str, Any]] = []
        storage = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                storage.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                         "query": urlsplit(self.path).query})
                blob = storage.blobs.get(urlsplit(self.path).path)
                if blob is None:
                    self.send_response(403)  # an expired signature, as S3 answers it
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, kind, name = blob
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                if name:
                    self.send_header("Content-Disposition", f'attachment; filename="{name}"')
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


class CivitaiServer:
    def __init__(self) -> None:
        self.models: dict[int, Model] = {}
        self.versions: dict[int, Version] = {}
        self.images: dict[int, dict[str, Any]] = {}
        self.key: str | None = None  # the API key of the account that is signed in
        self.requests: list[dict[str, Any]] = []
        self.storage = _Storage()
        self._faults: list[tuple[int, str | None]] = []  # (status, Retry-After) for the next requests
        self._ids = iter(range(1000, 10**9))
        self._lock = threading.Lock()
        self._sites = {site: self._server(site) for site in ("com", "red")}
        self._threads: list[threading.Thread] = []

    # -- data ------------------------------------------------------------------------------------

    def add_version(self, file_name: str, data: bytes, *, model_name: str | None = None, model_type: str = "LORA",
                    model_id: int | None = None, version_name: str = "v1", nsfw: bool = False,
                    base_model: str = "SD 1.5", trained_words: list[str] | None = None,
                    login_required: bool = False, early_access: bool = False,
                    preview: bytes | None = None, preview_nsfw_level: int = 1) -> Version:
        """A model version with one file (and one preview image when ``preview`` is given); a new
        model unless ``model_id`` names an existing one (the version is then its newest)."""
        with self._lock:
            if model_id is None:
                model_id = next(self._ids)
                self.models[model_id] = Model(model_id, model_name or file_name.rsplit(".", 1)[0], model_type, nsfw)
            version = Version(next(self._ids), model_id, version_name, file_name, data, base_model,
                              list(trained_words or []), login_required, early_access)
            self.models[model_id].versions.append(version.id)
            self.versions[version.id] = version
        if preview is not None:
            version.images.append(self.add_image(preview, version_ids=[version.id], nsfw_level=preview_nsfw_level))
        return version

    def add_image(self, data: bytes, *, version_ids: list[int] | None = None, nsfw_level: int = 1,
                  meta: dict[str, Any] | None = None, process: str = "txt2img") -> int:
        image_id = next(self._ids)
        path = f"/images/{uuid.uuid4()}/width=450/{image_id}.png"
        self.storage.blobs[path] = (data, "image/png", None)
        self.images[image_id] = {"id": image_id, "path": path, "nsfw_level": nsfw_level, "meta": meta,
                                 "version_ids": list(version_ids or []), "process": process}
        return image_id

    def throttle(self, count: int = 1, retry_after: str | None = "2") -> None:
        """The next ``count`` API requests get 429, with this ``Retry-After`` (None: without one)."""
        self._faults.extend([(429, retry_after)] * count)

    def fail(self, count: int = 1, status: int = 503) -> None:
        self._faults.extend([(status, None)] * count)

    def api_requests(self, prefix: str = "/api/") -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith(prefix)]

    # -- lifecycle -------------------------------------------------------------------------------

    def url(self, site: str = "red") -> str:
        return f"http://127.0.0.1:{self._sites[site].server_address[1]}"

    def start(self) -> CivitaiServer:
        for server in [*self._sites.values(), self.storage.server]:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in [*self._sites.values(), self.storage.server]:
            server.shutdown()
            server.server_close()

    # -- answers ---------------------------------------------------------------------------------

    def _file(self, version: Version) -> dict[str, Any]:
        digest = hashlib.sha256(version.data).hexdigest().upper()
        return {"id": version.id * 3, "name": version.file_name, "type": "Model", "sizeKB": len(version.data) / 1024,
                "metadata": {"format": "SafeTensor", "size": "pruned", "fp": "fp16"},
                "pickleScanResult": "Success", "virusScanResult": "Success",
                "hashes": {"AutoV1": digest[:8], "AutoV2": digest[:10], "SHA256": digest, "CRC32": digest[-8:],
                           "BLAKE3": hashlib.blake2s(version.data).hexdigest().upper(), "AutoV3": digest[:12]},
                "downloadUrl": f"{self._base}/api/download/models/{version.id}", "primary": True}

    def _version_images(self, version: Version, site: str) -> list[dict[str, Any]]:
        shown = []
        for image_id in version.images:
            image = self.images[image_id]
            if site == "com" and image["nsfw_level"] > 2:
                continue
            shown.append({"url": self.storage.url + image["path"], "nsfwLevel": image["nsfw_level"], "width": 64,
                          "height": 96, "hash": "U5PZfSi_.AyE_3t7t7R**0o#DgR4", "type": "image", "hasMeta": True,
                          "hasPositivePrompt": True, "onSite": False, "remixOfId": None, "minor": False,
                          "poi": False})
        return shown

    def _version(self, version: Version, site: str, *, nested: bool = False) -> dict[str, Any]:
        model = self.models[version.model_id]
        kind = model.type.lower()
        answer: dict[str, Any] = {
            "id": version.id, "modelId": model.id, "name": version.name, "description": None,
            "baseModel": version.base_model, "baseModelType": "Standard",
            "air": f"urn:air:sd1:{kind}:civitai:{model.id}@{version.id}", "status": "Published",
            "availability": "EarlyAccess" if version.early_access else "Public", "nsfwLevel": 1,
            "createdAt": "2025-05-01T10:00:00.000Z", "updatedAt": "2025-05-01T10:05:00.000Z",
            "publishedAt": "2025-05-01T10:05:00.000Z", "trainedWords": list(version.trained_words),
            "earlyAccessConfig": {"timeframe": 7} if version.early_access else None,
            "earlyAccessEndsAt": "2099-01-01T00:00:00.000Z" if version.early_access else None,
            "stats": {"downloadCount": 1234, "thumbsUpCount": 56, "thumbsDownCount": 1},
            "model": {"name": model.name, "type": model.type, "nsfw": model.nsfw, "poi": False, "minor": False},
            "files": [self._file(version)], "images": self._version_images(version, site),
            "downloadUrl": f"{self._base}/api/download/models/{version.id}"}
        if nested:
            del answer["model"], answer["modelId"]
        return answer

    def _model(self, model: Model, site: str) -> dict[str, Any]:
        return {"id": model.id, "name": model.name, "description": "<p>A model.</p>", "type": model.type,
                "poi": False, "nsfw": model.nsfw, "allowNoCredit": True, "allowCommercialUse": ["Image"],
                "allowDerivatives": True, "allowDifferentLicense": True, "tags": ["style"],
                "creator": {"username": "someone", "image": None},
                "stats": {"downloadCount": 1234, "favoriteCount": 0, "thumbsUpCount": 56, "commentCount": 2},
                "modelVersions": [self._version(self.versions[v], site, nested=True)
                                  for v in reversed(model.versions)]}

    def _visible(self, version: Version, site: str) -> bool:
        return site == "red" or not self.models[version.model_id].nsfw

    def _by_hash(self, sha: str, site: str) -> Version | None:
        sha = sha.lower()
        return next((v for v in self.versions.values()
                     if hashlib.sha256(v.data).hexdigest() == sha and self._visible(v, site)), None)

    def _image(self, image: dict[str, Any], *, with_meta: bool) -> dict[str, Any]:
        level = image["nsfw_level"]
        answer: dict[str, Any] = {
            "id": image["id"], "url": self.storage.url + image["path"], "hash": "U5PZfSi_.AyE_3t7t7R**0o#DgR4",
            "width": 64, "height": 96, "type": "image", "nsfw": level > 1, "nsfwLevel": NSFW_WORDS.get(level, "X"),
            "browsingLevel": level, "createdAt": "2025-04-17T21:28:57.225Z", "postId": image["id"] // 2,
            "username": "someone", "baseModel": "SD 1.5", "modelVersionIds": image["version_ids"],
            "stats": {"cryCount": 0, "laughCount": 0, "likeCount": 3, "dislikeCount": 0, "heartCount": 1,
                      "commentCount": 0}}
        if with_meta:
            answer["meta"] = image["meta"]
        return answer

    @property
    def _base(self) -> str:
        return getattr(_current, "base", self.url("red"))

    def _server(self, site: str) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _fault(self) -> bool:
                with fake._lock:
                    fault = fake._faults.pop(0) if fake._faults else None
                if fault is None:
                    return False
                status, retry_after = fault
                if status == 429:
                    self._send(429, {"error": "Too Many Requests"}, {"Retry-After": retry_after} if retry_after else {})
                    return True
                body = f"<html><head><title>{status} Bad gateway</title></head><body>cloudflare</body></html>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True

            def _record(self, body: Any = None) -> tuple[str, dict[str, list[str]]]:
                parts = urlsplit(self.path)
                fake.requests.append({"method": self.command, "site": site, "path": self.path, "route": parts.path,
                                      "query": parts.query, "authorization": self.headers.get("Authorization"),
                                      "body": body})
                _current.base = f"http://127.0.0.1:{self.server.server_address[1]}"
                return parts.path, parse_qs(parts.query)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    body = None
                path, _ = self._record(body)
                if self._fault():
                    return
                if path != "/api/v1/model-versions/by-hash":
                    self._send(405 if path.startswith("/api/v1/") else 404, {"error": "Method not allowed"})
                    return
                if not isinstance(body, list) or not all(isinstance(h, str) for h in body) or len(body) > 100:
                    self._send(400, {"error": [{"code": "invalid_type", "expected": "array", "path": [],
                                                "message": "Expected an array of at most 100 hashes"}]})
                    return
                found = {v.id: v for v in (fake._by_hash(h, site) for h in body) if v is not None}
                self._send(200, [fake._version(v, site) for v in found.values()])

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path, query = self._record()
                if self._fault():
                    return
                first = {key: values[0] for key, values in query.items()}
                if path.startswith("/api/trpc/image.getGenerationData"):
                    self._generation_data(first.get("input", ""))
                elif path.startswith("/api/v1/model-versions/by-hash/"):
                    version = fake._by_hash(path.rsplit("/", 1)[-1], site)
                    if version is None:
                        self._send(404, {"error": "Model not found"})
                    else:
                        self._send(200, fake._version(version, site))
                elif path.startswith("/api/v1/model-versions/"):
                    self._one_version(path.rsplit("/", 1)[-1])
                elif path.startswith("/api/v1/models/"):
                    model = fake.models.get(_number(path.rsplit("/", 1)[-1]))
                    if model is None or (site == "com" and model.nsfw):
                        self._send(404, {"error": f"No model with id {path.rsplit('/', 1)[-1]}"})
                    else:
                        self._send(200, fake._model(model, site))
                elif path == "/api/v1/models":
                    self._search(first)
                elif path == "/api/v1/images":
                    self._images(first)
                elif path.startswith("/api/download/models/"):
                    self._download(path.rsplit("/", 1)[-1])
                else:
                    self._send(404, {"error": "Not found"})

            def _one_version(self, raw: str) -> None:
                version = fake.versions.get(_number(raw))
                if version is None or not fake._visible(version, site):
                    self._send(404, {"error": f"No version with id {raw}"})
                else:
                    self._send(200, fake._version(version, site))

            def _search(self, first: dict[str, str]) -> None:
                if "page" in first and "query" in first:
                    self._send(400, {"error": "Cannot use page param with query search. Use cursor-based "
                                              "pagination."})
                    return
                words = set(first.get("query", "").lower().split())
                types = set(first.get("types", "").split(",")) - {""}
                models = [m for m in fake.models.values() if (site == "red" or not m.nsfw)
                          and (not types or m.type in types)
                          and (not words or words & set(m.name.lower().replace("-", " ").split()))]
                start, limit = _number(first.get("cursor", "0")), max(1, min(100, _number(first.get("limit", "20"))))
                page = models[start:start + limit]
                metadata: dict[str, Any] = {}
                if start + limit < len(models):
                    metadata = {"nextCursor": str(start + limit),
                                "nextPage": f"{fake._base}/api/v1/models?cursor={start + limit}&limit={limit}"}
                self._send(200, {"items": [fake._model(m, site) for m in page], "metadata": metadata})

            def _images(self, first: dict[str, str]) -> None:
                with_meta = first.get("withMeta") == "true"
                chosen = [i for i in fake.images.values() if (site == "red" or i["nsfw_level"] <= 2)
                          and ("imageId" not in first or i["id"] == _number(first["imageId"]))
                          and ("modelVersionId" not in first or _number(first["modelVersionId"]) in i["version_ids"])
                          and ("modelId" not in first or any(fake.versions[v].model_id == _number(first["modelId"])
                                                             for v in i["version_ids"]))]
                limit = max(1, min(200, _number(first.get("limit", "100"))))
                self._send(200, {"items": [fake._image(i, with_meta=with_meta) for i in chosen[:limit]],
                                 "metadata": {}})

            def _generation_data(self, raw: str) -> None:
                try:
                    image_id = json.loads(raw)["json"]["id"]
                except (ValueError, KeyError, TypeError):
                    image_id = None
                image = fake.images.get(image_id) if isinstance(image_id, int) else None
                if image is None or (site == "com" and image["nsfw_level"] > 2):
                    self._send(404, {"error": {"json": {"message": f"No image with id {image_id}", "code": -32004,
                                                        "data": {"code": "NOT_FOUND", "httpStatus": 404,
                                                                 "path": "image.getGenerationData"}}}})
                    return
                resources = []
                for v in image["version_ids"]:
                    model = fake.models[fake.versions[v].model_id]
                    resources.append({"imageId": image["id"], "modelVersionId": v, "strength": 0.8,
                                      "modelId": model.id, "modelName": model.name, "modelType": model.type.lower(),
                                      "versionId": v, "versionName": fake.versions[v].name, "baseModel": "SD 1.5"})
                self._send(200, {"result": {"data": {"json": {
                    "type": "image", "onSite": False, "process": image["process"], "meta": image["meta"],
                    "resources": resources, "tools": [], "techniques": [], "external": None, "canRemix": True,
                    "remixOfId": None}}}})

            def _download(self, raw: str) -> None:
                version = fake.versions.get(_number(raw))
                signed_in = fake.key is not None and self.headers.get("Authorization") == f"Bearer {fake.key}"
                if version is None:
                    self._send(404, {"error": f"No version with id {raw}"})
                    return
                if version.login_required and not signed_in:
                    self._send(401, {"error": "Unauthorized", "message": "The creator of this asset requires you "
                                     "to be logged in to download it"})
                    return
                if version.early_access and not signed_in:
                    self._send(403, {"error": "Forbidden", "message": "This asset is in Early Access. You can use "
                                     "Buzz to access it now"})
                    return
                path = f"/files/{uuid.uuid4().hex}/{version.file_name}"
                fake.storage.blobs[path] = (version.data, "application/octet-stream", version.file_name)
                self.send_response(307)
                self.send_header("Location", f"{fake.storage.url}{path}?X-Amz-Signature={uuid.uuid4().hex}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server


_current = threading.local()  # the site a handler thread is answering for, for the URLs it writes


def _number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1

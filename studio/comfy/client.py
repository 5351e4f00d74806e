"""HTTP side of the ComfyUI protocol.

Every call has a timeout, and every failure becomes one of ``studio.comfy.errors``: callers never
see a raw ``requests`` exception. ``/object_info`` (about 1.7 MB on a real server) is cached until
``refresh=True`` or ``invalidate_object_info()``: custom nodes only change on restart, and the model
lists inside it change when a download finishes (Studio invalidates it then, and on every reconnect)
or when someone drops a file into ComfyUI's folders (``refresh_models`` notices that with the cheap
``/models/<folder>`` calls and drops the cache only then).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from studio.comfy.errors import (
    ComfyError,
    ComfyNotFound,
    ComfyProtocolError,
    ComfyRejected,
    ComfyUnavailable,
    ComfyUnsendable,
)
from studio.comfy.features import ServerFeatures, detect

DEFAULT_TIMEOUT_S = 10.0
# Uploads and /view downloads can be large: the timeout then bounds each read, not the whole transfer.
STREAM_CHUNK = 256 * 1024


@dataclass(frozen=True)
class PromptAccepted:
    prompt_id: str
    number: float
    # Outputs that failed validation while others passed: ComfyUI still runs the valid ones.
    node_errors: dict[str, Any]


@dataclass(frozen=True)
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs_to_execute: list[str]

    @property
    def client_id(self) -> str | None:
        value = self.extra_data.get("client_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class QueueState:
    running: list[QueueItem]
    # Sorted by number (run order); ComfyUI itself sends raw heap order.
    pending: list[QueueItem]

    def position(self, prompt_id: str) -> int | None:
        """0 while running, 1.. while waiting, None when ComfyUI does not have it."""
        if any(item.prompt_id == prompt_id for item in self.running):
            return 0
        for index, item in enumerate(self.pending, start=1):
            if item.prompt_id == prompt_id:
                return index
        return None

    @property
    def remaining(self) -> int:
        return len(self.running) + len(self.pending)


def new_prompt_id() -> str:
    """A canonical lowercase UUID: newer ComfyUI rejects any other prompt id."""
    return str(uuid.uuid4())


def display_url(url: str) -> str:
    """``http://user:pass@host:8188`` → ``http://…@host:8188``; other URLs unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="…@" + parts.netloc.rsplit("@", 1)[1]))


class ComfyClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._session = session or requests.Session()
        self._object_info: dict[str, Any] | None = None
        self._object_info_lock = threading.Lock()
        self._model_index: dict[str, set[str]] | None = None
        # What the server can do, found at connect (``detect_features``); None until then.
        self.server: ServerFeatures | None = None

    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        self._base_url = url.rstrip("/")
        # The address as people and logs may see it: credentials in the URL never leave this object.
        self.display_url = display_url(self._base_url)

    @property
    def ws_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"

    # -- plumbing -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._session.request(method, url, timeout=timeout or self.timeout_s, **kwargs)
        except (requests.exceptions.InvalidJSONError, UnicodeError) as err:
            raise ComfyUnsendable(f"{method} {path}: the request cannot be written ({err.__class__.__name__})") from err
        except requests.Timeout as err:
            raise ComfyUnavailable(f"ComfyUI at {self.display_url} did not answer {method} {path} in time") from err
        except requests.ConnectionError as err:
            raise ComfyUnavailable(f"ComfyUI at {self.display_url} cannot be reached") from err
        except requests.RequestException as err:
            raise ComfyUnavailable(f"{method} {path} to ComfyUI failed: {err.__class__.__name__}") from err
        if response.status_code >= 500:
            raise ComfyUnavailable(f"ComfyUI answered {response.status_code} to {method} {path}",
                                   status=response.status_code)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 404:
            raise ComfyNotFound(f"ComfyUI has no {path}")
        if response.status_code != 200:
            raise ComfyProtocolError(f"ComfyUI answered {response.status_code} to {method} {path}")
        try:
            return response.json()
        except ValueError as err:
            raise ComfyProtocolError(f"ComfyUI sent invalid JSON for {method} {path}") from err

    def _post_ok(self, path: str, payload: dict[str, Any] | None = None) -> None:
        response = self._request("POST", path, json=payload if payload is not None else {})
        if response.status_code != 200:
            raise ComfyProtocolError(f"ComfyUI answered {response.status_code} to POST {path}")

    # -- prompts and queue ----------------------------------------------------------------------

    def queue_prompt(
        self,
        prompt: dict[str, Any],
        *,
        client_id: str | None = None,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        front: bool = False,
        number: float | None = None,
    ) -> PromptAccepted:
        """Queue ``prompt`` (API format). Raises ``ComfyRejected`` with ComfyUI's node errors on 400."""
        body: dict[str, Any] = {"prompt": prompt, "prompt_id": prompt_id or new_prompt_id()}
        if client_id:
            body["client_id"] = client_id
        if extra_data:
            body["extra_data"] = extra_data
        if front:
            body["front"] = True
        if number is not None:
            body["number"] = number
        response = self._request("POST", "/prompt", json=body)
        try:
            answer = response.json()
        except ValueError as err:
            raise ComfyProtocolError(f"ComfyUI answered {response.status_code} without JSON to POST /prompt") from err
        if response.status_code == 400:
            raise ComfyRejected(answer.get("error") or {}, answer.get("node_errors") or {})
        if response.status_code != 200 or "prompt_id" not in answer:
            raise ComfyProtocolError(f"unexpected answer {response.status_code} to POST /prompt")
        return PromptAccepted(str(answer["prompt_id"]), answer.get("number", 0), answer.get("node_errors") or {})

    def get_queue(self) -> QueueState:
        raw = self._json("GET", "/queue")
        try:
            running = [self._queue_item(item) for item in raw["queue_running"]]
            pending = sorted((self._queue_item(item) for item in raw["queue_pending"]), key=lambda i: i.number)
        except (KeyError, TypeError, IndexError) as err:
            raise ComfyProtocolError("ComfyUI's /queue answer has an unexpected shape") from err
        return QueueState(running, pending)

    @staticmethod
    def _queue_item(raw: list[Any]) -> QueueItem:
        return QueueItem(raw[0], str(raw[1]), raw[2], raw[3] or {}, list(raw[4]))

    def delete_from_queue(self, prompt_ids: list[str]) -> None:
        """Remove waiting prompts; ComfyUI never touches the running one this way."""
        self._post_ok("/queue", {"delete": list(prompt_ids)})

    def clear_queue(self) -> None:
        self._post_ok("/queue", {"clear": True})

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt; with ``prompt_id``, only if that one is running."""
        self._post_ok("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def free(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        self._post_ok("/free", {"unload_models": unload_models, "free_memory": free_memory})

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry, or None while ComfyUI does not know it as finished."""
        answer = self._json("GET", f"/history/{prompt_id}")
        if not isinstance(answer, dict):
            raise ComfyProtocolError("ComfyUI's /history answer is not an object")
        entry = answer.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    def history_list(self, *, max_items: int | None = None, offset: int | None = None) -> dict[str, Any]:
        params = {k: v for k, v in {"max_items": max_items, "offset": offset}.items() if v is not None}
        answer = self._json("GET", "/history", params=params)
        if not isinstance(answer, dict):
            raise ComfyProtocolError("ComfyUI's /history answer is not an object")
        return answer

    # -- the Jobs API (newer ComfyUI; ``server.jobs_api`` says whether it is there) ---------------

    def jobs_list(self, *, statuses: list[str] | None = None, limit: int | None = None) -> dict[str, Any]:
        """``GET /api/jobs``: ``{"jobs": [...], "pagination": {...}}``; ``ComfyNotFound`` on 0.3.x."""
        params: dict[str, Any] = {}
        if statuses:
            params["status"] = ",".join(statuses)
        if limit is not None:
            params["limit"] = limit
        answer = self._json("GET", "/api/jobs", params=params)
        if not isinstance(answer, dict):
            raise ComfyProtocolError("ComfyUI's /api/jobs answer is not an object")
        return answer

    def job(self, prompt_id: str) -> dict[str, Any] | None:
        """``GET /api/jobs/<id>``: the job with its outputs and execution status, None when unknown."""
        try:
            answer = self._json("GET", f"/api/jobs/{quote(prompt_id, safe='')}")
        except ComfyNotFound:
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
            raise ComfyProtocolError("ComfyUI's /api/jobs/<id> answer has an unexpected shape")
        return answer

    # -- server facts ---------------------------------------------------------------------------

    def object_info(self, *, refresh: bool = False) -> dict[str, Any]:
        with self._object_info_lock:
            if self._object_info is None or refresh:
                answer = self._json("GET", "/object_info", timeout=max(self.timeout_s, 30.0))
                if not isinstance(answer, dict):
                    raise ComfyProtocolError("ComfyUI's /object_info answer is not an object")
                self._object_info = answer
            return self._object_info

    def invalidate_object_info(self) -> None:
        with self._object_info_lock:
            self._object_info = None
            self._model_index = None

    def model_index(self) -> dict[str, set[str]]:
        """Every model folder ComfyUI knows and the files in it; cached with ``/object_info``."""
        with self._object_info_lock:
            if self._model_index is None:
                index: dict[str, set[str]] = {}
                for folder in self.model_folders():
                    try:
                        index[folder] = set(self.models(folder))
                    except ComfyError:  # a legacy alias (unet, clip) answers 404
                        continue
                self._model_index = index
            return self._model_index

    def node_info(self, class_type: str) -> dict[str, Any]:
        """One node's definition; ComfyUI answers ``{}`` (200) for an unknown class."""
        answer = self._json("GET", f"/object_info/{quote(class_type, safe='')}")
        info = answer.get(class_type) if isinstance(answer, dict) else None
        if not info:
            raise ComfyNotFound(f"ComfyUI has no node class {class_type!r}")
        return info

    def system_stats(self) -> dict[str, Any]:
        answer = self._json("GET", "/system_stats")
        if not isinstance(answer, dict) or "system" not in answer:
            raise ComfyProtocolError("ComfyUI's /system_stats answer has an unexpected shape")
        return answer

    def reachable(self, timeout_s: float) -> bool:
        """Whether ComfyUI answers a cheap request (``GET /prompt``) within ``timeout_s``."""
        try:
            self._request("GET", "/prompt", timeout=timeout_s)
        except ComfyError:
            return False
        return True

    def features(self) -> dict[str, Any]:
        answer = self._json("GET", "/features")
        if not isinstance(answer, dict):
            raise ComfyProtocolError("ComfyUI's /features answer is not an object")
        return answer

    def detect_features(self) -> ServerFeatures:
        """Asks the server what it can do and keeps the answer in ``server`` (see ``features.py``)."""
        self.server = detect(self)
        return self.server

    def refresh_models(self, folders: list[str]) -> tuple[dict[str, list[str]], bool]:
        """Each folder's files, straight from ComfyUI, and whether any list differs from the cached one.

        When one differs, the cached ``/object_info`` (whose loader dropdowns list the same files) and
        the model index are dropped, so the next form or validation sees the new files; when none
        does, nothing is refetched. A folder ComfyUI does not know (404) is left out.
        """
        found: dict[str, list[str]] = {}
        for folder in folders:
            try:
                found[folder] = self.models(folder)
            except ComfyNotFound:
                continue
        with self._object_info_lock:
            index = self._model_index
            if index is None:  # nothing to compare with: a cached object_info may be stale
                changed = self._object_info is not None
            else:
                changed = any(set(files) != index.get(folder, set()) for folder, files in found.items())
            if changed:
                self._object_info = None
                self._model_index = None
        return found, changed

    def model_folders(self) -> list[str]:
        return list(self._json("GET", "/models"))

    def models(self, folder: str) -> list[str]:
        """Files in a model folder. Use ``diffusion_models`` and ``text_encoders``: ``unet``/``clip`` 404."""
        return list(self._json("GET", f"/models/{quote(folder, safe='')}"))

    # -- files ----------------------------------------------------------------------------------

    def upload_image(
        self,
        data: bytes,
        filename: str,
        *,
        subfolder: str = "",
        folder_type: str = "input",
        overwrite: bool = False,
    ) -> dict[str, str]:
        """Upload into ComfyUI's input folder; returns ``{name, subfolder, type}`` as LoadImage wants."""
        fields = {"type": folder_type, "subfolder": subfolder}
        if overwrite:
            fields["overwrite"] = "true"
        response = self._request("POST", "/upload/image", files={"image": (filename, data)}, data=fields)
        if response.status_code == 400:
            raise ComfyProtocolError(f"ComfyUI refused the upload of {filename!r} (bad name or subfolder)")
        if response.status_code != 200:
            raise ComfyProtocolError(f"ComfyUI answered {response.status_code} to the upload")
        try:
            return dict(response.json())
        except ValueError as err:
            raise ComfyProtocolError("ComfyUI's upload answer is not JSON") from err

    @contextmanager
    def view(
        self, filename: str, *, subfolder: str = "", folder_type: str = "output"
    ) -> Iterator[requests.Response]:
        """Stream a file from ComfyUI (``response.iter_content``) without holding it in memory."""
        params = {"filename": filename, "subfolder": subfolder, "type": folder_type}
        response = self._request("GET", "/view", params=params, stream=True)
        try:
            if response.status_code == 404:
                raise ComfyNotFound(f"ComfyUI has no {folder_type} file {subfolder}/{filename}".replace("//", "/"))
            if response.status_code != 200:
                raise ComfyProtocolError(f"ComfyUI answered {response.status_code} to /view for {filename!r}")
            yield response
        finally:
            response.close()

    def download(self, filename: str, *, subfolder: str = "", folder_type: str = "output") -> bytes:
        with self.view(filename, subfolder=subfolder, folder_type=folder_type) as response:
            return b"".join(response.iter_content(STREAM_CHUNK))

    def close(self) -> None:
        self._session.close()

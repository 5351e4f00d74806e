"""A small HTTP client for Studio's API, shared by the ``studio`` commands and the MCP server.

It speaks only HTTP (``requests``), sends the API token as ``Authorization: Bearer`` and never
shows it: not in errors, not in ``repr``. Every failure becomes a :class:`ClientError` whose
``exit_code`` is the one the command line documents (docs/cli.md), so a shell script can tell a bad
token from a typo in a preset id from a Studio that is down.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from studio import __version__

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130

JOB_FINISHED = frozenset({"completed", "failed", "cancelled", "interrupted"})
DOWNLOAD_FINISHED = frozenset({"completed", "failed", "cancelled"})
LONG_POLL_S = 30  # under RunPod's 100 s proxy cut, with room for the answer
MAX_RESOURCE_BYTES = 64 * 1024 * 1024  # what the MCP server hands an agent in one message
RETRY_DELAYS_S = (0.5, 1.5)  # a POST is retried (same Idempotency-Key) after a network error


class ClientError(Exception):
    """Anything that stops a command; ``exit_code`` is what the shell sees."""

    default_exit = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = self.default_exit if exit_code is None else exit_code


class UsageError(ClientError):
    """Bad input caught before anything was sent (a ``-p`` without ``=``, a file that is not there)."""


class Unreachable(ClientError):
    """No answer from Studio at all (refused, timed out, a broken stream)."""

    default_exit = EXIT_UNREACHABLE


def exit_code_of(status: int) -> int:
    """401/403 → 3, 404 → 4, 5xx → 5, any other error status (400, 409, 413, 422, 429…) → 2."""
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status >= 500:
        return EXIT_UNREACHABLE
    return EXIT_USAGE


class ApiError(ClientError):
    """Studio (or a proxy in front of it) answered with an error status."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message, exit_code_of(status))
        self.status = status
        self.code = code
        self.details = details

    def describe(self) -> str:
        """The message, plus each field Studio named as wrong (``details.fields``)."""
        text = f"{self.message} ({self.status} {self.code})"
        fields = self.details.get("fields") if isinstance(self.details, dict) else None
        if isinstance(fields, dict):
            text += "".join(f"\n  {name}: {why}" for name, why in fields.items())
        return text


def shown_url(url: str) -> str:
    """The address without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def segment(value: str | int) -> str:
    """One path segment: an id can never reach another route (``../auth/tokens``)."""
    return quote(str(value), safe="")


def _error_from(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return ApiError(response.status_code, str(error.get("code") or "error"), error["message"], error.get("details"))
    reason = response.reason or "error"
    return ApiError(response.status_code, f"http_{response.status_code}", f"Studio answered {response.status_code} "
                    f"{reason}.")


class StudioClient:
    """One Studio, one token. ``url`` is Studio's address (``http://127.0.0.1:8000``)."""

    def __init__(self, url: str, token: str | None, *, timeout_s: float = 30.0,
                 session: requests.Session | None = None) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"Not a Studio address: {shown_url(url)!r} (give http://host:port).")
        self.base_url = url.strip().rstrip("/")
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"studio-client/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_environment(cls, url: str | None = None, token: str | None = None) -> StudioClient:
        """Flags first, then ``STUDIO_URL`` / ``STUDIO_TOKEN``, then a Studio on this machine."""
        return cls(url or os.environ.get("STUDIO_URL") or "http://127.0.0.1:8000",
                   token or os.environ.get("STUDIO_TOKEN") or None)

    def __repr__(self) -> str:  # never the token
        return f"StudioClient({shown_url(self.base_url)!r})"

    # -- transport ------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                files: Any = None, headers: dict[str, str] | None = None, stream: bool = False,
                timeout_s: float | None = None) -> requests.Response:
        """One call; a POST carrying an ``Idempotency-Key`` is retried after a network error, so a
        lost answer never makes a second job. An error status raises :class:`ApiError`."""
        retries = RETRY_DELAYS_S if headers and "Idempotency-Key" in headers else ()
        attempt = 0
        while True:
            try:
                response = self.session.request(method, self.base_url + path, json=json, params=params, files=files,
                                                headers=headers, stream=stream,
                                                timeout=timeout_s or self.timeout_s, allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
                if attempt < len(retries):
                    time.sleep(retries[attempt])
                    attempt += 1
                    continue
                raise Unreachable(f"Studio at {shown_url(self.base_url)} did not answer "
                                  f"({err.__class__.__name__}).") from err
            except requests.RequestException as err:
                raise UsageError(f"Could not send the request to {shown_url(self.base_url)}: "
                                 f"{err.__class__.__name__}.") from err
            if response.status_code in (502, 504) and attempt < len(retries):  # a proxy between us and Studio
                response.close()
                time.sleep(retries[attempt])
                attempt += 1
                continue
            if response.status_code >= 400:
                error = _error_from(response)
                response.close()
                raise error
            if 300 <= response.status_code < 400:  # never followed: a redirect could take the token elsewhere
                response.close()
                raise ApiError(response.status_code, "redirected", "Studio answered with a redirect; give its "
                               "address itself (check http/https and the port).")
            return response

    def get(self, path: str, params: dict[str, Any] | None = None, timeout_s: float | None = None) -> Any:
        response = self.request("GET", path, params=params, timeout_s=timeout_s)
        try:
            return response.json()
        except ValueError as err:
            raise ApiError(response.status_code, "not_json", "Studio's answer was not JSON (is this "
                           "address a Studio?).") from err

    def post(self, path: str, body: Any = None, *, idempotent: bool = False, key: str | None = None) -> Any:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())} if idempotent or key else None
        response = self.request("POST", path, json=body if body is not None else {}, headers=headers)
        try:
            return response.json()
        except ValueError as err:
            raise ApiError(response.status_code, "not_json", "Studio's answer was not JSON.") from err

    # -- reading --------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return dict(self.get("/api/auth/me"))

    def list_presets(self) -> dict[str, Any]:
        return dict(self.get("/api/presets"))

    def get_preset(self, preset_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/presets/{segment(preset_id)}"))

    def list_workflows(self) -> dict[str, Any]:
        return dict(self.get("/api/workflows"))

    def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/workflows/{segment(workflow_id)}"))

    def list_jobs(self, *, status: str | None = None, limit: int = 50, before: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if before:
            params["before"] = before
        return dict(self.get("/api/jobs", params=params))

    def iter_jobs(self, *, status: str | None = None, page_size: int = 200) -> Iterator[dict[str, Any]]:
        """Every job the token may see, newest first, page after page."""
        before: str | None = None
        while True:
            page = self.list_jobs(status=status, limit=page_size, before=before)
            yield from page.get("items", [])
            before = page.get("next")
            if not before:
                return

    def get_job(self, job_id: str, *, wait_s: int | None = None) -> dict[str, Any]:
        """The job; with ``wait_s`` Studio holds the answer until it changes (long-poll) — a Studio
        without long-poll ignores the parameter and answers at once."""
        params = {"wait": wait_s} if wait_s else None
        timeout = (wait_s + 15) if wait_s else None
        return dict(self.get(f"/api/jobs/{segment(job_id)}", params=params, timeout_s=timeout))

    def list_downloads(self) -> list[dict[str, Any]]:
        return list(self.get("/api/downloads").get("items", []))

    # -- acting ---------------------------------------------------------------------------------

    def run_preset(self, preset_id: str, *, answers: dict[str, str] | None = None,
                   overrides: dict[str, Any] | None = None, seed: int | None = None, count: int = 1,
                   image: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        """``image``: an uploaded input's name, for a preset whose workflow needs an image."""
        body: dict[str, Any] = {"answers": answers or {}, "overrides": overrides or {}, "seed": seed, "count": count}
        if image:
            body["image"] = image
        answer = self.post(f"/api/presets/{segment(preset_id)}/run", body, idempotent=True, key=key)
        return list(answer.get("items", []))

    def run_workflow(self, workflow_id: str, params: dict[str, Any] | None = None, *, count: int = 1,
                     key: str | None = None) -> list[dict[str, Any]]:
        answer = self.post(f"/api/workflows/{segment(workflow_id)}/run", {"params": params or {}, "count": count},
                           idempotent=True, key=key)
        return list(answer.get("items", []))

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return dict(self.post(f"/api/jobs/{segment(job_id)}/cancel"))

    def enqueue_download(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/api/downloads", body))

    def upload_input(self, path: Path) -> str:
        """Uploads an image for an image input; answers the name a parameter takes."""
        try:
            data = path.read_bytes()
        except OSError as err:
            raise UsageError(f"Cannot read {path}: {err.strerror}.") from err
        response = self.request("POST", "/api/inputs", files={"image": (path.name, data)})
        return str(response.json()["name"])

    # -- following ------------------------------------------------------------------------------

    def wait_job(self, job_id: str, *, on_update: Callable[[dict[str, Any]], None] | None = None,
                 timeout_s: float | None = None) -> dict[str, Any]:
        """Follows a job to its end by long-poll (``?wait=30``), which a Studio without it answers at
        once: then this polls, from a quarter of a second up to two. Answers the last state seen
        (unfinished only when ``timeout_s`` ran out)."""
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        delay = 0.25
        while True:
            asked = time.monotonic()
            wait = LONG_POLL_S if deadline is None else max(1, min(LONG_POLL_S, int(deadline - asked)))
            job = self.get_job(job_id, wait_s=wait)
            if on_update is not None:
                on_update(job)
            if job.get("status") in JOB_FINISHED:
                return job
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return job
            if now - asked < 1.0:  # answered at once: no long-poll here, or it changed; poll gently
                time.sleep(delay if deadline is None else min(delay, max(0.0, deadline - now)))
                delay = min(delay * 1.5, 2.0)
            else:
                delay = 0.25

    def wait_download(self, download_id: str, *, on_update: Callable[[dict[str, Any]], None] | None = None,
                      timeout_s: float | None = None) -> dict[str, Any]:
        """Polls the download queue until this item completes, fails or is cancelled."""
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        delay = 0.25
        while True:
            item = next((d for d in self.list_downloads() if d.get("id") == download_id), None)
            if item is None:
                raise ApiError(404, "download_not_found", "The download is no longer in the queue.")
            if on_update is not None:
                on_update(item)
            if item.get("status") in DOWNLOAD_FINISHED:
                return item
            if deadline is not None and time.monotonic() >= deadline:
                return item
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    # -- files ----------------------------------------------------------------------------------

    def output_url(self, job_id: str, output_id: int) -> str:
        return f"/api/jobs/{segment(job_id)}/outputs/{segment(output_id)}"

    def fetch_output(self, job_id: str, output_id: int, *, limit: int = MAX_RESOURCE_BYTES) -> tuple[bytes, str]:
        """An output's bytes and Studio's content type, refused past ``limit`` bytes."""
        response = self.request("GET", self.output_url(job_id, output_id), stream=True)
        with response:
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        raise UsageError(f"The output is larger than {limit // (1024 * 1024)} MiB; download it "
                                         "with `studio jobs show` and its URL instead.")
                    chunks.append(chunk)
            except requests.RequestException as err:
                raise Unreachable("The output's download broke off.") from err
            kind = response.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
            return b"".join(chunks), kind

    def save_output(self, job_id: str, output_id: int, target: Path,
                    on_bytes: Callable[[int], None] | None = None) -> int:
        """Streams an output into ``target`` (written beside it, then renamed: a broken transfer never
        leaves a half file under the real name). Answers the size."""
        response = self.request("GET", self.output_url(job_id, output_id), stream=True, timeout_s=120)
        partial = target.with_name(f".{target.name}.part")
        size = 0
        with response:
            try:
                with partial.open("wb") as out:
                    for chunk in response.iter_content(1 << 16):
                        out.write(chunk)
                        size += len(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
            except requests.RequestException as err:
                partial.unlink(missing_ok=True)
                raise Unreachable("The output's download broke off.") from err
            except OSError:
                partial.unlink(missing_ok=True)
                raise
        partial.replace(target)
        return size

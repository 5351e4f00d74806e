"""The one CivitAI client: everything Studio asks CivitAI goes through here.

REST ``/api/v1`` (models, model versions, versions by hash one at a time and in bulk, search,
images with their ``meta``) and the tRPC call the site itself uses for an image's generation data.
What it takes care of, so no caller has to:

- **The key** goes as ``Authorization: Bearer`` only to CivitAI's own API origins
  (``studio.downloads.credentials``): a redirect to a file or image host gets no credential, and
  the key never goes into a URL, where it would end up in logs and error messages.
- **Timeouts** on every request; **retries** with exponential backoff for connection errors and
  5xx; a **429** is waited out (``Retry-After`` when CivitAI sends one, else the backoff), up to a
  limit, after which it is reported as rate limiting with the wait left. ``wait`` is injectable so
  tests never sleep.
- **A TTL cache** of settled answers (200 and 404; an outage is asked again next time), keyed by
  whether a key was sent, never by the key itself.
- **Every failure is a sentence** (``studio.civitai.errors``): not found, login required, early
  access, rate limited, CivitAI down, an answer Studio cannot read.

Both sites answer the same API: civitai.com (SFW only) and civitai.red (everything); which one is
the ``endpoint`` (a callable, so a changed setting applies to the next request).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import requests

from studio.civitai.cache import MISSING, TTLCache
from studio.civitai.errors import (
    EARLY_ACCESS,
    LOGIN_WANTED,
    CivitaiEarlyAccess,
    CivitaiError,
    CivitaiLoginRequired,
    CivitaiNotFound,
    CivitaiRateLimited,
    CivitaiUnavailable,
)
from studio.downloads.credentials import auth_headers

SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_ID = 2**53
BULK_LIMIT = 100  # hashes per POST /api/v1/model-versions/by-hash
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)

Wait = Callable[[float], object]


def _valid_id(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ID:
        raise CivitaiNotFound(f"{what} must be a positive whole number.")
    return value


def retry_after_s(header: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    if not header:
        return None
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now()).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite: unreadable
        return None
    return max(0.0, seconds)


def their_message(response: requests.Response) -> str:
    """CivitAI's own words for a failure, cleaned and short: ``{"error": "…"}``, ``{"message": "…"}``
    or tRPC's ``{"error": {"json": {"message": "…"}}}``; "" when it gave none (it is not trusted)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    text: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            inner = error.get("json")
            text = (inner if isinstance(inner, dict) else error).get("message")
        else:
            # {"error": "Unauthorized", "message": "…"}: the message says more than the status word
            text = body.get("message") if isinstance(body.get("message"), str) else error
    if not isinstance(text, str):
        return ""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:200]


class CivitaiClient:
    def __init__(
        self,
        endpoint: str | Callable[[], str],
        tokens: Callable[[], dict[str, str]],
        *,
        session: requests.Session | None = None,
        cache: TTLCache | None = None,
        timeout: tuple[float, float] = (5.0, 20.0),
        retries: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        wait: Wait = time.sleep,
    ) -> None:
        self._endpoint = endpoint
        self.tokens = tokens
        self.session = session or requests.Session()
        self.cache = cache
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.wait = wait

    def with_options(self, **changes: Any) -> CivitaiClient:
        """A copy sharing the session and the cache, with other waits or limits (the background
        lookups may wait out a longer 429 than a request a person is waiting on)."""
        clone = copy.copy(self)
        for name, value in changes.items():
            if not hasattr(clone, name):
                raise TypeError(f"CivitaiClient has no option {name!r}")
            setattr(clone, name, value)
        return clone

    @property
    def endpoint(self) -> str:
        value = self._endpoint() if callable(self._endpoint) else self._endpoint
        return value.rstrip("/")

    # -- the API ---------------------------------------------------------------------------------

    def model(self, model_id: int, *, cached: bool = True) -> dict[str, Any]:
        """``GET /api/v1/models/{id}``: the model with every version, newest first."""
        _valid_id(model_id, "A CivitAI model id")
        return _object(self.get(f"/api/v1/models/{model_id}", what=f"model {model_id}", cached=cached))

    def version(self, version_id: int, *, cached: bool = True) -> dict[str, Any]:
        """``GET /api/v1/model-versions/{id}``."""
        _valid_id(version_id, "A CivitAI model version id")
        return _object(self.get(f"/api/v1/model-versions/{version_id}", what=f"model version {version_id}",
                                cached=cached))

    def version_by_hash(self, sha256: str) -> dict[str, Any] | None:
        """The version a file belongs to, by its SHA-256; None when CivitAI does not know the file."""
        if not SHA256.match(sha256 or ""):
            raise CivitaiNotFound("A SHA-256 is 64 hexadecimal characters.")
        try:
            return _object(self.get(f"/api/v1/model-versions/by-hash/{sha256.lower()}", what="file with that hash"))
        except CivitaiNotFound:
            return None

    def versions_by_hashes(self, hashes: Iterable[str], *, cached: bool = True) -> dict[str, dict[str, Any]]:
        """``POST /api/v1/model-versions/by-hash`` (a JSON array of hashes, at most 100 a request):
        SHA-256 (lower case) → its version. A hash CivitAI does not know is simply absent."""
        wanted = sorted({h.lower() for h in hashes if SHA256.match(h or "")})
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BULK_LIMIT):
            chunk = wanted[start:start + BULK_LIMIT]
            answer = self.post("/api/v1/model-versions/by-hash", [h.upper() for h in chunk], what="files",
                               cached=cached)
            if not isinstance(answer, list):
                raise CivitaiError("CivitAI's answer to a lookup by hash was not a list of versions.")
            asked = set(chunk)
            for version in answer:
                if not isinstance(version, dict):
                    continue
                for sha in file_hashes(version) & asked:
                    found[sha] = version
        return found

    def search_models(self, query: str, *, types: str | None = None, limit: int = 20, cursor: str | None = None,
                      nsfw: bool | None = None) -> dict[str, Any]:
        """``GET /api/v1/models?query=…``: ``{"items", "metadata": {"nextCursor"?}}``."""
        params: dict[str, Any] = {"query": query[:200], "limit": max(1, min(100, limit))}
        if types:
            params["types"] = types
        if cursor:
            params["cursor"] = cursor[:200]
        if nsfw is not None:
            params["nsfw"] = "true" if nsfw else "false"
        return _object(self.get("/api/v1/models", params, what="models"))

    def images(self, *, model_id: int | None = None, model_version_id: int | None = None,
               image_id: int | None = None, username: str | None = None, limit: int = 20,
               cursor: str | None = None, nsfw: str | None = None, with_meta: bool = True) -> dict[str, Any]:
        """``GET /api/v1/images``: images with their ``meta`` (prompt, resources, and ``comfy`` with the
        graph when the image was made with ComfyUI)."""
        params: dict[str, Any] = {"limit": max(1, min(200, limit))}
        for key, value in (("modelId", model_id), ("modelVersionId", model_version_id), ("imageId", image_id)):
            if value is not None:
                params[key] = _valid_id(value, f"A CivitAI {key}")
        if username:
            params["username"] = username[:100]
        if cursor:
            params["cursor"] = cursor[:200]
        if nsfw:
            params["nsfw"] = nsfw
        if with_meta:
            params["withMeta"] = "true"
        return _object(self.get("/api/v1/images", params, what="images"))

    def image(self, image_id: int) -> dict[str, Any]:
        """One image by id, with its ``meta``."""
        items = self.images(image_id=image_id, limit=1).get("items")
        first = items[0] if isinstance(items, list) and items else None
        if not isinstance(first, dict):
            raise CivitaiNotFound(f"CivitAI has no image {image_id} (or it is hidden at this site's level).")
        return first

    def generation_data(self, image_id: int) -> dict[str, Any]:
        """tRPC ``image.getGenerationData``: ``{"type", "onSite", "process", "meta", "resources"}``."""
        _valid_id(image_id, "A CivitAI image id")
        payload = json.dumps({"json": {"id": image_id, "authed": True}}, separators=(",", ":"))
        answer = self.get("/api/trpc/image.getGenerationData", {"input": payload},
                          what=f"generation data for image {image_id}")
        data = _object(answer).get("result")
        data = data.get("data") if isinstance(data, dict) else None
        data = data.get("json") if isinstance(data, dict) else None
        if not isinstance(data, dict):
            raise CivitaiError("CivitAI's generation data was not in the shape Studio knows.")
        return data

    def fetch_image(self, url: str, *, max_bytes: int) -> bytes:
        """An image's bytes from wherever CivitAI stores it, with no credential of any kind."""
        if not url.startswith(("https://", "http://")):
            raise CivitaiError("CivitAI named an image that is not at an http(s) address.")
        try:
            with self.session.get(url, timeout=self.timeout, stream=True, headers={"Accept": "image/*"}) as response:
                if response.status_code != 200:
                    raise CivitaiUnavailable(f"CivitAI's image host answered {response.status_code}.")
                data = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise CivitaiError("CivitAI's image is larger than Studio keeps for a preview.")
                return bytes(data)
        except requests.RequestException as err:
            raise CivitaiUnavailable(f"CivitAI's image host cannot be reached ({type(err).__name__}).") from None

    # -- requests --------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None, *, what: str = "that",
            cached: bool = True) -> Any:
        return self._call("GET", path, params, None, what, cached)

    def post(self, path: str, body: Any, *, what: str = "that", cached: bool = True) -> Any:
        return self._call("POST", path, None, body, what, cached)

    def _call(self, method: str, path: str, params: dict[str, Any] | None, body: Any, what: str,
              cached: bool) -> Any:
        endpoint = self.endpoint
        url = f"{endpoint}{path}"
        keyed = bool(auth_headers(url, self.tokens()))
        key = (method, endpoint, path, tuple(sorted((params or {}).items())),
               json.dumps(body, sort_keys=True) if body is not None else None, keyed)
        if cached and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not MISSING:
                kind, value = hit
                if kind == "not_found":
                    raise CivitaiNotFound(value)
                return value
        try:
            value = self._answer(self._with_retries(method, url, params, body), what, keyed)
        except CivitaiNotFound as err:
            if self.cache is not None:
                self.cache.put(key, ("not_found", err.message))
            raise
        if self.cache is not None:
            self.cache.put(key, ("ok", value))
        return value

    def _with_retries(self, method: str, url: str, params: dict[str, Any] | None, body: Any) -> requests.Response:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._send(method, url, params, body)
            except requests.RequestException as err:
                if last:
                    raise CivitaiUnavailable(f"CivitAI cannot be reached ({type(err).__name__}); "
                                             "try again later.") from None
                self.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            status = response.status_code
            if status == 429:
                pause = retry_after_s(response.headers.get("Retry-After"))
                pause = delay if pause is None else pause
                if last or pause > self.max_retry_after_s:
                    raise CivitaiRateLimited(f"CivitAI is limiting how often Studio may ask; try again in "
                                             f"{max(1, round(pause))} s.", retry_after_s=pause)
                self.wait(pause)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            if status >= 500:
                if last:
                    raise CivitaiUnavailable(f"CivitAI is not answering properly right now (HTTP {status}); "
                                             "try again later.")
                self.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    def _send(self, method: str, url: str, params: dict[str, Any] | None, body: Any) -> requests.Response:
        """One request, following redirects by hand: each hop gets the credential its own origin
        is allowed, so a file or image host that CivitAI sends Studio to never sees the key."""
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept": "application/json", **auth_headers(url, self.tokens())}
            response = self.session.request(method, url, params=params, json=body, headers=headers,
                                            timeout=self.timeout, allow_redirects=False)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECTS or not location:
                return response
            response.close()
            url = urljoin(response.url, location)
            params = None  # the new address carries its own query
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None
        raise CivitaiError("CivitAI redirected Studio too many times.")

    def _answer(self, response: requests.Response, what: str, keyed: bool) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                kind = response.headers.get("Content-Type", "")
                if "html" in kind:  # a Cloudflare check or a maintenance page
                    raise CivitaiUnavailable("CivitAI answered with a web page instead of data (a check or "
                                             "maintenance page); try again later.") from None
                raise CivitaiError("CivitAI's answer was not JSON.") from None
        said = their_message(response)
        if status == 401:
            raise CivitaiLoginRequired(LOGIN_WANTED)
        if status == 403:
            if "early access" in said.lower():
                raise CivitaiEarlyAccess(EARLY_ACCESS)
            if not keyed:
                raise CivitaiLoginRequired(LOGIN_WANTED)
            raise CivitaiError(f"CivitAI refused this to your account{': ' + said if said else ''}.",
                               code="civitai_forbidden")
        if status == 404:
            raise CivitaiNotFound(f"CivitAI has no {what}.")
        raise CivitaiError(f"CivitAI refused the request (HTTP {status}){': ' + said if said else ''}.")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CivitaiError("CivitAI's answer was not in the shape Studio knows.")
    return value


def file_hashes(version: dict[str, Any]) -> set[str]:
    """The SHA-256 (lower case) of every file of a version, as far as the answer is well-formed."""
    found = set()
    for item in version.get("files") or []:
        hashes = item.get("hashes") if isinstance(item, dict) else None
        sha = hashes.get("SHA256") if isinstance(hashes, dict) else None
        if isinstance(sha, str) and SHA256.match(sha):
            found.add(sha.lower())
    return found

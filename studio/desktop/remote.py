"""Remote mode's checks before the window opens a Studio elsewhere: is the address a Studio at
all, is it reachable, is its certificate good, and is its version one this window works with.

Each problem is a code and a sentence a person can act on; the window shows it instead of a
browser's error page or a foreign site.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

URL_LIMIT = 2048
PROBE_TIMEOUT_S = 10.0
HEALTH_LIMIT = 64 * 1024  # /api/health is a few bytes; anything large is not a Studio

# The one place the supported range is defined: remotes from OLDEST_REMOTE up to (not including) FIRST_UNSUPPORTED.
OLDEST_REMOTE = (0, 1, 0)
FIRST_UNSUPPORTED = (1, 0, 0)

_VERSION = re.compile(r"^(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?")


@dataclass(frozen=True)
class RemoteProblem(Exception):
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RemoteStudio:
    origin: str
    version: str

    @property
    def host(self) -> str:
        return urlsplit(self.origin).netloc


def normalize(url: str) -> str:
    """``https://host[:port]`` from what a person typed (a path or trailing slash is dropped: Studio
    answers at its root). Credentials in the address are refused: they would end up in history."""
    text = url.strip()
    if not text or len(text) > URL_LIMIT:
        raise RemoteProblem("bad_url", "Type the address of a Studio, such as https://my-pod-8000.proxy.runpod.net")
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as err:
        raise RemoteProblem("bad_url", f"That is not a web address: {err}.") from err
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteProblem("bad_url", "The address must start with https:// (or http://) and name a host.")
    if parts.username is not None or parts.password is not None:
        raise RemoteProblem("bad_url", "Leave the name and password out of the address: sign in on the page instead.")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def is_loopback(origin: str) -> bool:
    host = urlsplit(origin).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(text)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def check_version(version: str, origin: str) -> None:
    parsed = parse_version(version)
    oldest = ".".join(map(str, OLDEST_REMOTE))
    unsupported = ".".join(map(str, FIRST_UNSUPPORTED))
    if parsed is None or parsed < OLDEST_REMOTE:
        raise RemoteProblem("too_old", f"The Studio at {origin} is version {version[:40]}; this window needs "
                                       f"{oldest} or newer. Update that Studio (its Settings page, or redeploy).")
    if parsed >= FIRST_UNSUPPORTED:
        raise RemoteProblem("too_new", f"The Studio at {origin} is version {version[:40]}, newer than this window "
                                       f"knows (before {unsupported}). Update this copy of Studio.")


def probe(url: str, *, timeout_s: float = PROBE_TIMEOUT_S, token: str | None = None) -> RemoteStudio:
    """The remote's ``/api/health`` read and judged; with ``token``, also that the token is accepted."""
    origin = normalize(url)
    health = _get(origin, "/api/health", timeout_s)
    try:
        body = health.json() if len(health.content) <= HEALTH_LIMIT else None
    except ValueError:
        body = None
    if health.status_code != 200 or not isinstance(body, dict) or body.get("ok") is not True \
            or not isinstance(body.get("version"), str):
        raise RemoteProblem("not_studio", f"{origin} answers, but it is not a ComfyUI Studio (its /api/health "
                                          "is not Studio's). Check the address and the port (RunPod: -8000).")
    check_version(body["version"], origin)
    if token is not None:
        me = _get(origin, "/api/auth/me", timeout_s, headers={"Authorization": f"Bearer {token}"})
        if me.status_code in (401, 403):
            raise RemoteProblem("token_refused", f"The Studio at {origin} refused the API token: it may have been "
                                                 "revoked or expired. Create a new one on its Settings page.")
    return RemoteStudio(origin, body["version"])


def _get(origin: str, path: str, timeout_s: float, headers: dict[str, str] | None = None) -> requests.Response:
    try:
        return requests.get(origin + path, timeout=timeout_s, allow_redirects=False, headers=headers)
    except requests.exceptions.SSLError as err:
        raise RemoteProblem("certificate", f"The certificate of {origin} is not valid ({_reason(err)}). "
                                           "Check the address; this window will not open a site it cannot "
                                           "verify.") from err
    except requests.exceptions.Timeout as err:
        raise RemoteProblem("unreachable", f"{origin} did not answer within {timeout_s:g} s. Is the pod "
                                           "running?") from err
    except requests.exceptions.ConnectionError as err:
        raise RemoteProblem("unreachable", f"Cannot reach {origin}: {_reason(err)}. Is the pod or server "
                                           "running, and the address right?") from err
    except requests.exceptions.RequestException as err:
        raise RemoteProblem("unreachable", f"Cannot reach {origin}: {_reason(err)}.") from err


def _reason(err: Exception) -> str:
    """The innermost cause, short: requests' messages repeat the URL and pool internals."""
    text = str(err)
    for marker in ("certificate verify failed: ", "Failed to resolve", "Connection refused", "Name or service"):
        index = text.find(marker)
        if index >= 0:
            return re.split(r"['\"()]", text[index:index + 120])[0].rstrip(" .:")
    return text[:120]

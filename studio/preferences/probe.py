"""Saving a ComfyUI address tries it: what answered there, in words a person can act on.

Saving never depends on the answer (ComfyUI may still be starting); the Settings page says
plainly whether ComfyUI answered, something else did, or nothing did and why.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import requests

from studio.comfy.client import ComfyClient, display_url
from studio.comfy.errors import ComfyError, ComfyNotFound, ComfyUnavailable

TIMEOUT_S = 3.0


def _why_nothing(err: BaseException) -> str:
    """The reason beneath a failed connection: refused, timed out, no such host…"""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, requests.Timeout):
            return f"no answer within {TIMEOUT_S:g} s"
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "no such host"
        if isinstance(seen, ConnectionResetError):
            return "the connection was reset"
        inner = getattr(seen, "reason", None) or (seen.args[0] if seen.args else None)  # urllib3 wraps it
        seen = seen.__cause__ or seen.__context__ or (inner if isinstance(inner, BaseException) else None)
    return "it cannot be reached"


def probe_comfyui(url: str, *, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """``{"answered": "comfyui" | "other" | "nothing", "version", "message"}`` for the address ``url``.

    Asks what the client asks when it connects (``GET /system_stats``); an older ComfyUI or a
    proxy without it is recognised by ``/object_info``.
    """
    shown = display_url(url)
    client = ComfyClient(url, timeout_s=timeout_s)
    try:
        stats = client.system_stats()
    except ComfyUnavailable as err:
        if err.status is not None:
            return {"answered": "other", "version": None,
                    "message": f"Something answered at {shown} with HTTP {err.status}, not ComfyUI's status."}
        return {"answered": "nothing", "version": None,
                "message": f"Nothing answered at {shown}: {_why_nothing(err)}. The address is saved; Studio "
                           "connects when ComfyUI is up."}
    except ComfyNotFound:
        return _by_object_info(client, shown)
    except ComfyError:
        return _not_comfyui(shown)
    finally:
        client.close()
    version = (stats.get("system") or {}).get("comfyui_version") if isinstance(stats.get("system"), dict) else None
    version = str(version)[:40] if version else None
    return {"answered": "comfyui", "version": version,
            "message": f"ComfyUI {version} answered at {shown}." if version else f"ComfyUI answered at {shown}."}


def _by_object_info(client: ComfyClient, shown: str) -> dict[str, Any]:
    try:
        info = client.object_info()
    except ComfyError:
        return _not_comfyui(shown)
    if not isinstance(info, dict) or "KSampler" not in info:
        return _not_comfyui(shown)
    return {"answered": "comfyui", "version": None,
            "message": f"ComfyUI answered at {shown} (its version is not known: it has no /system_stats)."}


def _not_comfyui(shown: str) -> dict[str, Any]:
    return {"answered": "other", "version": None,
            "message": f"Something answered at {shown}, but it is not ComfyUI: check the address and port."}


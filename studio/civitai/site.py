"""Which CivitAI Studio talks to: civitai.com (SFW only), civitai.red (everything), or the configured
``CIVITAI_ENDPOINT`` (a mirror). Chosen on the Settings page (``civitai_site``) and read at every request,
so the one client, the downloads and the links all follow a change without a restart.

The API key goes to the chosen site's origin only (``key_for``): with civitai.com chosen, civitai.red
never sees it, and the file and image hosts downloads are redirected to never do either.
"""

from __future__ import annotations

from typing import Any

from studio.config import Settings
from studio.downloads.credentials import endpoint_origin


def configured_site(config: Settings) -> str:
    """What the Settings page shows before anyone chose: the site ``CIVITAI_ENDPOINT`` names, if it is one."""
    endpoint = config.civitai_endpoint.rstrip("/")
    if endpoint == config.civitai_red_url.rstrip("/"):
        return "red"
    if endpoint == config.civitai_com_url.rstrip("/"):
        return "com"
    return "configured"


def endpoint_of(config: Settings, site: Any) -> str:
    """The base URL for the chosen site; anything else (``configured``) is ``CIVITAI_ENDPOINT``."""
    if site == "red":
        return config.civitai_red_url.rstrip("/")
    if site == "com":
        return config.civitai_com_url.rstrip("/")
    return config.civitai_endpoint.rstrip("/")


def key_for(endpoint: str, key: str | None) -> dict[str, str]:
    """origin → key, for ``auth_headers``: the chosen site's exact origin and nothing else."""
    origin = endpoint_origin(endpoint)
    return {origin: key} if key and origin else {}

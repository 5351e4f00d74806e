"""Which credential may go where: an explicit allow-list of exact origins (scheme, host and port).

The Hugging Face token belongs to the Hub's API (``https://huggingface.co``, ``https://hf.co`` and the
configured endpoint's own origin), the CivitAI key to CivitAI's (``https://civitai.com``,
``https://civitai.red`` and the configured endpoint's origin). Only over HTTPS on port 443 for the
public hosts: ``http://huggingface.co/…`` (readable on the way) or ``https://hf.co:4443/…`` (some
other service on that machine) gets nothing. Never a sub-domain: the Hub's storage and CDN hosts
(``cdn-lfs.hf.co``, ``cas-bridge.xethub.hf.co``) get signed URLs and must not see the token, and a
look-alike such as ``huggingface.co.evil.com`` or ``evilhuggingface.co`` gets nothing. A configured
endpoint (a mirror, or the tests' ``http://127.0.0.1:<port>``) is trusted at exactly the scheme, host
and port it was given.

The origin is taken the way ``requests`` will connect to it (its own URL preparation, then
urllib3's parser), not with ``urllib.parse``, which reads ``http://evil.com\\@huggingface.co/`` as the
Hub while the connection goes to ``evil.com``.
"""

from __future__ import annotations

import requests
from urllib3.util import parse_url

DEFAULT_PORTS = {"http": 80, "https": 443}
HF_API_ORIGINS = frozenset({"https://huggingface.co:443", "https://hf.co:443"})
CIVITAI_API_ORIGINS = frozenset({"https://civitai.com:443", "https://civitai.red:443"})

Origin = tuple[str, str, int]


def request_origin(url: str) -> Origin | None:
    """(scheme, host, port) that ``requests`` would connect to for ``url``, lower case, the port
    filled in from the scheme; None when it cannot tell or the scheme is not http(s)."""
    try:
        prepared = requests.Request("GET", url).prepare().url or ""
        parsed = parse_url(prepared)
        port = parsed.port
    except (requests.RequestException, ValueError, TypeError):
        return None
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").strip("[]").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def origin_text(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _origin_of_key(key: str) -> Origin | None:
    """An allow-list entry: an origin (``https://huggingface.co:443``); a bare host name means HTTPS
    on port 443."""
    key = key.strip()
    return request_origin(key if "://" in key else f"https://{key}")


def endpoint_origin(endpoint: str) -> str | None:
    origin = request_origin(endpoint)
    return origin_text(origin) if origin else None


def hf_origins(endpoint: str) -> frozenset[str]:
    own = endpoint_origin(endpoint)
    return HF_API_ORIGINS | ({own} if own else set())


def civitai_origins(endpoint: str) -> frozenset[str]:
    own = endpoint_origin(endpoint)
    return CIVITAI_API_ORIGINS | ({own} if own else set())


def credentials(*, hf_token: str | None, civitai_key: str | None, hf_endpoint: str,
                civitai_endpoint: str) -> dict[str, str]:
    """origin → secret, for ``auth_headers``: each secret only for its own exact API origins."""
    found: dict[str, str] = {}
    if hf_token:
        found.update(dict.fromkeys(hf_origins(hf_endpoint), hf_token))
    if civitai_key:
        found.update(dict.fromkeys(civitai_origins(civitai_endpoint), civitai_key))
    return found


def allowed(url: str, origins: frozenset[str] | set[str]) -> bool:
    """True when ``url`` goes to exactly one of ``origins`` (scheme, host and port)."""
    origin = request_origin(url)
    return origin is not None and any(_origin_of_key(key) == origin for key in origins)


def token_for(url: str, tokens: dict[str, str]) -> str | None:
    """The secret whose allow-list names this URL's origin exactly; never one for a sub-domain, another
    port or plain HTTP to an HTTPS origin."""
    origin = request_origin(url)
    if origin is None:
        return None
    for key, token in tokens.items():
        if token and _origin_of_key(key) == origin:
            return token
    return None


def auth_headers(url: str, tokens: dict[str, str]) -> dict[str, str]:
    """The ``Authorization`` header for this URL's origin, if it is one a credential belongs to."""
    token = token_for(url, tokens)
    return {"Authorization": f"Bearer {token}"} if token else {}

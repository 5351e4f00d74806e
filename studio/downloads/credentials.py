"""Which credential may go to which host: an explicit allow-list of API hosts, exact names only.

The Hugging Face token belongs to the Hub's API (the configured endpoint, ``huggingface.co`` and
``hf.co``), the CivitAI key to CivitAI's (the configured endpoint, ``civitai.com``,
``civitai.red``). Never a sub-domain: the Hub's storage and CDN hosts (``cdn-lfs.hf.co``,
``cas-bridge.xethub.hf.co``) get signed URLs and must not see the token, and a look-alike such as
``huggingface.co.evil.com`` or ``evilhuggingface.co`` gets nothing.

The host is taken the way ``requests`` will connect to it (its own URL preparation, then urllib3's
parser), not with ``urllib.parse``, which reads ``http://evil.com\\@huggingface.co/`` as the Hub
while the connection goes to ``evil.com``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from urllib3.util import parse_url

HF_API_HOSTS = frozenset({"huggingface.co", "hf.co"})
CIVITAI_API_HOSTS = frozenset({"civitai.com", "civitai.red"})


def request_host(url: str) -> str:
    """The host ``requests`` would connect to for ``url``, lower case; "" when it cannot tell."""
    try:
        prepared = requests.Request("GET", url).prepare().url or ""
        host = parse_url(prepared).host or ""
    except (requests.RequestException, ValueError):
        return ""
    return host.strip("[]").lower()


def endpoint_host(endpoint: str) -> str:
    return request_host(endpoint) or (urlsplit(endpoint).hostname or "").lower()


def hf_hosts(endpoint: str) -> frozenset[str]:
    return (HF_API_HOSTS | {endpoint_host(endpoint)}) - {""}


def civitai_hosts(endpoint: str) -> frozenset[str]:
    return (CIVITAI_API_HOSTS | {endpoint_host(endpoint)}) - {""}


def credentials(*, hf_token: str | None, civitai_key: str | None, hf_endpoint: str,
                civitai_endpoint: str) -> dict[str, str]:
    """host → secret, for ``auth_headers``: each secret only for its own exact API hosts."""
    found: dict[str, str] = {}
    if hf_token:
        found.update(dict.fromkeys(hf_hosts(hf_endpoint), hf_token))
    if civitai_key:
        found.update(dict.fromkeys(civitai_hosts(civitai_endpoint), civitai_key))
    return found


def token_for(url: str, tokens: dict[str, str]) -> str | None:
    """The secret whose allow-list names this URL's host exactly; never one for a sub-domain."""
    host = request_host(url)
    if not host:
        return None
    for allowed, token in tokens.items():
        if token and host == allowed.strip().lower():
            return token
    return None


def auth_headers(url: str, tokens: dict[str, str]) -> dict[str, str]:
    """The ``Authorization`` header for this URL's host, if it is one a credential belongs to."""
    token = token_for(url, tokens)
    return {"Authorization": f"Bearer {token}"} if token else {}

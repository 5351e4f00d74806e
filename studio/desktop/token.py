"""Remote mode with an API token instead of a sign-in: the window adds ``Authorization: Bearer``
to the requests the remote's own pages make to the remote, and to nothing else.

The check is Qt's first-party URL (the page shown at the top), so a foreign page the window was
sent to never gets the token, even for requests it aims at the remote: a token attached to every
request to the remote would be an ambient credential, and Studio skips its CSRF check for tokens.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def _origin(url: str) -> str:
    """The page's origin; a WebSocket's ws(s):// counts as its page's http(s)://."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}".lower()


def install(native_window: Any, origin: str, token: str) -> Any:
    """Sets the interceptor on the window's Qt profile; the caller keeps the returned object alive."""
    from qtpy.QtCore import QByteArray
    from qtpy.QtWebEngineCore import QWebEngineUrlRequestInterceptor

    expected = origin.lower()
    header = QByteArray(b"Authorization")
    value = QByteArray(f"Bearer {token}".encode())

    class TokenInterceptor(QWebEngineUrlRequestInterceptor):  # type: ignore[misc]
        def interceptRequest(self, info: Any) -> None:
            if _origin(info.requestUrl().toString()) != expected:
                return
            if _origin(info.firstPartyUrl().toString()) != expected:
                return
            info.setHttpHeader(header, value)

    interceptor = TokenInterceptor()
    native_window.profile.setUrlRequestInterceptor(interceptor)
    return interceptor

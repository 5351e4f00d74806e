"""What a download from a URL is called when the person gives no file name.

Like ``curl -OJ`` and a browser: the last part of the URL's path (percent-decoded) when it is a model
file's name, else what the server says in ``Content-Disposition`` at the transfer's first answer
(``filename*`` by RFC 5987 first, then ``filename``), else the last part of the address the
redirects ended at. Every candidate passes the same rules as a typed name (``safepath``) and must
end in a model suffix ComfyUI lists; a server never chooses a folder (only the last part of a path
it sends counts).

Until the server has named it, a row's ``path`` is its folder with a trailing ``/``.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from studio.models.storage import MODEL_SUFFIXES
from studio.safepath import name_problem

# One ``; name=value`` parameter: a quoted string (with backslash escapes) or a token.
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_CHARSETS = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}


def usable(name: str | None) -> str | None:
    """``name`` when it can be a model file's name in a models folder, else None."""
    if name is None or name_problem(name) is not None:
        return None
    return name if os.path.splitext(name)[1].lower() in MODEL_SUFFIXES else None


def _last_part(path: str) -> str:
    """A server's path (``/`` or ``\\`` between folders) down to its last part: never a folder."""
    return re.split(r"[/\\]", path)[-1]


def from_url(url: str) -> str | None:
    """The file name at the end of the URL's path, percent-decoded; None when there is none usable."""
    try:
        name = unquote(_last_part(urlsplit(url).path), errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    return usable(name)


def _extended(value: str) -> str | None:
    """``charset'language'pct-encoded`` (RFC 5987) decoded; None for another charset or bad bytes."""
    charset, _, rest = value.partition("'")
    encoded = rest.partition("'")[2]  # after the language; nothing when a quote is missing
    codec = _CHARSETS.get(charset.strip().lower())
    if codec is None:
        return None
    try:
        return unquote(encoded.strip(), encoding=codec, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None


def from_disposition(header: str | None) -> str | None:
    """The file name a ``Content-Disposition`` header gives: ``filename*`` first, then ``filename``."""
    if not header or len(header) > 4096:
        return None
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + header.partition(";")[2]):
        value = raw.strip()
        if value.startswith('"'):  # a quoted string (one a server forgot to close, too), escapes undone
            value = re.sub(r"\\(.)", r"\1", value[1:].removesuffix('"'))
        params.setdefault(key.lower(), value)
    extended = _extended(params["filename*"]) if "filename*" in params else None
    for candidate in (extended, params.get("filename")):
        name = usable(_last_part(candidate)) if candidate else None
        if name:
            return name
    return None


def provisional(url: str) -> str:
    """What the download list calls a row until the server has named its file."""
    return f"A file from {urlsplit(url).hostname or 'the server'}"[:255]


def pending(path: str) -> bool:
    """True while the server has yet to name the file (the path is only its folder)."""
    return path.endswith("/")

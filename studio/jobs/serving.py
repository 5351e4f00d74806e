"""The one way Studio sends a file it did not write itself: job outputs, input images, previews, exports.

These files come from ComfyUI (a node, a history entry, a socket frame) or from whoever can write in
the data folder, and they are served from Studio's own origin: an ``evil.html`` or a ``pic.svg``
shown inline would run its script with the signed-in person's cookies, and a same-origin ``.js``
would pass the pages' ``script-src 'self'``. So Studio chooses the media type itself, from the
extension, and only from an allow-list of images, videos and sounds a browser only ever displays;
everything else (SVG, HTML, XHTML, JavaScript, text, an unknown extension) goes out as
``application/octet-stream`` with ``Content-Disposition: attachment``. What ComfyUI, a socket frame
or the file's own bytes claim is never used. Every answer carries ``X-Content-Type-Options: nosniff``
and a CSP that sandboxes the document and allows it nothing, whatever a browser makes of it.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from flask import Response, request, send_file

from studio import safepath
from studio.errors import NotFound

# Shown inline: the extension (lower case) → the media type Studio sends.
INLINE_TYPES = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
    "bmp": "image/bmp", "avif": "image/avif",
    "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
    # Ogg Opus files are audio/ogg (RFC 7845); audio/opus names the bare codec.
    "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "opus": "audio/ogg",
}
# A live preview frame's own type, from ComfyUI's socket, is used only if it is one of these.
PREVIEW_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
DOWNLOAD_TYPE = "application/octet-stream"
SANDBOX_POLICY = "sandbox; default-src 'none'"


def media_type(name: str) -> str | None:
    """The media type a file with this name is shown inline as; None: it is only ever downloaded."""
    stem, dot, extension = name.rpartition(".")
    return INLINE_TYPES.get(extension.lower()) if dot and stem else None


def preview_type(claimed: object) -> str | None:
    """A preview frame's media type if it is an image type Studio shows; None: drop the frame."""
    if not isinstance(claimed, str):
        return None
    value = claimed.split(";", 1)[0].strip().lower()
    return value if value in PREVIEW_TYPES else None


def clean_name(name: str) -> str:
    """A file name fit for a ``Content-Disposition`` header and a person's screen: no control or
    format characters (bidi overrides such as U+202E that make ``exe.png`` read ``gnp.exe``)."""
    text = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return text.strip().strip(".").strip() or "file"


def harden(response: Response) -> Response:
    """The headers every served file carries, whatever else the answer says."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = SANDBOX_POLICY
    return response


def send_inside(root: Path, path: Path, *, download_name: str, max_age: int) -> Response:
    """A file below ``root``, reached without following any link (``O_NOFOLLOW`` at every step), with
    ranges and conditional requests; inline only for the allow-listed media types; a 404 for
    anything that is not a plain file there."""
    name = clean_name(download_name)
    inline = media_type(name)
    try:
        handle = safepath.open_inside(root, path, "rb")
    except (OSError, ValueError) as err:
        raise NotFound("The file is gone.", code="output_missing") from err
    try:
        facts = os.fstat(handle.fileno())
        response = send_file(handle, mimetype=inline or DOWNLOAD_TYPE, as_attachment=inline is None,
                             download_name=name, conditional=False, max_age=max_age,
                             etag=f"{facts.st_mtime_ns:x}-{facts.st_size:x}", last_modified=facts.st_mtime)
        response.content_length = facts.st_size
        response.make_conditional(request.environ, accept_ranges=True, complete_length=facts.st_size)
    except BaseException:  # a range that cannot be satisfied, among others: nothing keeps the file open
        handle.close()
        raise
    return harden(response)


def send_preview(claimed_type: str, data: bytes) -> Response | None:
    """A live preview frame, inline if its type is PNG, JPEG or WebP; None (no preview) otherwise."""
    mime = preview_type(claimed_type)
    if mime is None:
        return None
    response = Response(data, mimetype=mime)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = "inline"
    return harden(response)


def send_download(chunks: Iterable[bytes], *, download_name: str, mimetype: str = "application/zip") -> Response:
    """A generated file (a job's ZIP) streamed as an attachment, never shown by the browser."""
    response = Response(chunks, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{_ascii_quoted(clean_name(download_name))}"'
    return harden(response)


def _ascii_quoted(name: str) -> str:
    return "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in name)

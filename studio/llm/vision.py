"""Pictures in chat messages, as OpenAI's ``image_url`` content parts with data URLs.

Each picture is checked and scaled down (longest side at most ``llm_image_max_side``) before it
reaches llama-server: a phone photo would otherwise cost thousands of image tokens, and a file that
is not a picture, or a decompression bomb, must be refused here rather than inside the model.
Only data URLs are accepted: llama-server would fetch nothing else, and Studio fetches nothing for it.
Pictures that need no scaling go on as they came when llama-server reads their format (PNG, JPEG);
others are written again as JPEG.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from PIL import Image, UnidentifiedImageError

from studio.errors import BadRequest

MAX_IMAGES = 8
MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_PIXELS = 64_000_000  # far beyond any camera; a bomb's header claims more
MAX_TEXT = 200_000
DATA_URL = re.compile(r"data:(image/(?:png|jpeg|jpg|webp|gif|bmp));base64,(.*)", re.DOTALL | re.IGNORECASE)
PASSED_AS_IS = {"PNG", "JPEG"}


def _refuse(message: str) -> BadRequest:
    return BadRequest(message, code="bad_image", fields={"messages": "bad picture"})


def scaled(data_url: str, max_side: int) -> str:
    """The picture as a data URL llama-server can read, no side longer than ``max_side``."""
    found = DATA_URL.fullmatch(data_url.strip())
    if found is None:
        raise _refuse("A picture must be a data: URL of a PNG, JPEG, WebP, GIF or BMP image (base64).")
    try:
        raw = base64.b64decode(found.group(2), validate=True)
    except (binascii.Error, ValueError) as err:
        raise _refuse("A picture's data is not valid base64.") from err
    if len(raw) > MAX_IMAGE_BYTES:
        raise _refuse(f"A picture may be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _refuse(f"A picture of {width}×{height} pixels is too large.")
            if max(width, height) <= max_side and image.format in PASSED_AS_IS:
                image.verify()
                return f"data:{Image.MIME[image.format]};base64,{base64.b64encode(raw).decode()}"
            image.seek(0)
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise _refuse("A picture could not be read: it is not an image, or it is damaged.") from err
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return f"data:image/jpeg;base64,{base64.b64encode(out.getvalue()).decode()}"


def prepare(messages: list[Any], max_side: int) -> tuple[list[Any], int]:
    """The messages with every picture checked and scaled; and how many pictures there are."""
    count = 0
    prepared: list[Any] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            prepared.append(message)
            continue
        parts: list[dict[str, Any]] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
                raise BadRequest("A message's content parts must be text or image_url objects.",
                                 fields={"messages": "bad content part"})
            if part["type"] == "text":
                if not isinstance(part.get("text"), str) or len(part["text"]) > MAX_TEXT:
                    raise BadRequest("A text part needs its text.", fields={"messages": "bad text part"})
                parts.append(part)
                continue
            target = part.get("image_url")
            url = target.get("url") if isinstance(target, dict) else target
            if not isinstance(url, str):
                raise _refuse("An image_url part needs a url (a data: URL).")
            count += 1
            if count > MAX_IMAGES:
                raise _refuse(f"At most {MAX_IMAGES} pictures per request.")
            parts.append({**part, "image_url": {**(target if isinstance(target, dict) else {}),
                                                "url": scaled(url, max_side)}})
        prepared.append({**message, "content": parts})
    return prepared, count


def user_content(text: str, images: list[str]) -> str | list[dict[str, Any]]:
    """A person's message as the model gets it: plain text, or text and pictures as parts."""
    if not images:
        return text
    return [{"type": "text", "text": text}, *({"type": "image_url", "image_url": {"url": url}} for url in images)]

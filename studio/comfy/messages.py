"""Decoding what ComfyUI sends over its WebSocket.

Binary frames start with a big-endian u32 event type: 1 = preview image (u32 format, 1 JPEG / 2 PNG,
then the image), 3 = progress text (u32 node id length, node id, text), 4 = preview image with
metadata (u32 JSON length, JSON naming prompt and node, then the image). Type 2 never goes on the wire.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from studio.comfy.errors import ComfyProtocolError

PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}


@dataclass(frozen=True)
class ComfyMessage:
    """A JSON message: ``{"type": ..., "data": {...}}``."""

    type: str
    data: dict[str, Any]

    @property
    def prompt_id(self) -> str | None:
        value = self.data.get("prompt_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class PreviewImage:
    """A preview frame. ``prompt_id``/``node_id`` are known only for type-4 frames."""

    mime_type: str
    image: bytes = field(repr=False)
    prompt_id: str | None = None
    node_id: str | None = None
    display_node_id: str | None = None


@dataclass(frozen=True)
class ProgressText:
    node_id: str
    text: str


def decode_json_message(text: str) -> ComfyMessage:
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ComfyProtocolError(f"socket sent invalid JSON: {text[:80]!r}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ComfyProtocolError(f"socket sent a message without a type: {text[:80]!r}")
    data = raw.get("data")
    return ComfyMessage(raw["type"], data if isinstance(data, dict) else {})


def _text_or_none(value: Any) -> str | None:
    """A metadata field as text (ids are strings in ComfyUI), None when absent or of another shape."""
    return value if isinstance(value, str) and len(value) <= 256 else None


def decode_binary_frame(frame: bytes) -> PreviewImage | ProgressText:
    if len(frame) < 8:
        raise ComfyProtocolError(f"binary frame too short ({len(frame)} bytes)")
    (event_type,) = struct.unpack(">I", frame[:4])
    if event_type == PREVIEW_IMAGE:
        (image_format,) = struct.unpack(">I", frame[4:8])
        return PreviewImage(IMAGE_FORMATS.get(image_format, "application/octet-stream"), frame[8:])
    if event_type == PREVIEW_IMAGE_WITH_METADATA:
        (meta_len,) = struct.unpack(">I", frame[4:8])
        meta_end = 8 + meta_len
        if meta_end > len(frame):
            raise ComfyProtocolError("preview metadata runs past the end of the frame")
        try:
            meta = json.loads(frame[8:meta_end].decode("utf-8"))
        except (ValueError, RecursionError) as err:
            raise ComfyProtocolError("preview metadata is not JSON") from err
        if not isinstance(meta, dict):
            raise ComfyProtocolError("preview metadata is not an object")
        return PreviewImage(
            _text_or_none(meta.get("image_type")) or "image/jpeg",
            frame[meta_end:],
            prompt_id=_text_or_none(meta.get("prompt_id")),
            node_id=_text_or_none(meta.get("node_id")),
            display_node_id=_text_or_none(meta.get("display_node_id")),
        )
    if event_type == TEXT:
        (id_len,) = struct.unpack(">I", frame[4:8])
        node_end = 8 + id_len
        if node_end > len(frame):
            raise ComfyProtocolError("text frame node id runs past the end of the frame")
        try:
            node_id = frame[8:node_end].decode("utf-8")
        except UnicodeDecodeError as err:
            raise ComfyProtocolError("text frame node id is not UTF-8") from err
        return ProgressText(node_id, frame[node_end:].decode("utf-8", "replace"))
    raise ComfyProtocolError(f"unknown binary event type {event_type}")

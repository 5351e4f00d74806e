"""A client library for ComfyUI's HTTP and WebSocket protocol.

Imports nothing from Flask or the database: Studio's services use it the way a Home Assistant
integration uses its device library, and it could be published on its own.
"""

from studio.comfy.client import ComfyClient, PromptAccepted, QueueItem, QueueState
from studio.comfy.errors import (
    ComfyError,
    ComfyNotFound,
    ComfyProtocolError,
    ComfyRejected,
    ComfyUnavailable,
    ComfyUnsendable,
)
from studio.comfy.messages import ComfyMessage, PreviewImage, ProgressText, decode_binary_frame
from studio.comfy.stream import ComfyStream, ConnectionState

__all__ = [
    "ComfyClient",
    "PromptAccepted",
    "QueueItem",
    "QueueState",
    "ComfyError",
    "ComfyNotFound",
    "ComfyProtocolError",
    "ComfyRejected",
    "ComfyUnavailable",
    "ComfyUnsendable",
    "ComfyMessage",
    "PreviewImage",
    "ProgressText",
    "decode_binary_frame",
    "ComfyStream",
    "ConnectionState",
]

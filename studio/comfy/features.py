"""What the connected ComfyUI can do, found out by asking it rather than by its version number.

Version numbers say little: forks, nightly builds and the desktop app all report numbers of their
own, and a feature lands in one release and is back-ported to another. So Studio looks at what the
server answers (``comfyui-protocol.md`` §11):

- ``/features``: the flags the server announces (``supports_preview_metadata``, ``max_upload_size``,
  and whatever newer servers and ``--feature-flag`` add);
- the Jobs API: ``GET /api/jobs`` answers 200 with ``{"jobs": …}`` on newer servers and 404 on 0.3.x,
  and where it exists it tells a job's state in one request, interrupted jobs included;
- the ``/object_info`` schema, from one small node (``KSampler``) instead of the whole 1.7 MB: newer
  servers add ``is_input_list``, ``has_intermediate_output``, ``search_aliases`` … to every node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from studio.comfy.errors import ComfyError, ComfyNotFound, ComfyProtocolError

if TYPE_CHECKING:
    from studio.comfy.client import ComfyClient

# NodeInfo keys that ComfyUI 0.3.64 never sends and newer releases send for every node.
NEWER_NODE_INFO_KEYS = ("is_input_list", "has_intermediate_output", "search_aliases", "dev_only",
                        "essentials_category")
PROBE_NODE = "KSampler"


@dataclass(frozen=True)
class ServerFeatures:
    """What one ComfyUI answered when Studio connected to it."""

    version: str | None
    # /features as the server sent it (JSON values only).
    flags: dict[str, Any] = field(default_factory=dict)
    jobs_api: bool = False
    # 1: NodeInfo as in 0.3.64; 2: NodeInfo with the newer keys (is_input_list, …).
    object_info_schema: int | None = None
    detected_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def preview_metadata(self) -> bool:
        return bool(self.flags.get("supports_preview_metadata"))

    def view(self) -> dict[str, Any]:
        """As the status API shows it."""
        return {
            "version": self.version,
            "jobs_api": self.jobs_api,
            "object_info_schema": self.object_info_schema,
            "preview_metadata": self.preview_metadata,
            "max_upload_size": self.flags.get("max_upload_size"),
            "flags": sorted(str(key) for key in self.flags)[:50],
            "detected_at": self.detected_at,
        }


def detect(client: ComfyClient) -> ServerFeatures:
    """Asks ``client``'s server; raises ``ComfyError`` only when it cannot be reached at all.

    Each probe that is missing or answers oddly counts as "not there": an old or unusual ComfyUI is
    still used, with the fallbacks (``/history`` for reconcile, the classic NodeInfo).
    """
    stats = client.system_stats()  # ComfyUnavailable here: nothing to detect yet
    system = stats.get("system")
    version = system.get("comfyui_version") if isinstance(system, dict) else None
    try:
        answer = client.features()
        flags = {str(k): v for k, v in answer.items()} if isinstance(answer, dict) else {}
    except (ComfyNotFound, ComfyProtocolError):
        flags = {}
    return ServerFeatures(
        version=str(version)[:64] if isinstance(version, str) else None,
        flags=flags,
        jobs_api=_has_jobs_api(client),
        object_info_schema=_object_info_schema(client),
    )


def _has_jobs_api(client: ComfyClient) -> bool:
    try:
        answer = client.jobs_list(limit=1)
    except (ComfyNotFound, ComfyProtocolError):
        return False
    return isinstance(answer, dict) and isinstance(answer.get("jobs"), list)


def _object_info_schema(client: ComfyClient) -> int | None:
    try:
        info = client.node_info(PROBE_NODE)
    except ComfyError:
        return None
    return 2 if any(key in info for key in NEWER_NODE_INFO_KEYS) else 1

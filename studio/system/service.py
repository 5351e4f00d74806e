"""Health and status: what a person (or a load balancer) needs to know about this Studio."""

from __future__ import annotations

import time
from typing import Any

from studio import __version__
from studio.comfy import ComfyClient, ComfyError, ComfyStream, ComfyUnavailable
from studio.config import Settings
from studio.errors import ServiceUnavailable
from studio.paths import DataDir
from studio.system.telemetry import TelemetrySampler

# /api/status must answer quickly even when ComfyUI hangs.
STATUS_PROBE_TIMEOUT_S = 2.0


class SystemService:
    def __init__(
        self,
        settings: Settings,
        data_dir: DataDir,
        comfy: ComfyClient,
        stream: ComfyStream,
        telemetry: TelemetrySampler,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.comfy = comfy
        self.stream = stream
        self.telemetry = telemetry
        self.started_at = time.monotonic()
        self._probe = ComfyClient(comfy.base_url, timeout_s=STATUS_PROBE_TIMEOUT_S)

    def set_comfy_url(self, url: str) -> None:
        self._probe = ComfyClient(url, timeout_s=STATUS_PROBE_TIMEOUT_S)

    def health(self) -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    def comfy_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "url": self.comfy.display_url,
            "reachable": False,
            "socket": self.stream.state.value,
            "version": None,
            "devices": [],
            "queue_remaining": None,
            "error": None,
        }
        try:
            stats = self._probe.system_stats()
            queue = self._probe.get_queue()
        except ComfyError as err:
            status["error"] = str(err)
            status["hint"] = (
                "Start ComfyUI, or point Studio at it with COMFYUI_URL (or comfyui_url in settings.toml)."
            )
            return status
        status.update(
            reachable=True,
            version=stats.get("system", {}).get("comfyui_version"),
            devices=[
                {k: device.get(k) for k in ("name", "type", "index", "vram_total", "vram_free")}
                for device in stats.get("devices", [])
            ],
            queue_remaining=queue.remaining,
        )
        return status

    def status(self) -> dict[str, Any]:
        return {
            "comfyui": self.comfy_status(),
            "studio": {
                "version": __version__,
                "uptime_s": round(time.monotonic() - self.started_at, 1),
                "data_dir": str(self.data_dir.root),
            },
            "telemetry": self.telemetry.latest(),
        }

    def free_comfy_memory(self, *, unload_models: bool, free_memory: bool) -> None:
        try:
            self.comfy.free(unload_models=unload_models, free_memory=free_memory)
        except ComfyUnavailable as err:
            raise ServiceUnavailable(str(err), code="comfy_unavailable") from err
        except ComfyError as err:
            raise ServiceUnavailable(f"ComfyUI could not free memory: {err}", code="comfy_error") from err

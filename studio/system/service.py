"""Health and status: what a person (or a load balancer) needs to know about this Studio."""

from __future__ import annotations

import threading
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
# A model folder is asked of ComfyUI at most once in this many seconds, however many pages refresh.
MODELS_REFRESH_INTERVAL_S = 5.0
MAX_REFRESH_FOLDERS = 32


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
        self.models_refresh_interval_s = MODELS_REFRESH_INTERVAL_S
        # folder -> (when ComfyUI was last asked, what it listed): the throttle's memory.
        self._refreshed: dict[str, tuple[float, list[str]]] = {}
        self._refresh_lock = threading.Lock()

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
            # What the connected ComfyUI can do, as detected when Studio connected (None before).
            "features": self.comfy.server.view() if self.comfy.server is not None else None,
        }
        try:
            stats = self._probe.system_stats()
            queue = self._probe.get_queue()
        except ComfyError as err:
            status["error"] = str(err)
            status["hint"] = (
                "Start ComfyUI, or set its address in Settings (ComfyUI URL)."
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

    def refresh_models(self, folders: list[str] | None) -> dict[str, Any]:
        """ComfyUI's current files in ``folders`` (every folder it has when None), so pickers show a
        model added while Studio runs. A folder asked within ``models_refresh_interval_s`` is answered
        from that last look without asking ComfyUI again: pages and people cannot hammer it."""
        try:
            wanted = folders if folders is not None else self.comfy.model_folders()
        except ComfyError as err:
            raise ServiceUnavailable(f"ComfyUI cannot list its model folders: {err}", code="comfy_unavailable") from err
        wanted = list(dict.fromkeys(wanted))[:MAX_REFRESH_FOLDERS]
        with self._refresh_lock:
            now = time.monotonic()
            fresh = {f: self._refreshed[f][1] for f in wanted
                     if f in self._refreshed and now - self._refreshed[f][0] < self.models_refresh_interval_s}
            ask = [f for f in wanted if f not in fresh]
            changed = False
            if ask:
                try:
                    found, changed = self.comfy.refresh_models(ask)
                except ComfyError as err:
                    raise ServiceUnavailable(f"ComfyUI cannot list its models: {err}",
                                             code="comfy_unavailable") from err
                for folder, files in found.items():
                    self._refreshed[folder] = (now, files)
                fresh.update(found)
        return {"folders": {f: fresh[f] for f in wanted if f in fresh}, "changed": changed,
                "asked": [f for f in ask if f in fresh]}

    def free_comfy_memory(self, *, unload_models: bool, free_memory: bool) -> None:
        try:
            self.comfy.free(unload_models=unload_models, free_memory=free_memory)
        except ComfyUnavailable as err:
            raise ServiceUnavailable(str(err), code="comfy_unavailable") from err
        except ComfyError as err:
            raise ServiceUnavailable(f"ComfyUI could not free memory: {err}", code="comfy_error") from err

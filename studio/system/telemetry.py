"""CPU, RAM, GPU, VRAM and disk figures for the Home page.

GPUs come from NVML (``nvidia-ml-py``) when it is installed and finds a driver: it is exact and
cheap. Otherwise ComfyUI's ``/system_stats`` devices are used, which is what a remote or
containerised ComfyUI can tell us.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import psutil

from studio.comfy import ComfyClient, ComfyError, ComfyStream

log = logging.getLogger(__name__)


def _nvml_gpus() -> list[dict[str, Any]] | None:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "utilization_percent": float(utilization.gpu),
                    "vram_total": int(memory.total),
                    "vram_used": int(memory.used),
                }
            )
        return gpus
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def gpus_from_system_stats(stats: dict[str, Any]) -> list[dict[str, Any]]:
    gpus = []
    for device in stats.get("devices", []):
        if device.get("type") == "cpu":
            continue
        total = int(device.get("vram_total") or 0)
        free = int(device.get("vram_free") or 0)
        gpus.append(
            {
                "index": device.get("index"),
                "name": str(device.get("name", "")),
                "utilization_percent": None,
                "vram_total": total,
                "vram_used": max(total - free, 0),
            }
        )
    return gpus


class TelemetrySampler:
    def __init__(self, data_root: Path, comfy: ComfyClient, stream: ComfyStream) -> None:
        self.data_root = data_root
        self.comfy = comfy
        self.stream = stream
        self._latest: dict[str, Any] | None = None
        self._lock = threading.Lock()
        # The first cpu_percent call only sets a baseline; prime it so the first sample is real.
        psutil.cpu_percent(interval=None)

    def sample(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        disk = shutil.disk_usage(self.data_root if self.data_root.exists() else Path.cwd())
        gpus = _nvml_gpus()
        source = "nvml" if gpus is not None else None
        if gpus is None and self.stream.connected:
            try:
                gpus = gpus_from_system_stats(self.comfy.system_stats())
                source = "comfyui"
            except ComfyError:
                gpus = None
        result = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "cpu_count": psutil.cpu_count(),
            "ram_total": memory.total,
            "ram_used": memory.total - memory.available,
            "gpus": gpus or [],
            "gpu_source": source,
            "disk": {"path": str(self.data_root), "total": disk.total, "free": disk.free, "used": disk.used},
        }
        with self._lock:
            self._latest = result
        return result

    def latest(self) -> dict[str, Any]:
        with self._lock:
            latest = self._latest
        return latest if latest is not None else self.sample()

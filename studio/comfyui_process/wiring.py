"""Builds the ComfyUI process service from Studio's settings and the Settings page's values.

The launch options are read at every start, so a folder, interpreter or flags chosen on the
Settings page apply to the next start without restarting Studio.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.comfyui_process.launch import LaunchOptions, parse_flags
from studio.comfyui_process.process import child_environment
from studio.comfyui_process.supervisor import ComfyUIProcess
from studio.config import Settings
from studio.errors import BadRequest
from studio.events import EventBus
from studio.paths import DataDir


def launch_options(settings: Settings, data_dir: DataDir, values: dict[str, Any]) -> LaunchOptions:
    """``values``: the Settings page's effective values (keys it does not know fall back to the
    configuration)."""
    chosen = values.get("comfyui_dir", str(settings.comfyui_dir) if settings.comfyui_dir else None)
    folder = Path(chosen).expanduser() if chosen else None
    extra = settings.comfyui_extra_model_paths
    if extra is None and folder is not None and (folder / "extra_model_paths.yaml").is_file():
        extra = folder / "extra_model_paths.yaml"
    try:
        flags = parse_flags(str(values.get("comfyui_args", settings.comfyui_args) or ""))
    except BadRequest:
        flags = ()  # refused when saved; a bad COMFYUI_ARGS in the environment must not stop every start
    return LaunchOptions(
        comfyui_dir=folder,
        python_setting=str(values.get("comfyui_python", settings.comfyui_python) or ""),
        port=settings.comfyui_port,
        flags=flags,
        preview_method=str(values.get("comfyui_preview_method", settings.comfyui_preview_method)),
        extra_model_paths=extra,
        input_dir=data_dir.inputs,
        output_dir=data_dir.outputs,
        autostart=settings.comfyui_autostart,
    )


def build_comfyui_process(settings: Settings, data_dir: DataDir, bus: EventBus,
                          values: Callable[[], dict[str, Any]], on_url: Callable[[str | None], None]
                          ) -> ComfyUIProcess:
    return ComfyUIProcess(data_dir, bus, lambda: launch_options(settings, data_dir, values()), on_url,
                          environment=lambda: child_environment(settings),
                          start_timeout_s=lambda: settings.comfyui_start_timeout_s)

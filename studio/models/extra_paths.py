"""ComfyUI's ``extra_model_paths.yaml``: more folders ComfyUI lists models from.

Studio reads it the way ComfyUI does (a section per install, ``base_path`` relative to the YAML
file, each category one path or several on separate lines, the legacy names ``unet`` and ``clip``)
so the Models page and "is it installed?" see the same files ComfyUI sees. Downloads still only
ever go into the models root.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

# ComfyUI renamed these folders; old YAML files still use the old names.
LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}
NOT_FOLDERS = {"base_path", "is_default", "download_model_base"}


def read_extra_model_paths(path: Path) -> list[tuple[str, Path]]:
    """``[(category, folder)]`` in file order; a broken file is logged and yields nothing."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        log.warning("%s cannot be read: %s", path, err)
        return []
    folders: list[tuple[str, Path]] = []
    for section in (raw or {}).values() if isinstance(raw, dict) else []:
        if not isinstance(section, dict):
            continue
        base = Path(os.path.expandvars(os.path.expanduser(str(section.get("base_path") or ""))))
        if not base.is_absolute():
            base = path.parent / base
        for category, value in section.items():
            if category in NOT_FOLDERS or value is None:
                continue
            for line in str(value).splitlines():
                line = line.strip()
                if line:
                    folder = Path(os.path.expandvars(os.path.expanduser(line)))
                    folders.append((LEGACY_NAMES.get(str(category), str(category)),
                                    (folder if folder.is_absolute() else base / folder).resolve()))
    return folders

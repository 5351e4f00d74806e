"""The models folder: where ComfyUI looks for models, and the only place downloads may write."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from studio.errors import BadRequest

MODEL_SUFFIXES = {".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".onnx"}
# Formats that can run code when loaded: an admin must confirm them explicitly.
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl"}


@dataclass(frozen=True)
class ModelsRoot:
    root: Path

    def target(self, dest: str, file_name: str) -> Path:
        """``root/dest/file``; refuses every name that would land anywhere else."""
        for part, label in ((dest, "dest"), (file_name, "file")):
            if "\x00" in part or "\\" in part or part.startswith("/") or (len(part) > 1 and part[1] == ":"):
                raise BadRequest(f"The {label} {part!r} is not a safe path.", fields={label: "unsafe path"})
        if not file_name or "/" in file_name or file_name in (".", ".."):
            raise BadRequest(f"The file name {file_name!r} is not allowed.", fields={"file": "unsafe name"})
        root = self.root.resolve()
        target = (root / dest / file_name).resolve()
        if not target.is_relative_to(root) or target == root or any(p in ("..",) for p in Path(dest).parts):
            raise BadRequest(f"{dest}/{file_name} would land outside the models folder.", fields={"dest": "unsafe"})
        return target

    def relative(self, path: Path) -> str:
        return str(path.resolve().relative_to(self.root.resolve()))

    def disk(self) -> dict[str, int]:
        self.root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self.root)
        return {"total": usage.total, "free": usage.free, "used": usage.used}

    def scan(self, limit: int = 100_000) -> list[dict[str, object]]:
        """Every model file under the root (catalogued or not): path, size, modified time."""
        found: list[dict[str, object]] = []
        if not self.root.is_dir():
            return found
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(folder) / name
                if path.suffix.lower() in MODEL_SUFFIXES:
                    stat = path.stat()
                    found.append({"path": self.relative(path), "size": stat.st_size, "modified": stat.st_mtime})
                    if len(found) >= limit:
                        return found
        return found

"""The models folder: where ComfyUI looks for models, and the only place downloads may write.

ComfyUI may also list models from the folders in ``extra_model_paths.yaml``; those are scanned and
shown, but nothing is ever written or deleted there.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import BadRequest

MODEL_SUFFIXES = {".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".onnx"}
# Formats that can run code when loaded: an admin must confirm them explicitly.
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl"}
# Folders of ours inside the models root that hold no usable model.
SKIPPED_FOLDERS = {".quarantine", ".cache", ".git"}


@dataclass(frozen=True)
class ModelFile:
    # As ComfyUI names it: ``<category>/<sub folders>/<file>``; one name per file even across roots.
    path: str
    category: str
    absolute: str  # resolved; a str because a models folder can hold many thousands of files
    size: int
    mtime_ns: int
    # "models" for the models root, else the extra folder (from extra_model_paths.yaml) it is in.
    location: str

    @property
    def name(self) -> str:
        return os.path.basename(self.absolute)


@dataclass(frozen=True)
class ModelsRoot:
    root: Path
    extra: tuple[tuple[str, Path], ...] = field(default=())

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

    def existing(self, relative: str) -> Path:
        """A model file in the models root by its relative path (for deleting); never one elsewhere."""
        dest, _, name = relative.strip("/").rpartition("/")
        target = self.target(dest, name)
        if target.suffix.lower() not in MODEL_SUFFIXES or not target.is_file():
            raise BadRequest(f"{relative} is not a model file in the models folder.", fields={"path": "not found"})
        return target

    def relative(self, path: Path) -> str:
        return str(path.resolve().relative_to(self.root.resolve()))

    def disk(self) -> dict[str, int]:
        self.root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self.root)
        return {"total": usage.total, "free": usage.free, "used": usage.used}

    def scan(self, limit: int = 100_000) -> list[ModelFile]:
        """Every model file ComfyUI would see (catalogued or not); the models root wins a name clash."""
        found: dict[str, ModelFile] = {}
        self._walk(self.root, None, "models", found, limit)
        for category, folder in self.extra:
            if folder.resolve() != self.root.resolve():
                self._walk(folder, category, str(folder), found, limit)
        return list(found.values())

    @staticmethod
    def _walk(top: Path, category: str | None, location: str, found: dict[str, ModelFile], limit: int) -> None:
        """os.scandir with plain strings: this runs on every Models page load, over thousands of files."""
        if not top.is_dir():
            return
        pending = [(str(top.resolve()), category or "")]
        while pending:
            folder, label_prefix = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                label = f"{label_prefix}/{entry.name}" if label_prefix else entry.name
                try:
                    if entry.is_dir():
                        if entry.name not in SKIPPED_FOLDERS:
                            pending.append((entry.path, label))
                        continue
                    if os.path.splitext(entry.name)[1].lower() not in MODEL_SUFFIXES or "/" not in label:
                        continue
                    if label in found or len(found) >= limit:
                        continue
                    stat = entry.stat()
                except OSError:  # vanished, or a dangling link
                    continue
                found[label] = ModelFile(label, label.split("/", 1)[0], entry.path, stat.st_size, stat.st_mtime_ns,
                                         location)

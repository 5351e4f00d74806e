"""The models folder: where ComfyUI looks for models, and the only place downloads may write.

ComfyUI may also list models from the folders in ``extra_model_paths.yaml``; those are scanned and
shown, but nothing is ever written or deleted there.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import BadRequest
from studio.safepath import UnsafePath, check_name, check_relative, parent_fd, unlink_inside

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
        """``root/dest/file``; refuses every name that would land anywhere else or could never be written.

        Purely by its names (each part a real file name with room for ``.part``, no ``..``, not
        absolute): nothing on disk is resolved here, so a link below the root changes nothing. The
        writes themselves walk from the root refusing links (``studio.safepath``).
        """
        folder = check_relative(dest, field="dest", reserve=0, allow_empty=True)
        name = check_name(file_name, field="file")
        return self.root / folder / name if folder else self.root / name

    def check_writable(self, target: Path) -> None:
        """Refuses, as a 400 naming ``dest``, a target whose folders below the root include a link."""
        try:
            with parent_fd(self.root, target):
                pass
        except UnsafePath:
            raise BadRequest(f"{self.relative(target.parent) or 'The models folder'} is a symbolic link or not a "
                             "folder: Studio does not write through links inside the models folder.",
                             fields={"dest": "a symbolic link on the way"}) from None
        except OSError:
            return  # missing (created when the download starts) or unreadable (the download says why)

    def existing(self, relative: str) -> Path:
        """A model file in the models root by its relative path (for deleting); never one elsewhere."""
        cleaned = check_relative(relative, field="path", reserve=0)
        dest, _, name = cleaned.rpartition("/")
        target = self.root / cleaned
        if os.path.splitext(name)[1].lower() not in MODEL_SUFFIXES or not self._is_file_or_link(target):
            raise BadRequest(f"{relative} is not a model file in the models folder.", fields={"path": "not found"})
        return target

    def _is_file_or_link(self, target: Path) -> bool:
        """A regular file, or a link itself (deleting a link removes the link, never what it points to),
        reached from the root without passing through any link."""
        try:
            with parent_fd(self.root, target) as (fd, leaf):
                info = os.stat(leaf, dir_fd=fd, follow_symlinks=False) if fd is not None else os.lstat(leaf)
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)

    def delete(self, relative: str) -> str:
        """Removes one model file (or a link standing for one) below the root; returns its clean path."""
        target = self.existing(relative)
        try:
            unlink_inside(self.root, target, missing_ok=False)
        except FileNotFoundError:
            raise BadRequest(f"{relative} is not a model file in the models folder.",
                             fields={"path": "not found"}) from None
        except UnsafePath:
            raise BadRequest(f"{relative} is reached through a symbolic link: Studio does not delete through links.",
                             fields={"path": "a symbolic link on the way"}) from None
        return self.relative(target)

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, by its names (``target`` built it; nothing is resolved)."""
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))
        return "" if relative == os.curdir else relative.replace(os.sep, "/")

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
        seen: set[tuple[int, int]] = set()  # folders already walked: a link loop is walked once
        while pending:
            folder, label_prefix = pending.pop()
            try:
                info = os.stat(folder)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
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

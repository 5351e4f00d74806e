"""ComfyUI's log: ``STUDIO_DIR/logs/comfyui.log``, a fresh file at each start (older ones kept as
``.1`` … ``.3``) and trimmed when it grows past a size.

ComfyUI writes into the file itself (its stdout and stderr are the file, never a pipe to Studio),
so a busy ComfyUI never blocks on a Studio that reads slowly, and it keeps logging if Studio dies.
Trimming is copy-and-truncate: the file was opened for appending, so truncating it under the
running process is safe; the trimmed part goes to ``.1``.
"""

from __future__ import annotations

import os
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

LOG_NAME = "comfyui.log"
LOG_KEEP = 3
LOG_LIMIT_BYTES = 20 * 1024 * 1024
TAIL_WINDOW_BYTES = 512 * 1024
MAX_LINE_CHARS = 4000  # a tail reads at most this much from the end, however big the file


class ComfyLog:
    def __init__(self, folder: Path, *, limit_bytes: int = LOG_LIMIT_BYTES) -> None:
        self.folder = folder
        self.limit_bytes = limit_bytes

    @property
    def path(self) -> Path:
        return self.folder / LOG_NAME

    def _older(self, number: int) -> Path:
        return self.folder / f"{LOG_NAME}.{number}"

    def open_fresh(self) -> int:
        """The previous logs shifted by one, and a descriptor on a new empty file for the child."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for number in range(LOG_KEEP, 0, -1):
            newer = self.path if number == 1 else self._older(number - 1)
            if newer.exists():
                newer.replace(self._older(number))
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                       0o600)

    def note(self, text: str) -> None:
        """A line of Studio's own in the log (what it started, why it restarted), marked as such."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError:
            return
        try:
            os.write(fd, f"[studio {stamp}] {text}\n".encode("utf-8", "replace"))
        finally:
            os.close(fd)

    def trim(self) -> None:
        try:
            size = self.path.stat().st_size
            if size <= self.limit_bytes:
                return
            with self.path.open("rb") as handle:
                handle.seek(max(0, size - self.limit_bytes))
                kept = handle.read(self.limit_bytes)
            self._older(1).write_bytes(kept)
            os.truncate(self.path, 0)
        except OSError:
            return

    def tail(self, lines: int) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                start = max(0, size - TAIL_WINDOW_BYTES)
                handle.seek(start)
                if start:
                    handle.readline()  # a partial first line is not shown
                kept: deque[str] = deque(maxlen=lines)
                for raw in handle:
                    # A progress bar redraws itself with \r on one line: shown as a terminal shows it.
                    line = raw.decode("utf-8", "replace").rstrip("\r\n").rsplit("\r", 1)[-1]
                    kept.append(line[:MAX_LINE_CHARS])
        except OSError:
            return []
        return list(kept)

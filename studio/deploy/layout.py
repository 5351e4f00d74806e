"""Where the deploy machinery keeps things on the volume, and the few file moves it trusts.

A release is a plain folder ``releases/<name>/`` shaped like the repository (``studio/``,
``webui/``, ``catalogs/``, ``workflows/``, ``pyproject.toml``, ``version.json``). ``current`` is a
relative symlink to one of them, replaced by renaming a new link over it, so a crash leaves either
the old release or the new one. ``backend`` and ``frontend`` (the seed's names) point through
``current`` and never change.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.jsonio import loads
from studio.safepath import write_atomic

# Test hook: ``<phase>:<step>`` makes the process group SIGKILL itself right after that step, the
# way a pod dies (tests run the deploy commands in their own session, so only those die).
CRASH_ENV = "STUDIO_DEPLOY_CRASH_AFTER"
RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
KEEP_RELEASES = 3


def repo_url_of(settings: Any) -> str:
    """REPO_URL in clear, for git only (it may carry a token: never logged, never answered)."""
    secret = settings.repo_url
    return secret.get_secret_value() if secret is not None else ""


def crash_point(phase: str, step: int) -> None:
    if os.environ.get(CRASH_ENV) == f"{phase}:{step}":
        sys.stdout.flush()
        sys.stderr.flush()
        os.killpg(os.getpgrp(), signal.SIGKILL)


def say(prefix: str, message: str) -> None:
    """Every line of the deploy commands is prefixed so a pod's log tells who said it."""
    sys.stdout.write(f"[{prefix}] {message}\n")
    sys.stdout.flush()


def release_name(app_version: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", app_version)[:48] or "0"
    if not base[0].isalnum():
        base = "v" + base
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}.{n}"
    return name


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def repo(self) -> Path:
        return self.root / ".repo"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def state(self) -> Path:
        """The deploy machinery's own files (never served)."""
        return self.root / "deploy"

    @property
    def version_file(self) -> Path:
        return self.root / "version.json"

    @property
    def remote_version_file(self) -> Path:
        return self.root / "remote_version.json"

    @property
    def maintenance_file(self) -> Path:
        return self.state / "maintenance.json"

    @property
    def request_file(self) -> Path:
        return self.state / "request.json"

    @property
    def update_file(self) -> Path:
        return self.state / "update.json"

    @property
    def supervisor_pid_file(self) -> Path:
        return self.state / "supervisor.pid"

    def release(self, name: str) -> Path:
        if not RELEASE_NAME.match(name):
            raise ValueError(f"not a release name: {name[:64]!r}")
        return self.releases / name

    def current_name(self) -> str | None:
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        name = Path(target).name
        return name if RELEASE_NAME.match(name) and (self.releases / name).is_dir() else None

    def release_names(self) -> list[str]:
        """Complete releases, oldest first (a folder is complete once renamed from ``.partial``)."""
        if not self.releases.is_dir():
            return []
        found = [entry for entry in self.releases.iterdir() if RELEASE_NAME.match(entry.name) and entry.is_dir()]
        return [entry.name for entry in sorted(found, key=lambda entry: entry.stat().st_mtime)]

    def switch_to(self, name: str) -> None:
        """Point ``current`` at a release in one rename; the seed's folder names follow it."""
        self.release(name)
        scratch = self.root / f".current.{os.getpid()}.tmp"
        if scratch.is_symlink() or scratch.exists():
            scratch.unlink()
        os.symlink(os.path.join("releases", name), scratch)
        os.replace(scratch, self.current)
        fsync_folder(self.root)
        self.ensure_component_links()

    def ensure_component_links(self) -> None:
        """``backend`` → ``current/studio``, ``frontend`` → ``current/webui``; a legacy real folder
        of the original's is moved aside to ``legacy/`` rather than deleted."""
        for link, inside in (("backend", "studio"), ("frontend", "webui")):
            path = self.root / link
            wanted = os.path.join("current", inside)
            if path.is_symlink():
                if os.readlink(path) == wanted:
                    continue
                path.unlink()
            elif path.exists():
                aside = self.root / "legacy" / f"{link}-{int(time.time())}"
                aside.parent.mkdir(exist_ok=True)
                os.replace(path, aside)
            scratch = self.root / f".{link}.tmp"
            if scratch.is_symlink() or scratch.exists():
                scratch.unlink()
            os.symlink(wanted, scratch)
            os.replace(scratch, path)
        fsync_folder(self.root)


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(root: Path, path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(root, path, (json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n").encode())


def read_json(path: Path, *, max_bytes: int = 1024 * 1024) -> Any:
    """The file's JSON, or None when it is missing, too large or unreadable (state files are
    rewritten atomically, so a torn one means something else wrote it: treated as absent)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError:
        return None
    if len(data) > max_bytes:
        return None
    try:
        return loads(data)
    except (ValueError, RecursionError):
        return None

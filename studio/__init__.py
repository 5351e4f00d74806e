"""ComfyUI Studio: a friendly, safe, fast front for ComfyUI."""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _running_version() -> str:
    """The version of the code that runs. In the container a release on the volume runs from its own
    folder (``PYTHONPATH``) beside the image's pip-installed copy, whose metadata would name the
    image's version: the release's own pyproject.toml, when it sits beside the package, wins."""
    beside = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(beside.read_text(encoding="utf-8"))["project"]
        if project.get("name") == "comfyui-studio":
            return str(project["version"])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError):
        pass
    try:
        return version("comfyui-studio")
    except PackageNotFoundError:  # a source tree that was never installed and has no pyproject.toml
        return "0.0.0+source"


__version__ = _running_version()

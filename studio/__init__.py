"""ComfyUI Studio: a friendly, safe, fast front for ComfyUI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("comfyui-studio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

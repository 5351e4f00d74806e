"""Studio running ComfyUI itself (``COMFYUI_DIR``): the process, its log and its routes.

``ComfyUIProcess`` is the service (``services.comfyui_process``): ``restart(reason)``, ``python``
(the interpreter ComfyUI runs with) and ``comfyui_dir`` are what other features use.
"""

from studio.comfyui_process.supervisor import ComfyUIProcess, State

__all__ = ["ComfyUIProcess", "State"]

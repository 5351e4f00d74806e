"""Which nodes of a workflow save its results, and what kind of result each one saves.

ComfyUI says it itself: ``/object_info`` marks every node that ends a graph with ``output_node:
true``, and the ones that write files take a ``filename_prefix``. That covers every saving node of
every release and node pack (SaveGLB, SaveAudioMP3, SaveText, SaveWEBM, …) without a list to keep
up. The short table below is only the fallback for when ComfyUI cannot be asked or does not know a
class (a node pack that is not installed yet).
"""

from __future__ import annotations

from typing import Any

# Saving nodes known without asking ComfyUI: class → the kind of file it writes.
KNOWN_OUTPUTS = {
    "SaveImage": "image", "SaveAnimatedWEBP": "image", "SaveAnimatedPNG": "image", "SaveImageAdvanced": "image",
    "SaveSVGNode": "image", "VHS_VideoCombine": "video", "SaveVideo": "video", "SaveWEBM": "video",
    "SaveAudio": "audio", "SaveAudioMP3": "audio", "SaveAudioOpus": "audio", "SaveAudioAdvanced": "audio",
    "SaveGLB": "3d", "SaveText": "text",
}
# The name a job's files get inside ``studio/<job id>/``, where it differs from the kind.
FILE_STEMS = {"SaveAnimatedWEBP": "animation", "SaveAnimatedPNG": "animation"}
# Words in a node's category, class name or input types that tell the kind, most telling first.
_KIND_WORDS = (
    ("video", "video"), ("webm", "video"), ("mp4", "video"), ("audio", "audio"), ("mp3", "audio"),
    ("3d", "3d"), ("glb", "3d"), ("mesh", "3d"), ("svg", "image"), ("image", "image"), ("text", "text"),
    ("string", "text"), ("latent", "latent"),
)


def _inputs(info: dict[str, Any]) -> dict[str, Any]:
    inputs = info.get("input")
    return inputs if isinstance(inputs, dict) else {}


def _input_types(info: dict[str, Any]) -> list[str]:
    found = []
    inputs = _inputs(info)
    for section in ("required", "optional"):
        specs = inputs.get(section)
        for name, spec in (specs.items() if isinstance(specs, dict) else ()):
            if name != "filename_prefix" and isinstance(spec, list | tuple) and spec and isinstance(spec[0], str):
                found.append(spec[0])
    return found


def _takes_prefix(info: dict[str, Any]) -> bool:
    inputs = _inputs(info)
    return any(isinstance(inputs.get(section), dict) and "filename_prefix" in inputs[section]
               for section in ("required", "optional"))


def output_kind(class_type: str, object_info: dict[str, Any] | None) -> str | None:
    """The kind of file ``class_type`` saves (image, video, audio, 3d, text, latent, file), or None
    when it saves nothing: not an output node, or one that only shows a preview."""
    info = (object_info or {}).get(class_type)
    if not isinstance(info, dict):
        return KNOWN_OUTPUTS.get(class_type)
    if not info.get("output_node") or not _takes_prefix(info):
        return None  # previews (PreviewImage, PreviewAudio…) write only to ComfyUI's temp folder
    if class_type in KNOWN_OUTPUTS:
        return KNOWN_OUTPUTS[class_type]
    hints = [str(info.get("category") or ""), class_type, *_input_types(info)]
    for hint in hints:  # the category first: "audio", "image/video", "3d"
        lowered = hint.lower()
        for word, kind in _KIND_WORDS:
            if word in lowered:
                return kind
    return "file"


def file_stem(class_type: str) -> str:
    """The start of the names a saving node's files get in a job's folder (``image``, ``audio``…)."""
    kind = KNOWN_OUTPUTS.get(class_type)
    if kind is None:
        lowered = class_type.lower()
        kind = next((found for word, found in _KIND_WORDS if word in lowered), "output")
    return FILE_STEMS.get(class_type, kind)


def saving_nodes(prompt: dict[str, Any], object_info: dict[str, Any] | None) -> list[tuple[str, dict[str, Any], str]]:
    """(node id, node, kind) for every node of ``prompt`` that saves a file."""
    return [(node_id, node, kind) for node_id, node in prompt.items()
            if (kind := output_kind(str(node.get("class_type")), object_info))]

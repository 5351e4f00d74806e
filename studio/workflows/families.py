"""Which kind of model a workflow samples with, and the samplers and schedulers that kind is used with.

ComfyUI offers some forty samplers and nine schedulers for every model, and most of them are wrong
for most models (a flow-matching model such as Flux or WAN wants euler and simple, an SDXL
checkpoint dpmpp_2m and karras). An imported form lists the ones its family is used with; the rest
stay in the list marked ``advanced`` (shown with the form's Advanced part open), so nothing that
ComfyUI has is ever out of reach. The family is read from the graph: the nodes only one family
uses, else the model files it loads; an unrecognised graph is left with the whole list.
"""

from __future__ import annotations

import re
from typing import Any

from studio.workflows.readiness import MODEL_SUFFIXES

# Flow-matching models: Flux, SD3, AuraFlow, WAN, Hunyuan, LTX-Video, Qwen-Image, HiDream, Lumina, Chroma, Cosmos.
FLOW = "flow"
# Classic diffusion checkpoints: SD 1.x, SD 2.x, SDXL and their fine-tunes (Pony, Illustrious…).
CLASSIC = "classic"

FLOW_WORDS = re.compile(r"flux|sd3|auraflow|wan|hunyuan|ltxv?|qwen|hidream|lumina|chroma|cosmos|kontext|omnigen",
                        re.IGNORECASE)
CLASSIC_WORDS = re.compile(r"sd_?1|sd15|sdxl|_xl|xl_|pony|illustrious|noob|dreamshaper|realistic|juggernaut",
                           re.IGNORECASE)
# Loaders of whole checkpoints: with nothing flow-like around them, a classic model.
CHECKPOINT_LOADERS = {"CheckpointLoaderSimple", "CheckpointLoader", "ImageOnlyCheckpointLoader"}

SUGGESTED = {
    FLOW: {"sampler": ["euler", "euler_ancestral", "heun", "dpmpp_2m", "res_multistep", "deis", "uni_pc",
                       "gradient_estimation", "er_sde"],
           "scheduler": ["simple", "normal", "beta", "sgm_uniform"]},
    CLASSIC: {"sampler": ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral",
                          "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "lcm", "ddim", "uni_pc"],
              "scheduler": ["normal", "karras", "exponential", "sgm_uniform", "simple", "beta"]},
}


def family(prompt: dict[str, Any]) -> str | None:
    """``flow``, ``classic``, or None when the graph does not say."""
    classes = [str(node.get("class_type", "")) for node in prompt.values()]
    files = [value for node in prompt.values() for value in (node.get("inputs") or {}).values()
             if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES)]
    if any(FLOW_WORDS.search(name) for name in classes + files):
        return FLOW
    if any(name in CHECKPOINT_LOADERS for name in classes) or any(CLASSIC_WORDS.search(name) for name in files):
        return CLASSIC
    return None


def mark_advanced_options(inputs: list[dict[str, Any]], roles: dict[tuple[str, str], str],
                          found: str | None) -> None:
    """Marks ``advanced`` every sampler / scheduler option the family is not used with; the value the
    workflow was saved with always stays among the suggested ones."""
    if found is None:
        return
    for entry in inputs:
        kind = roles.get((entry.get("node_id"), entry.get("field")))  # type: ignore[arg-type]
        options = entry.get("options")
        if kind not in SUGGESTED[found] or entry.get("type") != "select" or not options:
            continue
        suggested = {*SUGGESTED[found][kind], entry.get("default")}
        if not any(option["value"] in suggested for option in options):
            continue  # a list of other names (a custom sampler node's): left whole
        for option in options:
            if option["value"] not in suggested:
                option["advanced"] = True

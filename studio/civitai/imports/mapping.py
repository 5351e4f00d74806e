"""From "how the image was made" to "what Studio runs": A1111's sampler names in ComfyUI's words,
``<lora:name:weight>`` tags taken out of the prompt, the kind of work and the base model told from
the metadata, a library workflow chosen for it (with the reason), and the form values for it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from studio.civitai.imports.parse import MAX_RESOURCES, Generation, Resource
from studio.workflows.library import Workflow

# A1111's sampler names (without the scheduler word) → ComfyUI's sampler_name.
SAMPLERS = {
    "euler": "euler", "euler a": "euler_ancestral", "heun": "heun", "heunpp2": "heunpp2", "lms": "lms",
    "dpm2": "dpm_2", "dpm2 a": "dpm_2_ancestral", "dpm fast": "dpm_fast", "dpm adaptive": "dpm_adaptive",
    "dpm++ 2s a": "dpmpp_2s_ancestral", "dpm++ sde": "dpmpp_sde", "dpm++ 2m": "dpmpp_2m",
    "dpm++ 2m sde": "dpmpp_2m_sde", "dpm++ 2m sde gpu": "dpmpp_2m_sde_gpu", "dpm++ 3m sde": "dpmpp_3m_sde",
    "dpm++ 2m sde heun": "dpmpp_2m_sde", "ddim": "ddim", "ddpm": "ddpm", "plms": "ipndm", "unipc": "uni_pc",
    "uni_pc": "uni_pc", "lcm": "lcm", "restart": "res_multistep", "deis": "deis", "ipndm": "ipndm",
}
# A1111's scheduler words (a suffix of the sampler, or "Schedule type") → ComfyUI's scheduler.
SCHEDULERS = {"karras": "karras", "exponential": "exponential", "sgm uniform": "sgm_uniform", "simple": "simple",
              "normal": "normal", "automatic": "normal", "ddim": "ddim_uniform", "beta": "beta",
              "align your steps": "normal", "uniform": "normal", "kl optimal": "kl_optimal"}
COMFY_SAMPLERS = set(SAMPLERS.values()) | {"euler_cfg_pp", "euler_ancestral_cfg_pp", "dpmpp_2m_cfg_pp",
                                           "res_multistep", "gradient_estimation", "er_sde", "seeds_2", "seeds_3"}
COMFY_SCHEDULERS = set(SCHEDULERS.values())


def comfy_sampler(sampler: str | None, scheduler: str | None) -> tuple[str | None, str | None]:
    """("DPM++ 2M Karras", None) → ("dpmpp_2m", "karras"); ("Euler a", None) → ("euler_ancestral", "normal");
    ComfyUI's own names pass through. Unknown → (None, None): the workflow's default stays."""
    if not sampler:
        return None, _scheduler(scheduler)
    raw = sampler.strip()
    if raw in COMFY_SAMPLERS:
        return raw, _scheduler(scheduler) or ("normal" if scheduler is None else None)
    words = raw.lower()
    found_scheduler = _scheduler(scheduler)
    for word in sorted(SCHEDULERS, key=len, reverse=True):
        if words.endswith(" " + word) and words[:-len(word) - 1] in SAMPLERS:
            found_scheduler = found_scheduler or SCHEDULERS[word]
            words = words[:-len(word) - 1]
            break
    name = SAMPLERS.get(words)
    if name is None:
        return None, found_scheduler
    return name, found_scheduler or "normal"


def _scheduler(value: str | None) -> str | None:
    if not value:
        return None
    if value in COMFY_SCHEDULERS:
        return value
    return SCHEDULERS.get(value.strip().lower())


LORA_TAG = re.compile(r"<(lora|lyco|hypernet):([^:<>]{1,200})(?::([^:<>]{1,20}))?(?::[^<>]{0,40})?>", re.I)


def take_lora_tags(prompt: str) -> tuple[str, list[Resource]]:
    """The prompt without its ``<lora:name:weight>`` tags, and those tags as LoRAs (weight 1 when
    none is written or it is not a finite number)."""
    found: list[Resource] = []

    def cut(match: re.Match[str]) -> str:
        if match.group(1).lower() == "hypernet":
            return ""
        try:
            weight = float(match.group(3)) if match.group(3) else 1.0
        except ValueError:
            weight = 1.0
        if not math.isfinite(weight) or not -10 <= weight <= 10:
            weight = 1.0
        if len(found) < MAX_RESOURCES:
            found.append(Resource("lora", match.group(2).strip(), weight=weight))
        return ""

    cleaned = LORA_TAG.sub(cut, prompt)
    cleaned = re.sub(r"[ \t]*,(\s*,)+", ",", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip().strip(",").strip()
    return cleaned, found


def with_prompt_loras(gen: Generation) -> Generation:
    """Moves the prompt's LoRA tags into the resources (one LoRA each, the tag's weight winning)."""
    gen.prompt, tagged = take_lora_tags(gen.prompt)
    for tag in tagged:
        same = next((r for r in gen.resources if r.role == "lora" and r.name.casefold() == tag.name.casefold()), None)
        if same is None:
            gen.resources.append(tag)
        else:
            same.weight = tag.weight
    return gen


# -- what kind of work, for which model ---------------------------------------------------------

KIND_WORDS = {"txt2img": "txt2img", "text2image": "txt2img", "img2img": "img2img", "inpainting": "img2img",
              "inpaint": "img2img", "upscale": "upscale", "txt2vid": "txt2vid", "img2vid": "img2vid",
              "video": "txt2vid"}
CATEGORY = {"txt2img": "t2i", "img2img": "i2i", "upscale": "upscale", "txt2vid": "t2v", "img2vid": "i2v"}


def kind_of(gen: Generation) -> tuple[str, str]:
    """(kind, why): the source's own word first, then what the values say."""
    word = re.sub(r"[^a-z0-9]", "", (gen.process or "").lower())
    if word in KIND_WORDS:
        return KIND_WORDS[word], f"the image's metadata says {gen.process!r}"
    if gen.media == "video":
        return "txt2vid", "it is a video"
    if gen.comfy_prompt and any(isinstance(n, dict) and n.get("class_type") == "LoadImage"
                                for n in gen.comfy_prompt.values()):
        return "img2img", "its ComfyUI graph loads an input image"
    if gen.denoise is not None and gen.denoise < 1.0:
        return "img2img", f"it was made with a denoising strength of {gen.denoise:g}"
    return "txt2img", "a prompt and no input image"


def base_family(value: str | None) -> str | None:
    """CivitAI's base model words → the family name workflows use (``sd15``, ``sdxl``, ``flux``…)."""
    words = re.sub(r"[^a-z0-9.]", "", (value or "").lower())
    if not words:
        return None
    for prefix, family in (("sd1", "sd15"), ("sd2", "sd2"), ("sdxl", "sdxl"), ("pony", "sdxl"),
                           ("illustrious", "sdxl"), ("noobai", "sdxl"), ("sd3", "sd3"), ("flux", "flux"),
                           ("wan", "wan"), ("hunyuan", "hunyuan"), ("ltx", "ltx"), ("qwen", "qwen"),
                           ("cogvideo", "cogvideox")):
        if words.startswith(prefix):
            return family
    return words[:40]


# -- choosing a workflow -------------------------------------------------------------------------

@dataclass
class Choice:
    workflow: Workflow
    score: int
    reasons: list[str]


def _takes(workflow: Workflow, kind: str) -> bool:
    return any(spec.type == kind for spec in workflow.manifest.inputs)


def rank_workflows(workflows: list[Workflow], kind: str, family: str | None, lora_count: int) -> list[Choice]:
    """Every workflow that can take a prompt, best first, each with the reasons it scored."""
    category = CATEGORY.get(kind)
    ranked = []
    for workflow in workflows:
        manifest = workflow.manifest
        if _role_input(workflow, "prompt") is None:
            continue
        score, reasons = 0, []
        if category and manifest.category == category:
            score += 10
            reasons.append(f"it is a {kind} workflow")
        needs_image = _takes(workflow, "image")
        if (kind == "txt2img") == needs_image:
            score -= 6
        if family and base_family(manifest.base_model) == family:
            score += 5
            reasons.append(f"its base model is {manifest.base_model}")
        elif family and manifest.base_model:
            score -= 4
        if lora_count and (_takes(workflow, "lora_picker") or _takes(workflow, "lora_picker_dynamic")):
            score += 2
            reasons.append("it has LoRA slots")
        if _takes(workflow, "checkpoint_picker"):
            score += 1
        ranked.append(Choice(workflow, score, reasons or ["it takes a prompt"]))
    ranked.sort(key=lambda c: (-c.score, c.workflow.manifest.name.lower()))
    return ranked


ROLE_IDS = {
    "prompt": ("positive_prompt", "prompt", "positive", "text"),
    "negative": ("negative_prompt", "negative", "neg_prompt"),
    "steps": ("steps",), "cfg": ("cfg", "cfg_scale", "guidance"), "sampler": ("sampler_name", "sampler"),
    "scheduler": ("scheduler",), "clip_skip": ("clip_skip", "stop_at_clip_layer"),
    "denoise": ("denoise", "strength", "denoising_strength"), "width": ("width",), "height": ("height",),
}
TYPES = {"seed": "seed", "checkpoint": "checkpoint_picker", "vae": "vae_picker", "resolution": "resolution_picker"}
FIELDS = {"checkpoint": ("ckpt_name",), "vae": ("vae_name",)}


def _role_input(workflow: Workflow, role: str) -> Any:
    inputs = workflow.manifest.inputs
    if role in TYPES:
        return next((s for s in inputs if s.type == TYPES[role] or s.field in FIELDS.get(role, ())), None)
    ids = ROLE_IDS[role]
    found = next((s for s in inputs if s.id in ids), None)
    if found is None and role in ("prompt", "negative"):
        texts = [s for s in inputs if s.type == "text"]
        neg = [s for s in texts if "neg" in s.id.lower() or "neg" in s.name.lower()]
        found = (neg[0] if neg else None) if role == "negative" else next((s for s in texts if s not in neg), None)
    return found


def embedded(prompt: str, gen: Generation, files: dict[int, str]) -> str:
    """A1111 uses an embedding by writing its name; ComfyUI wants ``embedding:<file>``."""
    for number, resource in enumerate(gen.resources):
        if resource.role != "embedding" or not resource.name:
            continue
        stem = re.sub(r"\.(safetensors|pt|bin)$", "", (files.get(number) or resource.name).rsplit("/", 1)[-1])
        pattern = re.compile(rf"(?<![\w:]){re.escape(resource.name)}(?!\w)", re.I)
        prompt = pattern.sub(f"embedding:{stem}".replace("\\", "\\\\"), prompt, count=5)
    return prompt


def form_values(workflow: Workflow, gen: Generation, files: dict[int, str]) -> tuple[dict[str, Any], list[str]]:
    """The workflow's form values for this image, and each value it has no place for (said, not dropped
    silently). ``files``: resource index → the local (or to-be-downloaded) file name."""
    params: dict[str, Any] = {}
    left: list[str] = []
    sampler, scheduler = comfy_sampler(gen.sampler, gen.scheduler)

    def put(role: str, value: Any, label: str) -> None:
        if value is None or value == "":
            return
        spec = _role_input(workflow, role)
        if spec is None:
            left.append(f"{label} ({value})" if not isinstance(value, str) or len(value) < 60 else label)
            return
        if spec.type == "select" and spec.options and value not in [o.value for o in spec.options]:
            left.append(f"{label} {value!r} (this workflow offers only "
                        f"{', '.join(str(o.value) for o in spec.options[:8])})")
            return
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and ((spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max)):
            left.append(f"{label} {value} (outside this workflow's {spec.min:g}–{spec.max:g})"
                        if spec.min is not None and spec.max is not None else f"{label} {value}")
            return
        params[spec.id] = value

    put("prompt", embedded(gen.prompt, gen, files), "the prompt")
    put("negative", embedded(gen.negative, gen, files), "the negative prompt")
    put("seed", gen.seed, "seed")
    put("steps", gen.steps, "steps")
    put("cfg", gen.cfg, "CFG")
    put("sampler", sampler, "sampler")
    put("scheduler", scheduler, "scheduler")
    put("clip_skip", gen.clip_skip, "clip skip")
    if _takes(workflow, "image"):
        put("denoise", gen.denoise, "denoising strength")
    if gen.width and gen.height:
        size = _role_input(workflow, "resolution")
        if size is not None:
            params[size.id] = {"w": gen.width, "h": gen.height}
        elif _role_input(workflow, "width") is not None:
            put("width", gen.width, "width")
            put("height", gen.height, "height")
        else:
            left.append(f"size ({gen.width}×{gen.height})")
    inputs = workflow.manifest.inputs
    lora_specs = [s for s in inputs if s.type in ("lora_picker", "lora_picker_dynamic") or s.field == "lora_name"]
    loras = [(i, r) for i, r in enumerate(gen.resources) if r.role == "lora"]
    for index, (number, resource) in enumerate(loras):
        file_name = files.get(number) or resource.file or resource.name
        weight = resource.weight if resource.weight is not None else 1.0
        if index < len(lora_specs):
            spec = lora_specs[index]
            params[spec.id] = ([{"name": file_name, "strength": weight}] if spec.type == "lora_picker_dynamic"
                               else file_name)
            for strength in inputs:  # a LoraLoader's own strengths, on the same node
                if spec.node_id and strength.node_id == spec.node_id and strength.field in ("strength_model",
                                                                                            "strength_clip"):
                    params[strength.id] = weight
        else:
            left.append(f"LoRA {resource.name} ({resource.weight if resource.weight is not None else 1:g}): "
                        "this workflow has no LoRA slot for it")
    for role in ("checkpoint", "vae"):
        found = next(((i, r) for i, r in enumerate(gen.resources) if r.role == role), None)
        if found is None:
            continue
        number, resource = found
        spec = _role_input(workflow, role)
        if spec is None:
            left.append(f"{role} {resource.name}")
        else:
            params[spec.id] = files.get(number) or resource.name
    return params, left

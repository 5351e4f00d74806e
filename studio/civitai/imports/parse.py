"""What an image says about how it was made, read into one shape whatever it came from.

Three sources, all hostile until parsed:

- **A1111 / Forge ``parameters``** text (a PNG text chunk, or CivitAI's own ``meta`` written from it):
  the prompt, ``Negative prompt: …`` and one line of ``Key: value`` pairs, where a value may be a
  quoted string holding commas (``Lora hashes: "a: 1234, b: 5678"``).
- **ComfyUI** ``prompt`` (API graph) and ``workflow`` (UI graph) chunks, or CivitAI's ``meta.comfy``.
- **CivitAI's** ``meta`` dict and the tRPC generation data (``resources`` with model version ids).

Every number is checked to be finite and in range; every text is cut to a known length, so a
crafted file cannot make a prompt of megabytes or a seed of 1e308 reach a preset.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from studio.errors import BadRequest
from studio.workflows.importer import image_texts

MAX_PROMPT = 20_000  # characters of a prompt kept; more is cut (a real prompt is far shorter)
MAX_NAME = 255
MAX_GRAPH_BYTES = 8 * 1024 * 1024
MAX_RESOURCES = 64
SEED_MAX = 2**64 - 1
LIMITS = {"steps": (1, 10_000), "cfg": (0.0, 100.0), "width": (8, 16_384), "height": (8, 16_384),
          "clip_skip": (1, 24), "denoise": (0.0, 1.0)}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Resource:
    """One model the image used: a checkpoint, LoRA, embedding, VAE, …"""

    role: str  # checkpoint | lora | embedding | vae | upscaler | controlnet | diffusion_model
    name: str
    weight: float | None = None
    sha256: str | None = None  # a full SHA-256 when the source gave one
    short_hash: str | None = None  # A1111's AutoV2 (10 hex) or another prefix
    version_id: int | None = None
    file: str | None = None  # a file name, when the source names one (a ComfyUI loader's value)


@dataclass
class Generation:
    prompt: str = ""
    negative: str = ""
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None  # as the source wrote it (A1111's "DPM++ 2M Karras" or ComfyUI's "dpmpp_2m")
    scheduler: str | None = None
    width: int | None = None
    height: int | None = None
    clip_skip: int | None = None
    denoise: float | None = None
    base_model: str | None = None
    process: str | None = None  # txt2img | img2img | upscale | inpainting | … as the source said
    media: str = "image"  # image | video
    resources: list[Resource] = field(default_factory=list)
    comfy_prompt: dict[str, Any] | None = None
    comfy_workflow: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)  # where it came from (the preset's ``source``)


def text(value: Any, limit: int = MAX_PROMPT) -> str:
    """A string, control characters (but newlines and tabs) removed, cut to ``limit``."""
    if not isinstance(value, str):
        return ""
    return _CONTROL.sub("", value)[:limit].strip()


def number(value: Any, key: str, *, whole: bool) -> float | int | None:
    """A finite number within ``LIMITS[key]``; None for anything else (text, NaN, 1e308, a bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    low, high = LIMITS[key]
    if not low <= value <= high:
        return None
    return round(value) if whole else float(value)


def seed_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,20}\s*", value):
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= SEED_MAX:
        return value
    return None


def _hex(value: Any) -> str | None:
    value = text(value, 80).lower()
    return value if re.fullmatch(r"[0-9a-f]{8,64}", value) else None


# -- A1111 ---------------------------------------------------------------------------------------

_PAIR = re.compile(r'\s*([A-Za-z][\w /.+-]{0,60}):\s*("(?:\\.|[^"\\])*"|[^,]*)\s*(?:,|$)')


def a1111_pairs(line: str) -> dict[str, str]:
    """``Steps: 20, Sampler: Euler a, Lora hashes: "a: 1, b: 2"`` → a dict (quotes removed)."""
    found: dict[str, str] = {}
    for match in _PAIR.finditer(line[:20_000]):
        key, value = match.group(1).strip(), match.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        found[key] = str(value)
    return found


def parse_a1111(raw: str) -> Generation:
    """The ``parameters`` text A1111, Forge and many others write."""
    lines = text(raw, MAX_PROMPT * 3).split("\n")
    settings_at = next((i for i in range(len(lines) - 1, -1, -1) if re.match(r"\s*Steps:\s*\d", lines[i])), None)
    settings = a1111_pairs(lines[settings_at]) if settings_at is not None else {}
    body = lines[:settings_at] if settings_at is not None else lines
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    into: list[str] | None = None
    for line in body:
        if line.startswith("Negative prompt:"):
            into = negative_lines
            line = line[len("Negative prompt:"):]
        (into if into is not None else prompt_lines).append(line)
    meta: dict[str, Any] = {"prompt": "\n".join(prompt_lines), "negativePrompt": "\n".join(negative_lines)}
    meta.update(settings)
    return from_meta(meta)


def _hash_list(value: Any) -> dict[str, str]:
    """``"name: hash, name2: hash2"`` (A1111's ``Lora hashes`` / ``TI hashes``) → {name: hash}."""
    out: dict[str, str] = {}
    if isinstance(value, str):
        for part in value.split(",")[:MAX_RESOURCES]:
            name, _, digest = part.rpartition(":")
            if name.strip() and _hex(digest):
                out[text(name, MAX_NAME)] = _hex(digest) or ""
    return out


# -- CivitAI's meta --------------------------------------------------------------------------------

ROLES = {"checkpoint": "checkpoint", "model": "checkpoint", "lora": "lora", "locon": "lora", "dora": "lora",
         "lycoris": "lora", "embed": "embedding", "embedding": "embedding", "textualinversion": "embedding",
         "vae": "vae", "upscaler": "upscaler", "controlnet": "controlnet"}


def _role(value: Any) -> str | None:
    return ROLES.get(re.sub(r"[^a-z]", "", str(value or "").lower()))


def from_meta(meta: Any, resources: Any = None) -> Generation:
    """CivitAI's ``meta`` (A1111's keys as CivitAI stores them, or already-parsed A1111 pairs) and
    the generation data's ``resources``."""
    meta = meta if isinstance(meta, dict) else {}
    get = meta.get
    gen = Generation(prompt=text(get("prompt")), negative=text(get("negativePrompt") or get("Negative prompt")))
    gen.seed = seed_of(get("seed", get("Seed")))
    gen.steps = number(get("steps", get("Steps")), "steps", whole=True)  # type: ignore[assignment]
    gen.cfg = number(get("cfgScale", get("CFG scale")), "cfg", whole=False)  # type: ignore[assignment]
    gen.sampler = text(get("sampler") or get("Sampler"), 80) or None
    gen.scheduler = text(get("scheduler") or get("Schedule type"), 80) or None
    gen.clip_skip = number(get("clipSkip", get("Clip skip")), "clip_skip", whole=True)  # type: ignore[assignment]
    gen.denoise = number(get("denoise", get("Denoising strength")), "denoise", whole=False)  # type: ignore[assignment]
    size = text(get("Size"), 40)
    if match := re.fullmatch(r"(\d{1,6})\s*[x×]\s*(\d{1,6})", size):
        gen.width = number(match.group(1), "width", whole=True)  # type: ignore[assignment]
        gen.height = number(match.group(2), "height", whole=True)  # type: ignore[assignment]
    gen.width = number(get("width"), "width", whole=True) or gen.width  # type: ignore[assignment]
    gen.height = number(get("height"), "height", whole=True) or gen.height  # type: ignore[assignment]
    gen.base_model = text(get("baseModel"), 80) or None
    gen.process = text(get("process") or get("workflow"), 40) or None
    if get("Hires upscale") or get("Hires upscaler"):
        gen.process = gen.process or "txt2img"
    hashes = get("hashes") if isinstance(get("hashes"), dict) else {}
    model_name = text(get("Model"), MAX_NAME)
    model_hash = _hex(get("Model hash")) or _hex(hashes.get("model"))
    if model_name or model_hash:
        gen.resources.append(Resource("checkpoint", model_name or model_hash or "", short_hash=model_hash))
    for name, digest in _hash_list(get("Lora hashes")).items():
        gen.resources.append(Resource("lora", name, short_hash=digest))
    for name, digest in _hash_list(get("TI hashes")).items():
        gen.resources.append(Resource("embedding", name, short_hash=digest))
    for key, digest in list(hashes.items())[:MAX_RESOURCES]:
        role, _, name = str(key).partition(":")
        if _role(role) in ("lora", "embedding") and name and _hex(digest):
            _merge(gen, Resource(_role(role) or "lora", text(name, MAX_NAME), short_hash=_hex(digest)))
    if vae := text(get("VAE"), MAX_NAME):
        gen.resources.append(Resource("vae", vae, short_hash=_hex(get("VAE hash"))))
    for item in _items(get("resources")) + _items(get("civitaiResources")) + _items(resources):
        _merge(gen, _resource(item))
    comfy = get("comfy")
    if isinstance(comfy, str) and len(comfy) <= MAX_GRAPH_BYTES:
        try:
            comfy = json.loads(comfy)
        except ValueError:
            comfy = None
    if isinstance(comfy, dict):
        graph, ui = comfy.get("prompt"), comfy.get("workflow")
        gen.comfy_prompt = graph if isinstance(graph, dict) and graph else None
        gen.comfy_workflow = ui if isinstance(ui, dict) and ui else None
    return gen


def _items(value: Any) -> list[dict[str, Any]]:
    return [item for item in value[:MAX_RESOURCES] if isinstance(item, dict)] if isinstance(value, list) else []


def _resource(item: dict[str, Any]) -> Resource | None:
    role = _role(item.get("type") or item.get("modelType"))
    if role is None:
        return None
    version_id = item.get("modelVersionId") or item.get("versionId")
    version_id = version_id if isinstance(version_id, int) and not isinstance(version_id, bool) \
        and 0 < version_id <= 2**53 else None
    weight = item.get("weight", item.get("strength"))
    weight = float(weight) if isinstance(weight, int | float) and not isinstance(weight, bool) \
        and math.isfinite(weight) and -10 <= weight <= 10 else None
    name = text(item.get("name") or item.get("modelName"), MAX_NAME)
    digest = _hex(item.get("hash"))
    if not name and version_id is None and digest is None:
        return None
    return Resource(role, name or f"version {version_id}", weight=weight if role == "lora" else None,
                    version_id=version_id,
                    sha256=digest if digest and len(digest) == 64 else None,
                    short_hash=digest if digest and len(digest) < 64 else None)


def _same(a: Resource, b: Resource) -> bool:
    if a.role != b.role and not {a.role, b.role} <= {"checkpoint", "diffusion_model"}:
        return False
    if a.version_id and b.version_id:
        return a.version_id == b.version_id
    if a.role == b.role == "checkpoint":  # an image has one checkpoint, whichever way it is named
        return True
    if a.role == b.role and _stem(a.file or a.name) == _stem(b.file or b.name):
        return True
    hashes_a = {h for h in (a.sha256, a.short_hash) if h}
    hashes_b = {h for h in (b.sha256, b.short_hash) if h}
    if any(x.startswith(y) or y.startswith(x) for x in hashes_a for y in hashes_b):
        return True
    return bool(a.name) and a.name.casefold() == b.name.casefold()


def _stem(name: str) -> str:
    """``loras/Ink.safetensors`` and ``ink`` name the same file."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$", "", base, flags=re.I).casefold()


def _merge(gen: Generation, found: Resource | None) -> None:
    """A resource named twice (A1111's hashes and CivitAI's list) becomes one, knowing both."""
    if found is None:
        return
    same = next((r for r in gen.resources if _same(r, found)), None)
    if same is None:
        if gen.resources.__len__() < MAX_RESOURCES:
            gen.resources.append(found)
        return
    same.version_id = same.version_id or found.version_id
    same.sha256 = same.sha256 or found.sha256
    same.short_hash = same.short_hash or found.short_hash
    same.file = same.file or found.file
    same.weight = same.weight if same.weight is not None else found.weight
    if same.name.startswith("version ") or re.fullmatch(r"[0-9a-f]{8,64}", same.name):
        same.name = found.name


# -- ComfyUI graphs ------------------------------------------------------------------------------

LOADER_FIELDS = {"ckpt_name": "checkpoint", "lora_name": "lora", "vae_name": "vae", "unet_name": "diffusion_model",
                 "control_net_name": "controlnet", "model_name": "upscaler"}


def from_comfy(prompt: dict[str, Any] | None, ui: dict[str, Any] | None) -> Generation:
    """The models a ComfyUI graph loads, and the sampler settings of its first KSampler."""
    gen = Generation(comfy_prompt=prompt, comfy_workflow=ui)
    for node in (prompt or {}).values():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        inputs, kind = node["inputs"], str(node.get("class_type", ""))
        for key, role in LOADER_FIELDS.items():
            value = inputs.get(key)
            if isinstance(value, str) and value and (key != "model_name" or "Upscale" in kind):
                weight = inputs.get("strength_model")
                weight = float(weight) if isinstance(weight, int | float) and math.isfinite(weight) else None
                _merge(gen, Resource(role, text(value, MAX_NAME), weight=weight, file=text(value, MAX_NAME)))
        if kind.startswith("EmptyLatentImage") or kind in ("EmptySD3LatentImage", "EmptyHunyuanLatentVideo"):
            gen.width = gen.width or number(inputs.get("width"), "width", whole=True)  # type: ignore[assignment]
            gen.height = gen.height or number(inputs.get("height"), "height", whole=True)  # type: ignore[assignment]
        if kind.startswith("KSampler") and gen.steps is None:
            gen.seed = seed_of(inputs.get("seed", inputs.get("noise_seed")))
            gen.steps = number(inputs.get("steps"), "steps", whole=True)  # type: ignore[assignment]
            gen.cfg = number(inputs.get("cfg"), "cfg", whole=False)  # type: ignore[assignment]
            gen.sampler = text(inputs.get("sampler_name"), 80) or None
            gen.scheduler = text(inputs.get("scheduler"), 80) or None
            gen.denoise = number(inputs.get("denoise"), "denoise", whole=False)  # type: ignore[assignment]
    return gen


def merge_generations(first: Generation, second: Generation) -> Generation:
    """``first`` with what only ``second`` knows filled in (CivitAI's meta beside its graph)."""
    for key in ("prompt", "negative", "seed", "steps", "cfg", "sampler", "scheduler", "width", "height",
                "clip_skip", "denoise", "base_model", "process", "comfy_prompt", "comfy_workflow"):
        if getattr(first, key) in (None, ""):
            setattr(first, key, getattr(second, key))
    for resource in second.resources:
        _merge(first, resource)
    return first


# -- image files ---------------------------------------------------------------------------------

def read_file(data: bytes) -> Generation:
    """An uploaded image's metadata: ComfyUI's ``prompt``/``workflow`` chunks, A1111's ``parameters``
    (PNG text, or a JPEG/WebP's EXIF UserComment), or a ComfyUI workflow JSON."""
    if data.lstrip()[:1] == b"{":
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            raise BadRequest("This JSON cannot be read.", fields={"file": "not JSON"}) from None
        if isinstance(parsed, dict) and isinstance(parsed.get("nodes"), list):
            raise BadRequest("This is a UI-format workflow without its API graph: import it on the Workflows page.",
                             fields={"file": "no metadata"})
        nodes = {k: v for k, v in parsed.items() if isinstance(v, dict) and "class_type" in v} \
            if isinstance(parsed, dict) else {}
        if nodes:
            gen = from_comfy(nodes, None)
            gen.source = {"type": "file"}
            return gen
        raise BadRequest("This JSON is not a ComfyUI workflow.", fields={"file": "no metadata"})
    texts = _texts(data)
    gen = Generation()
    if "parameters" in texts:
        gen = parse_a1111(texts["parameters"])
    prompt = _graph(texts.get("prompt"))
    ui = _graph(texts.get("workflow"))
    if prompt or ui:
        comfy = from_comfy(prompt, ui)
        gen = merge_generations(comfy, gen) if "parameters" not in texts else merge_generations(gen, comfy)
    if not ("parameters" in texts or prompt or ui):
        raise BadRequest("This image carries no generation data (it was saved without metadata, or the site "
                         "stripped it): paste its CivitAI address instead.", fields={"file": "no metadata"})
    gen.source = {"type": "file"}
    return gen


def _graph(raw: str | None) -> dict[str, Any] | None:
    if not raw or len(raw) > MAX_GRAPH_BYTES:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and value else None


def _texts(data: bytes) -> dict[str, str]:
    return image_texts(data, ("parameters", "prompt", "workflow"), unsupported="Drop a PNG, JPEG or WebP image.")

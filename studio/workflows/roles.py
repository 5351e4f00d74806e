"""What each literal of a workflow is *for*: the prompt, the seed, the size, a model to pick.

Roles come from the graph's shape and ComfyUI's declarations, not from a list of class names:

- prompts are traced back from every consumer of CONDITIONING that passes none on (samplers,
  guiders) through the nodes that do pass it on (FluxGuidance, ConditioningCombine, ReferenceLatent,
  the WAN/LTX image-to-video nodes, ControlNet...) to the encoder, whose STRING widgets are the prompt;
  when that widget is itself fed by a string node (a Primitive, an LLM that writes the prompt, a
  concatenation) the trace goes on to the literal a person types. Positive or negative is which
  input the trace started from (or a field named ``negative…``); a zeroed conditioning carries none.
- sampler settings are the seed / steps / cfg / sampler / scheduler / denoise inputs of any node
  whose outputs feed sampling (LATENT, SIGMAS, SAMPLER, NOISE, GUIDER): KSampler, SamplerCustom,
  RandomNoise, BasicScheduler, KSamplerSelect, CFGGuider, Flux and WAN schedulers alike;
- the size is the width/height (INT) of any node that makes a latent or an image, or a resolution,
  size or aspect-ratio widget of one;
- a model picker is any dropdown whose value is a model file; its folder comes from the loader
  (known loaders, else the input's name).

A role's input that is linked to a Primitive node is bound to that Primitive's ``value`` instead, so
the form sets what every consumer of the Primitive reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from studio.workflows.graph import SWITCHES, Graph
from studio.workflows.readiness import FIELD_FOLDERS, MODEL_INPUTS, MODEL_SUFFIXES

# The classic sampler nodes: also what a graph without /object_info is searched for.
SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
# Outputs that only sampling consumes: a node making one of these is sampler-like.
SAMPLING_TYPES = {"LATENT", "SIGMAS", "SAMPLER", "NOISE", "GUIDER"}
# Sampler inputs by name: (role, the declared type it must have when declared).
SAMPLER_FIELDS = {"seed": ("seed", "INT"), "noise_seed": ("seed", "INT"), "steps": ("steps", "INT"),
                  "cfg": ("cfg", "FLOAT"), "sampler_name": ("sampler", "COMBO"), "scheduler": ("scheduler", "COMBO"),
                  "denoise": ("denoise", "FLOAT")}
# Outputs a node with width/height makes when its size is the picture's size.
PICTURE_TYPES = {"LATENT", "IMAGE", "MASK", "VIDEO"}
SIZE_WIDGETS = {"resolution": "Resolution", "size": "Size", "aspect_ratio": "Aspect ratio", "megapixels": "Megapixels"}
# Input names that hold a prompt on nodes ComfyUI does not describe (or that are not encoders).
PROMPT_NAME = re.compile(r"^(text|prompt|positive|negative|text_[gl]|t5xxl|clip_l|tags|lyrics|"
                         r"(positive|negative)_prompt|prompt_(text|positive|negative)|text_prompt)$")
NOT_PROMPT = re.compile(r"system|instruction|negative_system")

# Loaders ComfyUI has that the readiness table does not name, and folders by input-name fragment.
MORE_MODEL_INPUTS = {
    ("TripleCLIPLoader", "clip_name1"): "text_encoders", ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders", ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders", ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders", ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints", ("DiffControlNetLoader", "model_name"): "controlnet",
    ("StyleModelLoader", "style_model_name"): "style_models", ("GLIGENLoader", "gligen_name"): "gligen",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker", ("ModelPatchLoader", "name"): "model_patches",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
    ("LTXAVTextEncoderLoader", "text_encoder"): "text_encoders", ("LTXAVTextEncoderLoader", "ckpt_name"): "checkpoints",
    ("LTXVAudioVAELoader", "ckpt_name"): "checkpoints",
}
NAME_FOLDERS = (("clip_vision", "clip_vision"), ("ckpt", "checkpoints"), ("unet", "diffusion_models"),
                ("vae", "vae"), ("lora", "loras"), ("control_net", "controlnet"), ("controlnet", "controlnet"),
                ("upscale", "upscale_models"), ("style_model", "style_models"), ("text_encoder", "text_encoders"),
                ("clip", "text_encoders"), ("gligen", "gligen"), ("hypernetwork", "hypernetworks"),
                ("photomaker", "photomaker"), ("audio_encoder", "audio_encoders"))
FOLDER_NAMES = {"checkpoints": "Checkpoint", "diffusion_models": "Diffusion model", "text_encoders": "Text encoder",
                "vae": "VAE", "loras": "LoRA", "controlnet": "ControlNet", "upscale_models": "Upscale model",
                "clip_vision": "CLIP Vision model", "style_models": "Style model", "gligen": "GLIGEN model",
                "hypernetworks": "Hypernetwork", "photomaker": "PhotoMaker model", "audio_encoders": "Audio encoder",
                "model_patches": "Model patch", "latent_upscale_models": "Latent upscale model",
                "embeddings": "Embedding"}
ROLE_NAMES = {"positive_prompt": "Prompt", "negative_prompt": "Negative prompt", "seed": "Seed", "steps": "Steps",
              "cfg": "CFG", "sampler": "Sampler", "scheduler": "Scheduler", "denoise": "Denoise", "width": "Width",
              "height": "Height", "batch_size": "Images per run", "image": "Image"}
# Shown by default unless ComfyUI marks the input advanced; these stay under Advanced.
ADVANCED_ROLES = {"scheduler", "denoise", "batch_size"}
# Where each role goes in the form, first to last.
ORDER = ("positive_prompt", "negative_prompt", "image", "model", "width", "height", "size", "seed", "steps", "cfg",
         "sampler", "scheduler", "denoise", "batch_size")
# A trace that goes further than this through string or conditioning nodes has lost its way.
MAX_TRACE = 10_000


@dataclass
class Role:
    kind: str  # one of ORDER
    name: str
    advanced: bool = False
    folder: str | None = None  # model pickers: the model folder it lists
    rank: int = 0  # where among the roles of its kind (discovery order)


def model_folder(graph: Graph, node_id: str, field: str) -> str | None:
    """The model folder a loader input lists: known loaders, else a fragment of the input's name."""
    key = (graph.class_of(node_id), field)
    known = MODEL_INPUTS.get(key) or MORE_MODEL_INPUTS.get(key) or FIELD_FOLDERS.get(field)
    if known:
        return known
    return next((folder for fragment, folder in NAME_FOLDERS if fragment in field), None)


def _is_model_input(graph: Graph, node_id: str, field: str) -> bool:
    value = graph.inputs(node_id).get(field)
    if graph.kind(node_id, field) != "COMBO" or not isinstance(value, str):
        return False
    if value.lower().endswith(MODEL_SUFFIXES):
        return True
    key = (graph.class_of(node_id), field)
    return key in MODEL_INPUTS or key in MORE_MODEL_INPUTS


class RoleFinder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.roles: dict[tuple[str, str], Role] = {}
        self.counts: dict[str, int] = {}

    def claim(self, node_id: str, field: str, kind: str, name: str, *, advanced: bool = False,
              folder: str | None = None) -> None:
        target = (node_id, field)
        source = self.graph.primitive_source(node_id, field)
        if source is not None:
            target = source
        elif not self.graph.literal(node_id, field):
            return
        if target in self.roles:
            return
        advanced = advanced or bool(self.graph.options(*target).get("advanced")) or kind in ADVANCED_ROLES
        self.roles[target] = Role(kind, name, advanced, folder, self.counts.get(kind, 0))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    # -- prompts ---------------------------------------------------------------------------------
    def _sinks(self) -> list[tuple[str, str, str]]:
        """(node, conditioning input, polarity) for every consumer of CONDITIONING that makes none."""
        graph, found = self.graph, []
        for node_id in graph.prompt:
            if graph.info(node_id) is not None:
                if "CONDITIONING" in graph.outputs(node_id):
                    continue
                names = graph.declared(node_id, {"CONDITIONING"})
            elif graph.class_of(node_id) in SAMPLERS or re.search(r"Sampler|Guider", graph.class_of(node_id)):
                names = [name for name in graph.inputs(node_id) if re.match(r"positive|negative|cond", name)]
            else:
                continue
            for name in names:
                found.append((node_id, name, "negative" if "negative" in name else "positive"))
        return sorted(found, key=lambda item: item[2] != "positive")  # positive first: it wins a shared encoder

    def _prompt_fields(self, node_id: str) -> list[str]:
        graph = self.graph
        if graph.info(node_id) is None:
            return [f for f, v in graph.inputs(node_id).items() if PROMPT_NAME.match(f) and isinstance(v, str | list)]
        strings = graph.declared(node_id, {"STRING"})
        multiline = [f for f in strings if graph.multiline(node_id, f)]
        return [f for f in (multiline or [f for f in strings if PROMPT_NAME.match(f)]) if not NOT_PROMPT.search(f)]

    def prompts(self) -> None:
        graph = self.graph
        found: list[tuple[str, str, str]] = []  # (node, field, polarity), in trace order
        pending: list[tuple[str, int, str]] = []
        for node_id, name, polarity in self._sinks():
            link = graph.link(node_id, name)
            if link is not None:
                pending.append((link[0], link[1], polarity))
        pending.reverse()
        seen: set[tuple[str, int, str]] = set()
        while pending and len(seen) < MAX_TRACE:
            node_id, slot, polarity = pending.pop()
            if (node_id, slot, polarity) in seen:
                continue
            seen.add((node_id, slot, polarity))
            if "ZeroOut" in graph.class_of(node_id):
                continue  # a zeroed conditioning: whatever text fed it is not this prompt
            out_name = graph.output_name(node_id, slot)
            known = graph.info(node_id) is not None
            clip_fed = not known or "CLIP" in {graph.kind(node_id, f) for f in graph.inputs(node_id)}
            if clip_fed:
                for field in self._prompt_fields(node_id):
                    negative = "negative" in field
                    if out_name == "negative" and not negative or out_name == "positive" and negative:
                        continue
                    found.extend((n, f, "negative" if negative else polarity)
                                 for n, f in self._string_sources(node_id, field))
            if known:
                upstream = graph.declared(node_id, {"CONDITIONING"})
                if out_name in upstream:
                    upstream = [out_name]
            else:
                upstream = [f for f in graph.inputs(node_id) if not PROMPT_NAME.match(f)]
            for field in reversed(upstream):
                link = graph.link(node_id, field)
                if link is not None:
                    pending.append((link[0], link[1], "negative" if "negative" in field else polarity))
        for node_id, field, polarity in found:
            self._claim_prompt(node_id, field, f"{polarity}_prompt")
        traced = bool(self.counts.get("positive_prompt") or self.counts.get("negative_prompt"))
        for node_id in graph.prompt:  # prompts no sampler reads: API nodes, a titled text, an LLM's request
            outputs = set(graph.outputs(node_id))
            if outputs and outputs <= {"STRING", "CONDITIONING"} and not graph.custom_title(node_id):
                continue  # string plumbing, or an encoder nothing samples from
            for field in self._prompt_fields(node_id):
                if not PROMPT_NAME.match(field) or not isinstance(graph.inputs(node_id).get(field), str):
                    continue
                kind = "negative_prompt" if "negative" in field else "positive_prompt"
                hide = traced and not graph.custom_title(node_id)
                self._claim_prompt(node_id, field, kind, advanced=hide)

    def _string_sources(self, node_id: str, field: str) -> list[tuple[str, str]]:
        """The literals a person types that end up in this STRING input (itself, when it is one)."""
        graph = self.graph
        if graph.literal(node_id, field):
            return [(node_id, field)] if isinstance(graph.inputs(node_id).get(field), str) else []
        found: list[tuple[str, str]] = []
        pending = [graph.link(node_id, field)]
        seen: set[str] = set()
        while pending and len(seen) < MAX_TRACE:
            link = pending.pop()
            if link is None or link[0] in seen:
                continue
            source = link[0]
            seen.add(source)
            chosen = graph.switch_value(source) if graph.class_of(source) in SWITCHES else None
            if isinstance(chosen, bool):  # an If/Else switch: the text comes from the branch it takes
                pending.append(graph.link(source, "on_true" if chosen else "on_false"))
                continue
            if "STRING" not in graph.outputs(source):
                continue
            strings = graph.declared(source, {"STRING"})
            linked = [graph.link(source, f) for f in strings if graph.link(source, f) is not None]
            if linked:
                pending.extend(reversed(linked))
                continue
            found.extend((source, f) for f in strings if graph.literal(source, f)
                         and (graph.multiline(source, f) or graph.class_of(source).startswith("Primitive"))
                         and not NOT_PROMPT.search(f))
        return found

    def _claim_prompt(self, node_id: str, field: str, kind: str, *, advanced: bool = False) -> None:
        graph = self.graph
        title = graph.custom_title(node_id)
        name = title or ROLE_NAMES[kind]
        fields = [f for f in self._prompt_fields(node_id) if ("negative" in f) == ("negative" in field)]
        if len(fields) > 1 or (not title and not PROMPT_NAME.match(field) and graph.info(node_id) is not None
                               and graph.class_of(node_id).startswith("String")):
            name = f"{name}: {field.replace('_', ' ')}"
        self.claim(node_id, field, kind, name, advanced=advanced)

    # -- sampler settings, size, images, models ----------------------------------------------------
    def _sampler_like(self, node_id: str) -> bool:
        graph = self.graph
        class_type = graph.class_of(node_id)
        if class_type in SAMPLERS:
            return True
        if graph.info(node_id) is None:
            return bool(re.search(r"Sampler|Scheduler|Noise|Guider", class_type))
        return bool(SAMPLING_TYPES & set(graph.outputs(node_id)))

    def settings(self) -> None:
        graph = self.graph
        for node_id in graph.prompt:
            sampler_like = self._sampler_like(node_id)
            for field in graph.inputs(node_id):
                declared = graph.kind(node_id, field)
                role = SAMPLER_FIELDS.get(field)
                seedy = declared == "INT" and graph.options(node_id, field).get("control_after_generate") is True
                if role and sampler_like and declared in (None, role[1]):
                    self.claim(node_id, field, role[0], ROLE_NAMES[role[0]])
                elif seedy or (role and role[0] == "seed" and declared in (None, "INT")):
                    self.claim(node_id, field, "seed", ROLE_NAMES["seed"], advanced=sampler_like is False)

    def sizes(self) -> None:
        graph = self.graph
        ranked: list[tuple[int, str]] = []
        for node_id in graph.prompt:
            outputs = set(graph.outputs(node_id))
            if graph.info(node_id) is None:
                outputs = {"LATENT"} if "Latent" in graph.class_of(node_id) else set()
            if not outputs & PICTURE_TYPES or outputs & {"SIGMAS", "MODEL"}:
                continue
            # a latent's size, a new picture's size, and last a picture resized (an operation, not the output)
            required = ((graph.info(node_id) or {}).get("input") or {}).get("required") or {}
            transform = any(isinstance(spec, list | tuple) and spec and isinstance(spec[0], str)
                            and spec[0] in PICTURE_TYPES for spec in required.values())
            ranked.append((0 if "LATENT" in outputs else 2 if transform else 1, node_id))
        best = min((rank for rank, _ in ranked if rank < 2), default=0)
        for rank, node_id in sorted(ranked, key=lambda item: item[0]):
            fields = graph.inputs(node_id)
            if "width" in fields and "height" in fields and all(
                    graph.kind(node_id, f) in (None, "INT") for f in ("width", "height")):
                for field in ("width", "height"):
                    self.claim(node_id, field, field, ROLE_NAMES[field], advanced=rank > best)
            for field, name in SIZE_WIDGETS.items():
                if field in fields and graph.kind(node_id, field) in ("COMBO", "INT", "FLOAT"):
                    self.claim(node_id, field, "size", name, advanced=rank > best)
            if "batch_size" in fields and graph.kind(node_id, "batch_size") in (None, "INT"):
                self.claim(node_id, "batch_size", "batch_size", ROLE_NAMES["batch_size"])

    def images_and_models(self) -> None:
        graph = self.graph
        for node_id in graph.prompt:
            for field in graph.inputs(node_id):
                options = graph.options(node_id, field)
                if graph.kind(node_id, field) == "COMBO" and options.get("image_upload") or (
                        graph.class_of(node_id) in ("LoadImage", "LoadImageMask") and field == "image"):
                    title = graph.custom_title(node_id)
                    self.claim(node_id, field, "image", title or "Image")
                elif _is_model_input(graph, node_id, field):
                    folder = model_folder(graph, node_id, field)
                    title = graph.custom_title(node_id)
                    name = title or FOLDER_NAMES.get(folder or "", graph.label(node_id))
                    number = re.search(r"(\d+)$", field)
                    if number and len([f for f in graph.inputs(node_id) if _is_model_input(graph, node_id, f)]) > 1:
                        name = f"{name} {number.group(1)}"
                    self.claim(node_id, field, "model", name, folder=folder)


def find_roles(prompt: dict[str, Any], object_info: dict[str, Any]) -> dict[tuple[str, str], Role]:
    """Every literal that plays a role, keyed by ``(node id, input)``; the rest are advanced."""
    finder = RoleFinder(Graph(prompt, object_info))
    finder.prompts()
    finder.images_and_models()
    finder.sizes()
    finder.settings()
    return finder.roles

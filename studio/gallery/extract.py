"""What an indexed file was made with: from its job (Studio's own outputs) or from its PNG text chunks.

A job's facts come from ``studio.jobs.summary`` (traced from the API prompt the job really sent), so
the gallery and History never disagree. A file found in the output folder carries what ComfyUI wrote
into it: a ``prompt`` chunk (the API graph, traced the same way) or A1111's ``parameters`` text. Both
come from anyone who can write there: every value is checked for its shape and cut to size, and a file
Pillow refuses (a bomb, a truncated PNG) simply has no metadata.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from studio import safepath
from studio.jobs.models import Job, JobOutput
from studio.jobs.outputs import IMAGE_ERRORS
from studio.jobs.summary import summarize
from studio.jobs.thumbnails import MAX_PIXELS

MAX_TEXT = 4000
MAX_CHUNK = 2_000_000  # a graph of a few thousand nodes; anything larger is not read


@dataclass
class Facts:
    prompt: str = ""
    negative: str = ""
    model: str | None = None
    loras: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def lora_names(self) -> list[str]:
        return sorted({str(lora["name"])[:255] for lora in self.loras if lora.get("name")})


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _from_summary(found: dict[str, Any]) -> Facts:
    loras = [{"name": str(x.get("name"))[:255], "strength": x.get("strength")}
             for x in found.get("loras") or [] if isinstance(x, dict) and x.get("name")]
    seed = found.get("seed")
    return Facts(prompt=_text(found.get("prompt")), negative=_text(found.get("negative")),
                 model=(found.get("model") or None) and str(found["model"])[:255], loras=loras,
                 seed=seed if isinstance(seed, int) and not isinstance(seed, bool) and abs(seed) < 2**63 else None)


def from_job(job: Job, output: JobOutput) -> Facts:
    facts = _from_summary(summarize(job, [output]))
    facts.width, facts.height = output.width, output.height
    facts.params = job.params if isinstance(job.params, dict) else {}
    return facts


def from_graph(graph: dict[str, Any]) -> Facts:
    """A ComfyUI API graph found in a file, traced like a job's prompt (a throwaway job carries it)."""
    return _from_summary(summarize(Job(id=f"file:{id(graph)}", workflow_id="", workflow_name="", prompt=graph)))


_A1111_KEYS = re.compile(r"(?:^|,\s*)(Steps|Sampler|CFG scale|Seed|Size|Model|Model hash|Clip skip|Schedule type): "
                         r"([^,]*)")
_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([-\d.]+))?[^>]*>")


def from_a1111(text: str) -> Facts:
    """A1111's ``parameters``: the prompt, "Negative prompt: …", then one "Key: value, …" line."""
    lines = text[:MAX_CHUNK].split("\n")
    settings_at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("Steps: ")), len(lines))
    body, settings = lines[:settings_at], "\n".join(lines[settings_at:])
    negative_at = next((i for i, line in enumerate(body) if line.startswith("Negative prompt:")), len(body))
    prompt = "\n".join(body[:negative_at]).strip()
    negative = "\n".join(body[negative_at:]).removeprefix("Negative prompt:").strip()
    values = {key: value.strip() for key, value in _A1111_KEYS.findall(settings)}
    loras = [{"name": name[:255], "strength": _number(weight)} for name, weight in _LORA_TAG.findall(prompt)][:20]
    seed = values.get("Seed", "")
    width, _, height = values.get("Size", "").partition("x")
    return Facts(prompt=_text(prompt), negative=_text(negative), model=values.get("Model", "")[:255] or None,
                 loras=loras, seed=int(seed) if seed.isdigit() and len(seed) < 19 else None,
                 width=int(width) if width.isdigit() and len(width) < 6 else None,
                 height=int(height) if height.isdigit() and len(height) < 6 else None,
                 params={key: value[:200] for key, value in values.items()})


def _number(raw: str) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def from_file(root: Path, path: Path) -> Facts:
    """The facts an image file carries in its text chunks, and its size; empty for anything else."""
    try:
        with safepath.open_inside(root, path, "rb") as handle, Image.open(handle) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return Facts()
            chunks = {k: v for k, v in getattr(image, "text", {}).items() if isinstance(v, str) and len(v) < MAX_CHUNK}
    except IMAGE_ERRORS:
        return Facts()
    facts = Facts()
    graph = _json(chunks.get("prompt"))
    if isinstance(graph, dict):
        try:
            facts = from_graph(graph)
        except (TypeError, ValueError, KeyError, AttributeError):
            facts = Facts()
    elif chunks.get("parameters"):
        facts = from_a1111(chunks["parameters"])
    facts.width, facts.height = facts.width or width, facts.height or height
    return facts


def _json(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None

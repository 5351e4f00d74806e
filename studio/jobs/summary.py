"""What a result was made with, in the words a person looks for: prompt, seed, size, model, LoRAs, time.

Read from the API prompt the job really sent, not from the workflow's manifest: the job keeps that
prompt with every value substituted (random seeds drawn, placeholders filled, dynamic LoRA blocks
assembled), it outlives edits and deletions of the workflow, and an imported workflow's inputs are
only named after the roles this same tracing found (``studio.workflows.roles``: prompts traced from
the samplers' positive and negative inputs, seeds, sizes). Models are the loaders' file names. Anything
not found is null, never a guess. The job's own parameters fill in a seed the graph does not show.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from studio.jobs import thumbnails
from studio.jobs.models import Job, JobOutput
from studio.workflows.graph import Graph
from studio.workflows.readiness import MODEL_SUFFIXES
from studio.workflows.roles import RoleFinder, model_folder

MODEL_FOLDERS = ("checkpoints", "diffusion_models", "unet")
# Tracing a 300-node graph takes ~10 ms and History lists 50 jobs at a time; a job's prompt never
# changes once written (its id is a UUID), so what it says is kept for the newest jobs asked about.
CACHED_JOBS = 4096
MAX_TEXT = 2000
MAX_LORAS = 20


def summarize(job: Job, outputs: list[JobOutput] | None = None) -> dict[str, Any]:
    prompt = job.prompt if isinstance(job.prompt, dict) else {}
    found: dict[str, Any] = {"prompt": None, "negative": None, "seed": None, "width": None, "height": None,
                             "model": None, "loras": [], "seconds": _seconds(job)}
    found.update(_GRAPH_FACTS.get(job.id, prompt))
    if found["seed"] is None:
        found["seed"] = _param_seed(job.params)
    first = next((o for o in outputs or [] if o.width and o.height), None)
    if first is not None:  # what the person sees (after any upscale) is the size that matters
        found["width"], found["height"] = first.width, first.height
    return found


def annotate(view: dict[str, Any], job: Job, outputs: list[JobOutput] | None,
             shown: Callable[[Any], Any]) -> None:
    """Adds ``summary`` to a job's API view (through ``shown``, like every stored value) and ``thumbs``
    and ``starred`` to each of its outputs."""
    view["summary"] = shown(summarize(job, outputs))
    for item, output in zip(view.get("outputs") or [], outputs or [], strict=False):
        item["thumbs"] = thumbnails.thumbs_of(output)
        item["starred"] = bool(output.starred)


def _seconds(job: Job) -> float | None:
    start = job.started_at or job.submitted_at
    if start is None or job.finished_at is None:
        return None
    return max(0.0, round((job.finished_at - start).total_seconds(), 1))


def _param_seed(params: Any) -> int | None:
    if not isinstance(params, dict):
        return None
    for key, value in params.items():
        if "seed" in str(key).lower() and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


class _GraphFacts:
    """What each job's prompt says, by job id, for the newest ``CACHED_JOBS`` jobs (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._found: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str, prompt: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if job_id in self._found:
                self._found.move_to_end(job_id)
                return self._found[job_id]
        found: dict[str, Any] = {}
        # A hand-edited or planted prompt: what cannot be read stays null.
        with suppress(TypeError, ValueError, KeyError, AttributeError):
            found = _from_graph(prompt)
        with self._lock:
            self._found[job_id] = found
            while len(self._found) > self.size:
                self._found.popitem(last=False)
        return found


def _from_graph(prompt: dict[str, Any]) -> dict[str, Any]:
    graph = Graph(prompt, {})
    finder = RoleFinder(graph)
    finder.prompts()
    finder.sizes()
    finder.settings()
    first: dict[str, Any] = {}
    for (node_id, field), role in finder.roles.items():
        if role.rank == 0 and role.kind not in first:
            first[role.kind] = graph.inputs(node_id).get(field)
    found: dict[str, Any] = {
        "prompt": _text(first.get("positive_prompt")),
        "negative": _text(first.get("negative_prompt")),
        "seed": _whole(first.get("seed")),
        "width": _whole(first.get("width")),
        "height": _whole(first.get("height")),
    }
    model, loras = _models(graph)
    found["model"] = model
    found["loras"] = loras
    return found


def _models(graph: Graph) -> tuple[str | None, list[dict[str, Any]]]:
    model: str | None = None
    loras: list[dict[str, Any]] = []
    for node_id in graph.prompt:
        inputs = graph.inputs(node_id)
        for field, value in inputs.items():
            if not isinstance(value, str) or not value.lower().endswith(MODEL_SUFFIXES):
                continue
            folder = model_folder(graph, node_id, field)
            if folder in MODEL_FOLDERS and model is None:
                model = _text(value)
            elif folder == "loras" and len(loras) < MAX_LORAS:
                strength = inputs.get("strength_model", inputs.get("strength"))
                loras.append({"name": _text(value),
                              "strength": strength if isinstance(strength, int | float)
                              and not isinstance(strength, bool) else None})
    return model, loras


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) and value.strip() else None


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_GRAPH_FACTS = _GraphFacts(CACHED_JOBS)

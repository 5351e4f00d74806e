"""Importing any workflow: an API-format JSON, a UI-format JSON, or a PNG/WebP made by ComfyUI.

The result is an ordinary workflow folder (``manifest.yaml`` + API-format ``workflow.json``) in
``STUDIO_DIR/workflows/<id>/``. Re-importing under the same id keeps what a person set in the
mapping editor (names, order, hidden, advanced, defaults, limits) for every parameter whose stable
id is still there.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from studio.errors import BadRequest, Conflict, Unprocessable
from studio.workflows.detect import app_mode_outputs, detect, slug
from studio.workflows.library import WorkflowLibrary, load_folder
from studio.workflows.manifest import Manifest
from studio.workflows.sources import model_sources, node_sources
from studio.workflows.uiformat import convert

EDITABLE = ("name", "hidden", "advanced", "default", "min", "max", "step", "description", "required")
OUTPUT_NODES = {"SaveImage": "image", "VHS_VideoCombine": "video", "SaveAnimatedWEBP": "image",
                "SaveAnimatedPNG": "image", "SaveAudio": "audio", "SaveVideo": "video"}


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise BadRequest(f"The {what} is not valid JSON.", fields={"file": "invalid JSON"}) from err


def read_upload(data: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(API prompt, UI workflow) found in an uploaded file; either may be missing."""
    stripped = data.lstrip()
    if stripped[:1] == b"{":
        parsed = _json(data, "file")
        if isinstance(parsed, dict) and isinstance(parsed.get("nodes"), list):
            return None, parsed
        if isinstance(parsed, dict) and isinstance(parsed.get("prompt"), dict):
            return parsed["prompt"], parsed.get("workflow") if isinstance(parsed.get("workflow"), dict) else None
        if isinstance(parsed, dict) and parsed and all(isinstance(n, dict) and "class_type" in n
                                                       for n in parsed.values()):
            return parsed, None
        raise BadRequest("This JSON is neither a ComfyUI workflow nor an API-format prompt.",
                         fields={"file": "not a workflow"})
    try:
        with Image.open(io.BytesIO(data)) as image:
            texts: dict[str, str] = dict(getattr(image, "text", {}) or {})
            for value in image.getexif().values():
                if isinstance(value, str) and ":" in value:
                    key, _, rest = value.partition(":")
                    if key in ("prompt", "workflow"):
                        texts.setdefault(key, rest)
    except (UnidentifiedImageError, OSError) as err:
        raise BadRequest("Import a workflow JSON, or a PNG/WebP saved by ComfyUI.",
                         fields={"file": "unsupported file"}) from err
    prompt = _json(texts["prompt"], "image's prompt") if "prompt" in texts else None
    ui = _json(texts["workflow"], "image's workflow") if "workflow" in texts else None
    if prompt is None and ui is None:
        raise BadRequest("This image carries no ComfyUI workflow (it was saved without metadata).",
                         fields={"file": "no workflow inside"})
    return prompt, ui


def _merge(detected: list[dict[str, Any]], previous: Manifest | None) -> list[dict[str, Any]]:
    """Keeps the person's edits for every parameter that is still there, in their order."""
    if previous is None:
        return detected
    before = {spec.id: spec.model_dump(exclude_none=True) for spec in previous.inputs}
    merged = [{**entry, **{key: before[entry["id"]][key] for key in EDITABLE if key in before[entry["id"]]}}
              if entry["id"] in before else entry for entry in detected]
    order = {spec.id: index for index, spec in enumerate(previous.inputs)}
    return sorted(merged, key=lambda entry: order.get(entry["id"], len(order)))  # stable: new ones last


class WorkflowImporter:
    def __init__(self, library: WorkflowLibrary, user_dir: Path) -> None:
        self.library = library
        self.user_dir = user_dir

    def import_file(
        self, data: bytes, *, name: str | None, workflow_id: str | None, replace: bool,
        object_info: dict[str, Any],
    ) -> Manifest:
        prompt, ui = read_upload(data)
        if ui is not None:
            converted = convert(ui, object_info)
            prompt = converted if converted else prompt
        assert prompt is not None
        title = name or (ui or {}).get("extra", {}).get("name") or "Imported workflow"
        chosen_id = workflow_id or slug(str(title)).replace("_", "-")
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,100}", chosen_id):
            raise BadRequest("Use letters, digits, '-' and '_' for the id.", fields={"id": "invalid id"})
        folder = self.user_dir / chosen_id
        previous = None
        if folder.exists():
            if not replace:
                raise Conflict(f"A workflow {chosen_id!r} exists. Import with replace to update it.",
                               code="workflow_exists")
            previous = load_folder(folder, bundled=False).manifest
        inputs = _merge(detect(prompt, object_info, ui), previous)
        outputs = [{"id": f"{kind}_{node_id}", "name": str((node.get("_meta") or {}).get("title") or kind),
                    "type": kind, "node_id": node_id}
                   for node_id, node in prompt.items() if (kind := OUTPUT_NODES.get(node["class_type"]))]
        shown = app_mode_outputs(ui)
        if shown and any(output["node_id"] in shown for output in outputs):
            outputs = [output for output in outputs if output["node_id"] in shown]
        if not outputs:
            raise Unprocessable("The workflow saves nothing: add a Save Image (or video) node.", code="no_outputs")
        raw = {
            "id": chosen_id,
            "name": previous.name if previous and not name else str(title),
            "version": (previous.version + 1) if previous else 1,
            "type": "static",
            "description": previous.description if previous else "Imported into Studio.",
            "workflow_file": "workflow.json",
            "inputs": inputs,
            "outputs": outputs,
            "required_nodes": sorted({node["class_type"] for node in prompt.values()}),
            "required_models": [],
        }
        if ui is not None and (models := model_sources(ui)):
            raw["model_sources"] = models
        if ui is not None and (nodes := node_sources(ui)):
            raw["node_sources"] = nodes
        return self._write(folder, raw, prompt)

    def save_mapping(self, workflow_id: str, inputs: list[dict[str, Any]]) -> Manifest:
        """The mapping editor's result: renamed, hidden, reordered, regrouped, new defaults/limits."""
        workflow = self.library.get(workflow_id)
        if workflow.bundled:
            raise Conflict("Bundled workflows cannot be edited; import a copy instead.", code="workflow_bundled")
        current = {spec.id: spec.model_dump(exclude_none=True) for spec in workflow.manifest.inputs}
        unknown = [entry.get("id") for entry in inputs if entry.get("id") not in current]
        if unknown:
            raise BadRequest(f"Unknown parameter {unknown[0]!r}.", fields={"inputs": f"unknown id {unknown[0]}"})
        edited = []
        for entry in inputs:
            merged = {**current[entry["id"]], **{k: entry[k] for k in EDITABLE if k in entry}}
            edited.append(merged)
        missing = [param_id for param_id in current if param_id not in {e["id"] for e in edited}]
        edited += [current[param_id] for param_id in missing]
        raw = {**workflow.manifest.model_dump(mode="json", exclude_none=True), "inputs": edited}
        return self._write(workflow.folder, raw, workflow.prompt)

    def _write(self, folder: Path, raw: dict[str, Any], prompt: dict[str, Any]) -> Manifest:
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadRequest(f"{where}: {first['msg']}", fields={where: first["msg"]}) from err
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "workflow.json.tmp").write_text(json.dumps(prompt, indent=2))
        (folder / "manifest.yaml.tmp").write_text(
            yaml.safe_dump(manifest.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True))
        (folder / "workflow.json.tmp").replace(folder / "workflow.json")
        (folder / "manifest.yaml.tmp").replace(folder / "manifest.yaml")
        self.library.refresh(force=True)
        return manifest

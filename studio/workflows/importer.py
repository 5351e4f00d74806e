"""Importing any workflow: an API-format JSON, a UI-format JSON, or a PNG/WebP made by ComfyUI.

The result is an ordinary workflow folder (``manifest.yaml`` + API-format ``workflow.json``) in
``STUDIO_DIR/workflows/<id>/``. Re-importing under the same id keeps what a person set in the
mapping editor (names, order, hidden, advanced, defaults, limits) for every parameter whose stable
id is still there.

A UI workflow with nodes ComfyUI does not know (a node pack not installed yet) is imported all the
same: those nodes keep only their links in ``workflow.json``, the manifest lists them as
``unconverted_nodes`` (the library shows the workflow as not ready, naming them), and the UI graph
is kept beside it (``workflow.ui.json``) so that ``complete`` converts it again, widget values and
all, once ComfyUI has the nodes.
"""

from __future__ import annotations

import io
import json
import logging
import re
import struct
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from studio import jsonio, safepath
from studio.errors import BadRequest, Conflict, Unprocessable
from studio.workflows.detect import app_mode_outputs, detect, slug
from studio.workflows.library import LOAD_ERRORS, YAML_DUMPER, Workflow, WorkflowLibrary, load_folder
from studio.workflows.manifest import PARAM_ID, Manifest
from studio.workflows.outputs import output_kind, saving_nodes
from studio.workflows.shapes import ShapeError, check_api_prompt, check_ui_workflow
from studio.workflows.sources import model_sources, node_sources
from studio.workflows.uiformat import convert_partly

log = logging.getLogger(__name__)

# Pillow's own default limit, applied here explicitly: an image with more pixels is refused before
# anything decodes it (a 100 kB PNG can claim 50,000 x 50,000 pixels and fill the memory).
MAX_IMAGE_PIXELS = 89_478_485
# Text chunks written after the image data are only reachable by decoding it: small images only.
MAX_DECODE_PIXELS = 16_777_216
MAX_NAME = 200
# What reading an image's metadata can raise on a broken or hostile file.
IMAGE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error,
                Image.DecompressionBombError, Image.DecompressionBombWarning)

# The UI graph of a workflow imported before ComfyUI had all its nodes, beside its manifest.
UI_FILE = "workflow.ui.json"
# File names that say nothing about the workflow (a browser's pasted blob, ComfyUI's numbered outputs).
GENERIC_STEM = re.compile(r"(?i)(blob|workflow|image|untitled|download)?[ _-]*(\(\d+\)|\d+)?|.*_\d{5}_")

EDITABLE = ("name", "hidden", "advanced", "default", "min", "max", "step", "description", "required")


def _json(text: str | bytes, what: str) -> Any:
    try:
        return jsonio.loads(text)
    except jsonio.JSONRefused as err:
        raise BadRequest(f"The {what} is not usable JSON: {err}.", fields={"file": "invalid JSON"}) from err


def _shaped(prompt: Any, ui: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Both halves checked for the shapes the converter and detector rely on; a 400 names the part."""
    try:
        if ui is not None:
            check_ui_workflow(ui)
        if prompt is not None:
            check_api_prompt(prompt)
    except ShapeError as err:
        raise BadRequest(f"This workflow cannot be read: {err}.", fields={"file": str(err)}) from err
    return prompt, ui


COMFY_TEXTS = ("prompt", "workflow")


def image_texts(data: bytes, wanted: tuple[str, ...] = COMFY_TEXTS, *,
                unsupported: str = "Import a workflow JSON, or a PNG/WebP saved by ComfyUI.") -> dict[str, str]:
    """The texts an image carries about how it was made: ComfyUI's ``prompt`` / ``workflow`` in a
    PNG's chunks or a WebP's EXIF, and (when ``parameters`` is wanted) A1111's ``parameters`` chunk
    or the EXIF UserComment a JPEG keeps it in. Too many pixels or no image at all is a 400."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise BadRequest(f"This image is too large to read ({width} x {height} pixels).",
                                 fields={"file": "too many pixels"})
            texts = {k: v for k, v in (image.info or {}).items() if k in wanted and isinstance(v, str)}
            if not texts and width * height <= MAX_DECODE_PIXELS:
                texts = {k: v for k, v in (getattr(image, "text", {}) or {}).items()
                         if k in wanted and isinstance(v, str)}
            exif = image.getexif()
            comment = exif.get_ifd(0x8769).get(0x9286) if exif and "parameters" in wanted else None
            if isinstance(comment, bytes) and "parameters" not in texts:
                body = comment[8:] if comment[:8] in (b"UNICODE\0", b"ASCII\0\0\0") else comment
                encoding = "utf-16-be" if comment[:8] == b"UNICODE\0" else "utf-8"
                texts["parameters"] = body.decode(encoding, "replace")
            for value in exif.values():
                if isinstance(value, str) and ":" in value:
                    key, _, rest = value.partition(":")
                    if key in COMFY_TEXTS and key in wanted:
                        texts.setdefault(key, rest)
    except IMAGE_ERRORS as err:
        bomb = isinstance(err, Image.DecompressionBombError | Image.DecompressionBombWarning)
        raise BadRequest("This image is too large to read." if bomb else unsupported,
                         fields={"file": "too many pixels" if bomb else "unsupported file"}) from err
    return texts


def read_upload(data: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(API prompt, UI workflow) found in an uploaded file; either may be missing."""
    stripped = data.lstrip()
    if stripped[:1] == b"{":
        parsed = _json(data, "file")
        if isinstance(parsed, dict) and "nodes" in parsed:
            return _shaped(None, parsed)
        if isinstance(parsed, dict) and isinstance(parsed.get("prompt"), dict):
            return _shaped(parsed["prompt"], parsed.get("workflow") if isinstance(parsed.get("workflow"), dict)
                           else None)
        if isinstance(parsed, dict) and parsed and all(isinstance(n, dict) and "class_type" in n
                                                       for n in parsed.values()):
            return _shaped(parsed, None)
        raise BadRequest("This JSON is neither a ComfyUI workflow nor an API-format prompt.",
                         fields={"file": "not a workflow"})
    texts = image_texts(data)
    prompt = _json(texts["prompt"], "image's prompt") if "prompt" in texts else None
    ui = _json(texts["workflow"], "image's workflow") if "workflow" in texts else None
    if prompt is None and ui is None:
        raise BadRequest("This image carries no ComfyUI workflow (it was saved without metadata).",
                         fields={"file": "no workflow inside"})
    return _shaped(prompt if isinstance(prompt, dict) or prompt is None else {},
                   ui if isinstance(ui, dict) or ui is None else [])


def _bad_text(text: str) -> bool:
    try:
        jsonio.check_shape(text)
    except jsonio.JSONRefused:
        return True
    return "\x00" in text


# What converting or reading a workflow of a shape nobody foresaw can raise; a 400, never a 500.
READ_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError, RecursionError)


def _convert(ui: dict[str, Any], object_info: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """UI → API format, and the node types ComfyUI does not know (converted without their widgets);
    whatever the shape checks missed is still a 400, never a crash."""
    try:
        converted, unknown = convert_partly(ui, object_info)
    except READ_ERRORS as err:
        log.warning("a UI workflow could not be converted", exc_info=True)
        raise BadRequest(f"This workflow cannot be converted ({type(err).__name__}): check its nodes and links.",
                         fields={"file": "cannot be converted"}) from err
    if converted:
        try:
            check_api_prompt(converted)
        except ShapeError as err:
            raise BadRequest(f"This workflow cannot be read: {err}.", fields={"file": str(err)}) from err
    return converted, unknown


def _merge(detected: list[dict[str, Any]], previous: Manifest | None) -> list[dict[str, Any]]:
    """Keeps the person's edits for every parameter that is still there, in their order."""
    if previous is None:
        return detected
    before = {spec.id: spec.model_dump(exclude_none=True) for spec in previous.inputs}
    merged = [{**entry, **{key: before[entry["id"]][key] for key in EDITABLE if key in before[entry["id"]]}}
              if entry["id"] in before else entry for entry in detected]
    order = {spec.id: index for index, spec in enumerate(previous.inputs)}
    return sorted(merged, key=lambda entry: order.get(entry["id"], len(order)))  # stable: new ones last


def _output_names(prompt: dict[str, Any], object_info: dict[str, Any]) -> list[Any]:
    """What the saving nodes say about the workflow: a title someone gave one, a file name prefix
    other than ComfyUI's default ("ComfyUI"), the last folder of it left out."""
    found: list[Any] = []
    for _node_id, node, _kind in saving_nodes(prompt, object_info):
        title = (node.get("_meta") or {}).get("title")
        if title not in (node["class_type"], (object_info.get(node["class_type"]) or {}).get("display_name")):
            found.append(title)
        prefix = node["inputs"].get("filename_prefix")
        if isinstance(prefix, str) and prefix.rsplit("/", 1)[-1] != "ComfyUI":
            found.append(prefix.rsplit("/", 1)[-1])
    return found


def _suggested_name(ui: dict[str, Any] | None, file_name: str | None, outputs: list[Any] | None = None) -> str:
    """The name the workflow carries (its graph's title), else its file's name, else what its output
    node says (``_output_names``), else a plain one. A file name that says nothing ("workflow.json",
    "ComfyUI_00012_.png") comes after the output node."""
    extra = (ui or {}).get("extra")
    extra = extra if isinstance(extra, dict) else {}
    stem = Path(file_name or "").stem
    telling = [stem] if not GENERIC_STEM.fullmatch(stem) else []
    for candidate in (extra.get("title"), extra.get("name"), (ui or {}).get("name"), (ui or {}).get("title"),
                      *telling, *(outputs or []), stem):
        if isinstance(candidate, str) and candidate.strip() and not _bad_text(candidate):
            return " ".join(candidate.split())[:MAX_NAME]  # only a suggestion: cut to size, never refused
    return "Imported workflow"


def _id_for(title: str) -> str:
    """A workflow id from its name: the same derivation as ever for a name with letters or digits in
    it (existing ids stay what they were), "imported" for one with none (only non-ASCII, say)."""
    found = slug(title)[:64].strip("_").replace("_", "-")
    return found if found and re.search(r"[a-z0-9]", title.lower()) else "imported"


def _unused(first: str, numbered: Callable[[int], str], taken: Callable[[str], bool]) -> str:
    """``first``, or the first of ``numbered(2)``, ``numbered(3)``… that is not ``taken``."""
    candidate, number = first, 2
    while taken(candidate):
        candidate, number = numbered(number), number + 1
    return candidate


def _valid_ids(detected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every parameter id usable in a manifest, whatever the title it came from; ids that already
    are (every id an existing workflow has) are left exactly as they are."""
    used = {entry["id"] for entry in detected}
    for entry in detected:
        if isinstance(entry.get("id"), str) and re.fullmatch(PARAM_ID, entry["id"]) and len(entry["id"]) <= 200:
            continue
        used.discard(entry.get("id"))
        base = (re.sub(r"[^A-Za-z0-9_]+", "_", str(entry.get("id"))).strip("_") or "value")[:190]
        entry["id"] = _unused(base, partial("{}_{}".format, base), used.__contains__)
        used.add(entry["id"])
    return detected


def _last_unknown(prompt: dict[str, Any], unknown: list[str]) -> list[tuple[str, dict[str, Any], str]]:
    """Nodes of a type ComfyUI does not know that nothing takes from: while their pack is missing,
    the best guess at what saves the result (the conversion once it is installed says for sure)."""
    used = {value[0] for node in prompt.values() for value in node["inputs"].values()
            if isinstance(value, list) and len(value) == 2}
    return [(node_id, node, output_kind(node["class_type"], None) or "file") for node_id, node in prompt.items()
            if node["class_type"] in unknown and node_id not in used]


def _outputs(prompt: dict[str, Any], object_info: dict[str, Any], ui: dict[str, Any] | None,
             unknown: list[str]) -> list[dict[str, Any]]:
    """The nodes that save something (ComfyUI's ``output_node`` with a ``filename_prefix``), or a 422."""
    saving = saving_nodes(prompt, object_info) or _last_unknown(prompt, unknown)
    outputs = [{"id": f"{kind}_{node_id}", "name": str((node.get("_meta") or {}).get("title") or kind),
                "type": kind, "node_id": node_id} for node_id, node, kind in saving]
    shown = app_mode_outputs(ui)
    if shown and any(output["node_id"] in shown for output in outputs):
        outputs = [output for output in outputs if output["node_id"] in shown]
    if not outputs:
        raise Unprocessable("The workflow saves nothing: add a Save Image (or video, audio…) node.",
                            code="no_outputs")
    return outputs


class WorkflowImporter:
    def __init__(self, library: WorkflowLibrary, user_dir: Path) -> None:
        self.library = library
        self.user_dir = user_dir
        self._completing = threading.Lock()

    def import_file(
        self, data: bytes, *, name: str | None, workflow_id: str | None, replace: bool,
        object_info: dict[str, Any], file_name: str | None = None,
    ) -> Workflow:
        """The workflow in ``data`` written into the library; returns it as the library now has it.

        Without an ``id`` the workflow's id comes from its name and never takes one in use: a second
        workflow of the same name becomes "<name> (2)" with the id "<id>-2" (``replace`` updates the
        one that has the id instead). A given ``id`` that is taken is a 409 unless ``replace``.
        """
        prompt, ui = read_upload(data)
        unknown: list[str] = []
        if ui is not None:
            converted, unknown = _convert(ui, object_info)
            if unknown and prompt:  # the prompt ComfyUI ran (a PNG's) has every node's values already
                unknown = []
            else:
                prompt = converted if converted else prompt
        if prompt is None:
            raise BadRequest("This workflow has no nodes Studio can run.", fields={"file": "no nodes"})
        if name is not None and (len(name) > MAX_NAME or _bad_text(name)):
            raise BadRequest(f"The name must be text of at most {MAX_NAME} characters.", fields={"name": "invalid"})
        title = (name or "").strip() or _suggested_name(ui, file_name, _output_names(prompt, object_info))
        if workflow_id is not None and not re.fullmatch(r"[A-Za-z0-9_\-]{1,100}", workflow_id):
            raise BadRequest("Use letters, digits, '-' and '_' for the id.", fields={"id": "invalid id"})
        ids, names = self.library.taken()
        chosen_id = workflow_id or _id_for(title)
        if workflow_id is None and not replace:
            chosen_id = _unused(chosen_id, lambda n: f"{chosen_id[:96]}-{n}",
                                lambda candidate: candidate in ids or self._occupied(candidate))
        folder = self.user_dir / chosen_id
        previous = None
        # Any workflow with this id counts, a bundled one too: an import never shadows one unasked.
        existing = self.library.find(chosen_id, look=False)  # taken() just looked
        if existing is not None and not replace:
            where = "a bundled workflow" if existing.bundled else "a workflow"
            raise Conflict(f"There is already {where} with the id {chosen_id!r}. Import with replace to "
                           "update it, or choose another id.", code="workflow_exists")
        if existing is not None and not existing.bundled and existing.folder.parent == self.user_dir:
            folder = existing.folder  # the user's own copy is updated where it is, never duplicated
        if self._occupied(chosen_id) or folder != self.user_dir / chosen_id:
            if not replace:
                raise Conflict(f"A workflow {chosen_id!r} exists. Import with replace to update it.",
                               code="workflow_exists")
            if folder.is_symlink() or not folder.is_dir():
                raise Conflict(f"workflows/{chosen_id} is not a plain folder (a link or a file); "
                               "Studio does not write through it.", code="workflow_folder_unsafe")
            try:
                previous = load_folder(folder, bundled=False).manifest
            except LOAD_ERRORS as err:  # a folder without a usable manifest: replaced as new
                log.warning("replacing workflows/%s, whose manifest could not be read: %s", chosen_id, err)
        try:
            detected = _valid_ids(detect(prompt, object_info, ui))
        except READ_ERRORS as err:
            log.warning("the form of an imported workflow could not be found", exc_info=True)
            raise BadRequest(f"This workflow's inputs cannot be read ({type(err).__name__}).",
                             fields={"file": "cannot be read"}) from err
        outputs = _outputs(prompt, object_info, ui, unknown)
        if previous is not None and not name:
            title = previous.name  # an update keeps the name a person gave it
        else:
            own = existing.manifest.name.casefold() if existing is not None else None
            title = _unused(title, lambda n: f"{title[:MAX_NAME - 6]} ({n})",
                            lambda candidate: candidate.casefold() in names and candidate.casefold() != own)
        raw = {
            "id": chosen_id,
            "name": title,
            "version": (previous.version + 1) if previous else 1,
            "type": "static",
            "description": previous.description if previous else "Imported into Studio.",
            "workflow_file": "workflow.json",
            "inputs": _merge(detected, previous),
            "outputs": outputs,
            "required_nodes": sorted({node["class_type"] for node in prompt.values()}),
            "required_models": [],
        }
        if ui is not None and (models := model_sources(ui)):
            raw["model_sources"] = models
        if ui is not None and (nodes := node_sources(ui)):
            raw["node_sources"] = nodes
        if unknown:
            raw["unconverted_nodes"] = unknown
        self._write(folder, raw, prompt, ui if unknown else None)
        workflow = self.library.find(chosen_id, look=False)  # the write re-read its folder
        if workflow is None:  # written, yet not loadable (or changed again meanwhile): say why
            problem = next((p.message for p in self.library.problems if p.folder == str(folder)),
                           "its folder changed while it was written")
            raise Unprocessable(f"The imported workflow cannot be loaded: {problem}.", code="workflow_unloadable")
        return workflow

    def complete(self, workflow: Workflow, object_info: dict[str, Any]) -> Workflow:
        """The workflow converted again from its UI graph once ComfyUI knows every node it waited for
        (the same as importing that graph again under its id: the name and the person's edits stay);
        as it is while one is still missing. Two requests at once convert it once."""
        waiting = workflow.manifest.unconverted_nodes or []
        if workflow.bundled or not waiting or any(node not in object_info for node in waiting):
            return workflow
        with self._completing:
            current = self.library.find(workflow.id, look=False)
            if current is None or current.digest != workflow.digest:  # converted (or changed) meanwhile
                return current or workflow
            with safepath.open_inside(self.user_dir, workflow.folder / UI_FILE) as ui_file:
                data = ui_file.read()
            return self.import_file(data, name=None, workflow_id=workflow.id, replace=True, object_info=object_info)

    def _occupied(self, folder_name: str) -> bool:
        """Whether ``workflows/<folder_name>`` is taken by anything at all (a folder, a file, a link)."""
        folder = self.user_dir / folder_name
        return safepath.lexists_inside(self.user_dir, folder) or folder.is_symlink()

    def save_mapping(self, workflow_id: str, inputs: list[dict[str, Any]]) -> Manifest:
        """The mapping editor's result: renamed, hidden, reordered, regrouped, new defaults/limits."""
        workflow = self.library.get(workflow_id)
        if workflow.bundled:
            raise Conflict("Bundled workflows cannot be edited; import a copy instead.", code="workflow_bundled")
        current = {spec.id: spec.model_dump(exclude_none=True) for spec in workflow.manifest.inputs}
        unknown = [entry.get("id") for entry in inputs if not isinstance(entry.get("id"), str)
                   or entry["id"] not in current]
        if unknown:
            raise BadRequest(f"Unknown parameter {str(unknown[0])[:80]!r}.",
                             fields={"inputs": f"unknown id {str(unknown[0])[:80]}"})
        edited = []
        for entry in inputs:
            merged = {**current[entry["id"]], **{k: entry[k] for k in EDITABLE if k in entry}}
            edited.append(merged)
        missing = [param_id for param_id in current if param_id not in {e["id"] for e in edited}]
        edited += [current[param_id] for param_id in missing]
        raw = {**workflow.manifest.model_dump(mode="json", exclude_none=True), "inputs": edited}
        return self._write(workflow.folder, raw, workflow.prompt)

    def _write(self, folder: Path, raw: dict[str, Any], prompt: dict[str, Any],
               ui: dict[str, Any] | None = None) -> Manifest:
        """Validates and writes the manifest and workflow (and the UI graph of one that waits for
        nodes, or else no UI graph), then has the library re-read that folder only."""
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadRequest(f"{where}: {first['msg']}", fields={where: first["msg"]}) from err
        manifest_text = yaml.dump(manifest.model_dump(mode="json", exclude_none=True), Dumper=YAML_DUMPER,
                                  sort_keys=False, allow_unicode=True)
        self.user_dir.mkdir(parents=True, exist_ok=True)
        try:
            safepath.write_atomic(self.user_dir, folder / "workflow.json", json.dumps(prompt, indent=2).encode())
            if ui is not None:
                safepath.write_atomic(self.user_dir, folder / UI_FILE, json.dumps(ui).encode())
            elif not manifest.unconverted_nodes:
                safepath.unlink_inside(self.user_dir, folder / UI_FILE)
            safepath.write_atomic(self.user_dir, folder / "manifest.yaml", manifest_text.encode())
        except safepath.UnsafePath as err:
            raise Conflict(f"workflows/{folder.name} is reached through a link; Studio does not write through it.",
                           code="workflow_folder_unsafe") from err
        self.library.refresh(folders=(folder,))
        return manifest

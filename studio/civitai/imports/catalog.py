"""A CivitAI model version as a catalog entry in the original's format, and adding it to a catalog.

Type → folder as the original did it: Checkpoint→checkpoints, LORA/LoCon/DoRA→loras, VAE→vae,
TextualInversion→embeddings, Controlnet→controlnet, Upscaler→upscale_models; a checkpoint of a
Flux, Wan, Hunyuan, LTX or Qwen base model is a diffusion model (ComfyUI loads those with
``UNETLoader`` from ``diffusion_models``). LoRAs go to the LoRA catalog, the rest to the models one.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from studio.civitai.client import SHA256, CivitaiClient
from studio.civitai.errors import CivitaiError, CivitaiNotFound
from studio.errors import BadRequest, Conflict
from studio.models.catalog import CatalogEntry
from studio.models.catalog_store import import_catalog, read_raw, remove_entry

TYPE_DEST = {"checkpoint": "checkpoints", "lora": "loras", "locon": "loras", "dora": "loras", "lycoris": "loras",
             "vae": "vae", "textualinversion": "embeddings", "controlnet": "controlnet", "upscaler": "upscale_models"}
DIFFUSION_BASES = ("flux", "wan", "hunyuan", "ltx", "qwen")
# The original's category ids for each folder.
CATEGORY_OF = {"checkpoints": "checkpoints", "diffusion_models": "diffusion_models", "loras": "loras",
               "vae": "vae", "embeddings": "embeddings", "controlnet": "controlnet", "upscale_models": "upscalers"}
CATEGORY_NAMES = {"checkpoints": "Checkpoints", "diffusion_models": "Diffusion models", "loras": "LoRAs",
                  "vae": "VAE", "embeddings": "Embeddings", "controlnet": "ControlNet", "upscalers": "Upscalers"}
MAX_ID = 2**53


def dest_for(model_type: str, base_model: str) -> str | None:
    folder = TYPE_DEST.get(re.sub(r"[^a-z]", "", model_type.lower()))
    if folder == "checkpoints" and re.sub(r"[^a-z]", "", base_model.lower()).startswith(DIFFUSION_BASES):
        return "diffusion_models"
    return folder


def parse_ref(value: str) -> tuple[str, int]:
    """A CivitAI address or id → ("model" | "version" | "image", id). A bare number is a version
    (what a catalog adds); ``image:N``/``model:N``/``version:N`` say which."""
    raw = value.strip()[:2000]
    if match := re.fullmatch(r"(?i)(model|version|image)\s*[:#]?\s*(\d{1,16})", raw):
        return match.group(1).lower(), _id(match.group(2))
    if re.fullmatch(r"\d{1,16}", raw):
        return "version", _id(raw)
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest("Paste a CivitAI address (…/models/…, …/images/…) or an id.", fields={"ref": "not an address"})
    query = parse_qs(parts.query)
    path = parts.path
    if match := re.search(r"/images/(\d{1,16})", path):
        return "image", _id(match.group(1))
    if "modelVersionId" in query and re.fullmatch(r"\d{1,16}", query["modelVersionId"][0]):
        return "version", _id(query["modelVersionId"][0])
    if match := re.search(r"/(?:model-versions|api/download/models)/(\d{1,16})", path):
        return "version", _id(match.group(1))
    if match := re.search(r"/models/(\d{1,16})", path):
        return "model", _id(match.group(1))
    raise BadRequest("This address names no CivitAI model, version or image.", fields={"ref": "not understood"})


def _id(raw: str) -> int:
    number = int(raw)
    if not 0 < number <= MAX_ID:
        raise BadRequest("A CivitAI id is a positive whole number.", fields={"ref": "out of range"})
    return number


def _size_gb(size_kb: Any) -> float:
    try:
        size = float(size_kb or 0) / 1024 / 1024
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return round(size, 9) if math.isfinite(size) and 0 <= size <= 10_000_000 else 0.0


def entry_from_version(version: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(catalog kind, entry) for a version answer from CivitAI (not trusted: every field checked)."""
    model: dict[str, Any] = version["model"] if isinstance(version.get("model"), dict) else {}
    model_type = str(model.get("type") or "")
    base = str(version.get("baseModel") or "")[:100]
    dest = dest_for(model_type, base)
    if dest is None:
        raise Conflict(f"Studio has no model folder for a CivitAI {model_type[:40] or 'model'} (it takes "
                       "checkpoints, LoRAs, VAEs, embeddings, ControlNets and upscalers).", code="civitai_type_unknown")
    files = [f for f in version.get("files") or [] if isinstance(f, dict)]
    primary: dict[str, Any] | None = next((f for f in files if f.get("primary")), files[0] if files else None)
    if primary is None:
        raise CivitaiError("CivitAI lists no file for this version.")
    hashes: dict[str, Any] = primary["hashes"] if isinstance(primary.get("hashes"), dict) else {}
    sha = str(hashes.get("SHA256") or "").lower()
    name = f"{str(model.get('name') or primary.get('name'))[:200]} [{version.get('name') or base}]"
    entry: dict[str, Any] = {
        "name": re.sub(r"[\x00-\x1f\x7f]", "", name)[:255], "file": primary.get("name"), "dest": dest,
        "source": "civitai", "size_gb": _size_gb(primary.get("sizeKB")), "civitai_version_id": version.get("id"),
        "base_model": base or None, "tags": [t for t in [re.sub(r"[^a-z0-9]", "", base.lower())[:40]] if t],
        "civitai_model_id": version.get("modelId"), "civitai_type": model_type[:40] or None,
        "civitai_base_model": base or None, "civitai_version": str(version.get("name") or "")[:100] or None,
    }
    if SHA256.match(sha):
        entry["sha256"] = sha
    words = [w[:200] for w in version.get("trainedWords") or [] if isinstance(w, str)][:50]
    if words:
        entry["trainedWords"] = words
    entry = {k: v for k, v in entry.items() if v is not None}
    try:
        CatalogEntry.model_validate(entry)
    except ValidationError as err:
        where = ".".join(str(p) for p in err.errors()[0]["loc"])
        raise CivitaiError(f"CivitAI's answer cannot be a catalog entry ({where}: {err.errors()[0]['msg']}).") \
            from None
    kind = "loras" if dest == "loras" else "models"
    return kind, entry


def version_for(client: CivitaiClient, ref: str) -> dict[str, Any]:
    """The version a reference names: a model's newest version when it names a model."""
    kind, number = parse_ref(ref)
    if kind == "image":
        raise BadRequest("That is an image: import it instead of adding it to a catalog.", fields={"ref": "an image"})
    if kind == "model":
        versions = client.model(number).get("modelVersions")
        first = versions[0] if isinstance(versions, list) and versions and isinstance(versions[0], dict) else None
        if first is None or not isinstance(first.get("id"), int):
            raise CivitaiNotFound(f"CivitAI's model {number} has no version.")
        number = first["id"]
    return client.version(number)


def add_entry(user_dir: Path, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Merges one entry into the user's catalog of ``kind`` (replacing one of the same file name)."""
    category = CATEGORY_OF.get(entry["dest"], entry["dest"])
    result = import_catalog(user_dir, kind, {"version": 1, "categories": [
        {"id": category, "name": CATEGORY_NAMES.get(category, category), "models": [entry]}]}, "merge")
    if not result["added"] and not result["replaced"]:
        raise CivitaiError("The catalog refused the entry: " + "; ".join(result["problems"][:3]))
    return {"kind": kind, "entry": entry, "added": bool(result["added"])}


def move_to_loras(user_dir: Path, file_name: str) -> dict[str, Any]:
    """An entry of the models catalog moved to the LoRA catalog, its folder made ``loras``."""
    raw = read_raw(user_dir, "models")
    found = any(isinstance(item, dict) and item.get("file") == file_name
                for category in raw["categories"] if isinstance(category, dict)
                for item in (category.get("models") or []) if isinstance(category.get("models"), list))
    if not found:
        raise Conflict(f"The models catalog has no entry for {file_name[:200]}.", code="not_in_catalog")
    original = remove_entry(user_dir, "models", file_name)
    dest = str(original.get("dest") or "")
    moved = {**original, "dest": dest if dest.split("/")[0] == "loras" else "loras"}
    try:
        return add_entry(user_dir, "loras", moved)
    except (CivitaiError, BadRequest):
        add_entry(user_dir, "models", original)  # put back where it was: nothing is lost
        raise

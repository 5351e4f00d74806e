"""Changing catalogs from the Models page: import a catalog JSON (merge or replace) and remove an
entry. Works on the raw JSON so fields Studio does not know (CivitAI metadata, ``companions``,
``trainedWords``) survive; the user's copy in ``STUDIO_DIR/catalogs`` is written atomically and
from then on wins over the bundled one.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from studio.errors import BadRequest, NotFound
from studio.models.catalog import BUNDLED_DIR, CATALOG_FILES, CatalogEntry, parse_catalog, read_user_file, unreadable
from studio.safepath import atomic_file, makedirs_durable

_WRITE_LOCK = threading.Lock()  # read-modify-write of one user's catalogs: one change at a time


def read_raw(user_dir: Path, kind: str, bundled_dir: Path = BUNDLED_DIR) -> dict[str, Any]:
    name = CATALOG_FILES[kind]
    try:
        data = read_user_file(user_dir, name)
        if data is None:
            bundled = bundled_dir / name
            if not bundled.is_file():
                return {"version": 1, "categories": []}
            data = bundled.read_bytes()
        raw = json.loads(data)
    except (OSError, ValueError, RecursionError) as err:
        raise BadRequest(f"{unreadable(name, err)}; fix or delete it first.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        raise BadRequest(f"{name} is not a catalog; fix or delete it first.")
    return raw


def write_raw(user_dir: Path, kind: str, raw: dict[str, Any]) -> None:
    """Written next to the target and renamed over it: a crash leaves the old catalog or the new one.

    Both steps go through ``studio.safepath`` below the catalogs folder: a link planted as the
    catalog is replaced itself (never written through), and the temporary name is unguessable.
    The new content is fsynced before the rename and the folder after it, so a power cut cannot
    bring back the old catalog or leave an empty one.
    """
    raw["date"] = datetime.now().strftime("%Y-%m-%d %H:%M")
    try:
        text = json.dumps(raw, indent=2, ensure_ascii=False, allow_nan=False)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate somewhere: escaped, so the file stays valid UTF-8
            data = json.dumps(raw, indent=2, ensure_ascii=True, allow_nan=False).encode("ascii")
    except (ValueError, RecursionError):
        raise BadRequest("The catalog holds a number that is not finite, or is nested too deeply.",
                         fields={"catalog": "not storable"}) from None
    makedirs_durable(user_dir)
    with atomic_file(user_dir, user_dir / CATALOG_FILES[kind],
                     temporary=user_dir / f".catalog-{uuid.uuid4().hex}.tmp") as out:
        out.write(data)


def import_catalog(user_dir: Path, kind: str, incoming: Any, mode: Literal["merge", "replace"],
                   bundled_dir: Path = BUNDLED_DIR) -> dict[str, Any]:
    """Adds (or replaces, by file name) every valid entry; reports the bad ones by name."""
    with _WRITE_LOCK:
        return _import(user_dir, kind, incoming, mode, bundled_dir)


def _import(user_dir: Path, kind: str, incoming: Any, mode: Literal["merge", "replace"],
            bundled_dir: Path) -> dict[str, Any]:
    parsed = parse_catalog(kind, incoming)
    if parsed.version is None and not parsed.entries and parsed.problems:
        raise BadRequest(f"That is not a catalog: {parsed.problems[0]}.", fields={"catalog": "not a catalog"})
    valid = _valid_items(incoming)
    if mode == "replace":
        raw: dict[str, Any] = {k: v for k, v in incoming.items() if k != "categories"}
        raw["categories"] = [{**{k: v for k, v in c.items() if k != "models"}, "models": items}
                             for c, items in valid]
        write_raw(user_dir, kind, raw)
        return {"added": sum(len(items) for _, items in valid), "replaced": 0, "problems": parsed.problems}
    raw = read_raw(user_dir, kind, bundled_dir)
    added = replaced = 0
    for category, items in valid:
        for item in items:
            if _replace_existing(raw, item):
                replaced += 1
                continue
            target = next((c for c in raw["categories"] if isinstance(c, dict) and c.get("id") == category.get("id")),
                          None)
            if target is None:
                target = {k: v for k, v in category.items() if k != "models"} | {"models": []}
                raw["categories"].append(target)
            target.setdefault("models", []).append(item)
            added += 1
    write_raw(user_dir, kind, raw)
    return {"added": added, "replaced": replaced, "problems": parsed.problems}


def remove_entry(user_dir: Path, kind: str, file_name: str, bundled_dir: Path = BUNDLED_DIR) -> dict[str, Any]:
    with _WRITE_LOCK:
        return _remove(user_dir, kind, file_name, bundled_dir)


def _remove(user_dir: Path, kind: str, file_name: str, bundled_dir: Path) -> dict[str, Any]:
    raw = read_raw(user_dir, kind, bundled_dir)
    for category in raw["categories"]:
        models = category.get("models") if isinstance(category, dict) else None
        if not isinstance(models, list):
            continue
        for index, item in enumerate(models):
            if isinstance(item, dict) and item.get("file") == file_name:
                removed = models.pop(index)
                write_raw(user_dir, kind, raw)
                return dict(removed)
    raise NotFound(f"The {kind} catalog has no entry for {file_name}.", code="not_in_catalog")


def _valid_items(incoming: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    found = []
    for category in incoming.get("categories") or []:
        if not isinstance(category, dict):
            continue
        models = category.get("models") or []
        if not isinstance(models, list):
            continue
        items = []
        for item in models:
            try:
                CatalogEntry.model_validate(item)
            except ValidationError:
                continue  # parse_catalog has named it in the problems
            items.append(item)
        found.append((category, items))
    return found


def _replace_existing(raw: dict[str, Any], item: dict[str, Any]) -> bool:
    for category in raw["categories"]:
        models = category.get("models") if isinstance(category, dict) else None
        if not isinstance(models, list):
            continue
        for index, existing in enumerate(models):
            if isinstance(existing, dict) and existing.get("file") == item["file"]:
                models[index] = item
                return True
    return False

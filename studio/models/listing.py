"""Catalog entries joined with what is on disk and in the download queue, and LoRA pairs.

An entry counts as installed when its file is where the catalog puts it, or anywhere in the same
model folder (an extra folder from extra_model_paths.yaml, a sub folder the user chose): ComfyUI
would list it there too.
"""

from __future__ import annotations

import re
from typing import Any

from studio.models.catalog import Catalog, CatalogEntry


def entry_path(entry: CatalogEntry) -> str:
    return f"{entry.dest.strip('/')}/{entry.file}".lstrip("/")


def list_catalogs(catalogs: dict[str, Catalog], files: list[dict[str, Any]],
                  queue: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``({kind: {version, problems, entries, pairs}}, unlisted files)``."""
    on_disk = {item["path"]: item for item in files}
    by_folder_name = {(item["category"], item["path"].rsplit("/", 1)[-1]): item for item in files}
    listed: set[str] = set()
    answer: dict[str, Any] = {}
    for kind, catalog in catalogs.items():
        entries = []
        for category, entry in catalog.entries:
            path = entry_path(entry)
            folder = path.split("/", 1)[0] if "/" in path else category
            found = on_disk.get(path) or by_folder_name.get((folder, entry.file))
            if found is not None:
                listed.add(found["path"])
            download = queue.get(path)
            status = "present" if found else (download["status"] if download else "missing")
            entries.append({"category": category, "name": entry.name, "file": entry.file, "dest": entry.dest,
                            "source": entry.source, "size_gb": entry.size_gb, "base_model": entry.base_model,
                            "tags": entry.tags, "pair_id": entry.pair_id, "pair_role": entry.pair_role,
                            "status": status, "download": download, "found_at": found["path"] if found else None,
                            "size": found["size"] if found else None,
                            "sha256": (found or {}).get("sha256") or entry.sha256,
                            **_hash_check(found, entry)})
        answer[kind] = {"version": catalog.version, "problems": catalog.problems, "entries": entries,
                        "pairs": pairs(entries) if kind == "loras" else []}
    unlisted = [item for path, item in sorted(on_disk.items()) if path not in listed]
    return answer, unlisted


def _hash_check(found: dict[str, Any] | None, entry: CatalogEntry) -> dict[str, bool]:
    """``verified``: the file on disk has the catalog's SHA-256; ``hash_mismatch``: it has another
    one (a different file under the same name, or a corrupted copy)."""
    known = (found or {}).get("sha256")
    expected = entry.sha256.lower() if entry.sha256 else None
    return {"verified": bool(known and expected and known == expected),
            "hash_mismatch": bool(known and expected and known != expected)}


def pairs(entries: list[dict[str, Any]], base_model: str | None = None) -> list[dict[str, Any]]:
    """LoRAs grouped by ``pair_id``: ``{pair_id, name, base_model, high, low, both, installed}``.

    A WAN 2.2 video LoRA comes as a high-noise and a low-noise file that only make sense together;
    an entry without ``pair_id`` is its own pair (role ``both``). ``base_model`` filters by prefix,
    case-insensitively, so ``WAN`` matches ``WAN 2.2``.
    """
    grouped: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if base_model and not (entry.get("base_model") or "").lower().startswith(base_model.lower()):
            continue
        key = entry.get("pair_id") or entry["file"]
        pair = grouped.setdefault(key, {"pair_id": key, "name": _pair_name(entry), "base_model": entry["base_model"],
                                        "high": None, "low": None, "both": None})
        role = entry.get("pair_role") or "both"
        pair[role] = {"file": entry["file"], "name": entry["name"], "status": entry["status"]}
    for pair in grouped.values():
        members = [pair[r] for r in ("high", "low", "both") if pair[r]]
        pair["installed"] = all(m["status"] == "present" for m in members)
        pair["complete"] = bool(pair["both"] or (pair["high"] and pair["low"]))
    return sorted(grouped.values(), key=lambda p: p["name"].lower())


ROLE_SUFFIX = re.compile(r"\s*[(\[]?\b(high|low)(\s+noise)?[)\]]?\s*$", re.IGNORECASE)


def _pair_name(entry: dict[str, Any]) -> str:
    """The entry name without its trailing role ("Orbit (High)" → "Orbit"), so the pair reads as one
    LoRA; a role word inside the name ("High Detail (Low)") stays."""
    return ROLE_SUFFIX.sub("", str(entry["name"])).strip() or str(entry["name"])

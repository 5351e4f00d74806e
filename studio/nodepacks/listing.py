"""Installed node packs: the ``custom_nodes`` folder joined with what ComfyUI says it loaded.

ComfyUI gives every node of a pack ``python_module: "custom_nodes.<folder>"`` in ``/object_info``
(the folder's name as it is on disk, or a single file's name without ``.py``). A folder ComfyUI
loaded nothing from (its import failed, or ComfyUI has not restarted since) is listed with no nodes;
a pack ComfyUI reports without a folder here (a remote ComfyUI) is listed from ``/object_info`` only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from studio.nodepacks.gitsource import Checkout, read_checkout

log = logging.getLogger(__name__)

PREFIX = "custom_nodes."
DISABLED = ".disabled"
SOURCE_FILE = ".studio-nodepack.json"
MAX_NODES_LISTED = 1000
SKIPPED = {"__pycache__", "node_modules"}


def nodes_by_module(object_info: dict[str, Any] | None) -> dict[str, list[str]]:
    """``{module after custom_nodes.: [class_type…]}`` from ComfyUI's ``/object_info``."""
    found: dict[str, list[str]] = {}
    for class_type, info in (object_info or {}).items():
        module = info.get("python_module") if isinstance(info, dict) else None
        if isinstance(module, str) and module.startswith(PREFIX) and len(module) > len(PREFIX):
            found.setdefault(module[len(PREFIX):], []).append(str(class_type))
    return found


def _module_of(entry: str) -> str:
    return entry[:-3] if entry.endswith(".py") else entry


def _owner(module: str, modules: set[str]) -> str:
    """The folder a module belongs to: itself, or the longest folder name it starts with and a dot."""
    if module in modules:
        return module
    candidates = [name for name in modules if module.startswith(name + ".")]
    return max(candidates, key=len) if candidates else module.split(".", 1)[0]


class CheckoutCache:
    """git is asked once per pack until its HEAD or config changes, not on every page load."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[float, float], Checkout | None]] = {}

    def get(self, folder: Path) -> Checkout | None:
        git = folder / ".git"
        try:
            stamp = ((git / "HEAD").stat().st_mtime, (git / "config").stat().st_mtime) if git.is_dir() else \
                (git.stat().st_mtime, 0.0)
        except OSError:
            return None
        known = self._seen.get(folder)
        if known and known[0] == stamp:
            return known[1]
        found = read_checkout(folder)
        self._seen[folder] = (stamp, found)
        return found


def _source(folder: Path) -> dict[str, Any] | None:
    """What Studio recorded when it installed this pack (registry id and version, or URL and commit)."""
    try:
        recorded = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8")[:20_000])
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    wanted = ("source", "url", "commit", "tag", "registry_id", "version", "installed_at")
    return {key: str(recorded[key])[:2000] if recorded.get(key) is not None else None for key in wanted}


def _entry(path: Path, name: str, *, enabled: bool, nodes: list[str], cache: CheckoutCache) -> dict[str, Any]:
    is_dir = path.is_dir()
    checkout = cache.get(path) if is_dir else None
    return {"name": name, "folder": True, "kind": "folder" if is_dir else "file", "enabled": enabled,
            "nodes": sorted(nodes)[:MAX_NODES_LISTED], "node_count": len(nodes),
            "git": {"remote": checkout.remote, "commit": checkout.commit} if checkout else None,
            "source": _source(path) if is_dir else None}


def list_packs(custom_nodes: Path | None, object_info: dict[str, Any] | None, cache: CheckoutCache) \
        -> list[dict[str, Any]]:
    by_module = nodes_by_module(object_info)
    entries: dict[str, Path] = {}
    if custom_nodes is not None and custom_nodes.is_dir():
        for path in sorted(custom_nodes.iterdir()):
            if path.name.startswith(".") or path.name in SKIPPED:
                continue
            if path.is_dir() or path.suffix == ".py" or path.name.endswith(".py.disabled"):
                entries[path.name] = path
    enabled_modules = {_module_of(name): name for name in entries if not name.endswith(DISABLED)}
    claimed: dict[str, list[str]] = {}
    for module, nodes in by_module.items():
        claimed.setdefault(_owner(module, set(enabled_modules)), []).extend(nodes)
    packs = []
    for name, path in entries.items():
        disabled = name.endswith(DISABLED)
        nodes = [] if disabled else claimed.pop(_module_of(name), [])
        packs.append(_entry(path, name, enabled=not disabled, nodes=nodes, cache=cache))
    aside = custom_nodes / DISABLED if custom_nodes is not None else None
    if aside is not None and aside.is_dir():
        for path in sorted(aside.iterdir()):
            if not path.name.startswith("."):
                packs.append({**_entry(path, path.name, enabled=False, nodes=[], cache=cache), "set_aside": True})
    for module, nodes in sorted(claimed.items()):
        packs.append({"name": module, "folder": False, "kind": None, "enabled": True, "nodes": sorted(nodes),
                      "node_count": len(nodes), "git": None, "source": None})
    return packs

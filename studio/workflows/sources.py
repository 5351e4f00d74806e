"""Where a UI-format workflow says its models and custom nodes come from.

ComfyUI's frontend saves a ``models`` list (top level, and per node in ``properties.models``) of
``{name, url, directory, hash?, hash_type?}``, and per node ``properties.cnr_id`` (its Comfy
Registry id), ``aux_id`` (``author/repo`` on GitHub) and ``ver``. The importer keeps them in the
manifest so "install missing" can fetch a model from where the author said, and name the
repository of a node pack that is not installed.
"""

from __future__ import annotations

from typing import Any

CORE_PACKS = {"comfy-core", ""}


def model_sources(ui: dict[str, Any]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    listed = _list(ui.get("models"))
    for node in _all_nodes(ui):
        listed += _list(_dict(node.get("properties")).get("models"))
    for item in listed:
        if not isinstance(item, dict) or not item.get("name") or not str(item.get("url", "")).startswith("http"):
            continue
        entry = {"name": str(item["name"]).rsplit("/", 1)[-1], "url": str(item["url"]),
                 "directory": str(item.get("directory") or "")}
        if str(item.get("hash_type", "sha256")).lower() == "sha256" and _is_sha256(item.get("hash")):
            entry["sha256"] = str(item["hash"]).lower()
        found.setdefault(entry["name"], entry)
    return list(found.values())


def node_sources(ui: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{class_type: {cnr_id?, aux_id?, ver?}}`` for nodes that are not ComfyUI's own."""
    found: dict[str, dict[str, str]] = {}
    for node in _all_nodes(ui):
        properties = _dict(node.get("properties"))
        cnr_id, aux_id = str(properties.get("cnr_id") or ""), str(properties.get("aux_id") or "")
        if (cnr_id in CORE_PACKS and not aux_id) or not node.get("type"):
            continue
        entry = {k: str(v) for k, v in (("cnr_id", cnr_id), ("aux_id", aux_id), ("ver", properties.get("ver")))
                 if v}
        found.setdefault(str(node["type"]), entry)
    return found


def repository(source: dict[str, str] | None) -> str | None:
    """A page where the pack can be found: GitHub for ``aux_id``, else the Comfy Registry."""
    if not source:
        return None
    if source.get("aux_id") and source["aux_id"].count("/") == 1:
        return f"https://github.com/{source['aux_id']}"
    if source.get("cnr_id"):
        return f"https://registry.comfy.org/nodes/{source['cnr_id']}"
    return None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _all_nodes(ui: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [n for n in _list(ui.get("nodes")) if isinstance(n, dict)]
    for subgraph in _list(_dict(ui.get("definitions")).get("subgraphs")):
        if isinstance(subgraph, dict):
            nodes += [n for n in _list(subgraph.get("nodes")) if isinstance(n, dict)]
    return nodes


def _is_sha256(value: Any) -> bool:
    text = str(value or "")
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)

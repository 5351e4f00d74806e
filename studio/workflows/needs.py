"""What a workflow lacks, and where each missing model can come from.

In order: a catalog entry; the workflow's own ``models[]`` (a URL, maybe a hash, saved by ComfyUI's
frontend); CivitAI by the file's SHA-256 when one is known; CivitAI by name. Missing custom nodes
are listed by class name with the repository the workflow names (``cnr_id`` / ``aux_id``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from studio.downloads.civitai import CivitaiLookup, version_url
from studio.downloads.manager import DownloadManager
from studio.models.catalog import Catalog, find_entry
from studio.nodepacks.suggest import install_request
from studio.workflows.manifest import Manifest
from studio.workflows.sources import repository

CIVITAI_DOWNLOAD = re.compile(r"/api/download/models/(\d+)")


@dataclass
class Install:
    file: str
    name: str
    dest: str
    size_gb: float
    source: str
    url: str
    sha256: str | None
    via: str  # catalog | workflow | civitai_hash | civitai_name


def plan(ready: dict[str, Any], manifest: Manifest, catalogs: dict[str, Catalog], downloads: DownloadManager,
         civitai: CivitaiLookup | None) -> tuple[dict[str, Any], list[Install]]:
    installs: list[Install] = []
    unknown: list[str] = []
    folders = {m["name"]: m.get("folder") for m in ready.get("models", [])}
    for name in ready.get("missing_models", []):
        found = resolve(name, folders.get(name), manifest, catalogs, downloads, civitai)
        installs.append(found) if found else unknown.append(name)
    nodes = [{"class_type": class_type, **manifest.node_sources.get(class_type, {}),
              "repository": repository(manifest.node_sources.get(class_type)),
              # A body for POST /api/nodepacks/plan, only when the workflow pins the pack (studio/nodepacks).
              **({"install": pinned} if (pinned := install_request(manifest.node_sources.get(class_type))) else {})}
             for class_type in ready.get("missing_nodes", [])]
    answer = {"missing_nodes": ready.get("missing_nodes", []), "nodes": nodes,
              "resolvable": [asdict(i) for i in installs], "unknown": unknown,
              "total_gb": round(sum(i.size_gb for i in installs), 3),
              "unknown_size": [i.file for i in installs if not i.size_gb]}
    return answer, installs


def resolve(name: str, folder: str | None, manifest: Manifest, catalogs: dict[str, Catalog],
            downloads: DownloadManager, civitai: CivitaiLookup | None) -> Install | None:
    sub_folder, _, file_name = name.replace("\\", "/").rpartition("/")
    dest = "/".join(part for part in (folder or "", sub_folder) if part)
    entry = find_entry(catalogs, file_name)
    if entry is not None and (url := downloads.source_url(entry)):
        return Install(entry.file, entry.name, entry.dest, entry.size_gb, entry.source, url, entry.sha256, "catalog")
    listed = next((s for s in manifest.model_sources if s.get("name") == file_name), None)
    if listed is not None:
        source, url = _classify(str(listed["url"]), downloads)
        return Install(file_name, file_name, str(listed.get("directory") or dest), 0.0, source, url,
                       listed.get("sha256"), "workflow")
    if civitai is None:
        return None
    known_hash = (entry.sha256 if entry else None)
    hit = (civitai.by_hash(known_hash) if known_hash else None) or civitai.by_name(file_name, folder)
    if hit is None:
        return None
    return Install(file_name, hit["name"], dest, hit["size_gb"], "civitai",
                   version_url(downloads.civitai_endpoint, hit["version_id"]), hit["sha256"], hit["via"])


def _classify(url: str, downloads: DownloadManager) -> tuple[str, str]:
    """A workflow's model URL as a download source: Hugging Face and CivitAI get their own handling."""
    parts = urlsplit(url)
    hub_hosts = {"huggingface.co", urlsplit(downloads.hf_endpoint).hostname}
    if parts.hostname in hub_hosts and "/resolve/" in parts.path:
        return "huggingface", url
    civitai_hosts = {"civitai.com", "civitai.red", urlsplit(downloads.civitai_endpoint).hostname}
    if parts.hostname in civitai_hosts and (match := CIVITAI_DOWNLOAD.search(parts.path)):
        return "civitai", version_url(downloads.civitai_endpoint, int(match.group(1)))
    return "url", url

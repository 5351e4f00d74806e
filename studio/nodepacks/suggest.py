"""Which install a missing node's pack would be, from what ComfyUI's frontend saved in the workflow.

The frontend saves per node ``cnr_id`` (the Comfy Registry id of its pack), ``aux_id``
(``owner/repo`` on GitHub, for packs not in the registry) and ``ver`` (the registry version, or the
git commit of a checkout). That is how the registry maps a node type to its pack for a workflow;
a plan request is offered only when it pins something: a registry id (its version, or the latest)
or a GitHub repository with a full commit.
"""

from __future__ import annotations

import re
from typing import Any

from studio.nodepacks.names import COMMIT, REGISTRY_ID, REGISTRY_VERSION

CORE = {"comfy-core", ""}
GITHUB_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
SEMVER = re.compile(r"\d+\.\d+(\.\d+)?([.+-][0-9A-Za-z.+-]*)?")


def install_request(source: dict[str, str] | None) -> dict[str, Any] | None:
    """A body for ``POST /api/nodepacks/plan`` that installs this pack, or None when none is known."""
    if not source:
        return None
    cnr_id, aux_id, ver = source.get("cnr_id", ""), source.get("aux_id", ""), source.get("ver", "")
    if cnr_id not in CORE and REGISTRY_ID.fullmatch(cnr_id):
        pinned = ver if SEMVER.fullmatch(ver) and REGISTRY_VERSION.fullmatch(ver) else None
        return {"source": "registry", "id": cnr_id, "version": pinned}
    if GITHUB_REPO.fullmatch(aux_id) and ".." not in aux_id and COMMIT.fullmatch(ver.lower()):
        return {"source": "git", "url": f"https://github.com/{aux_id}", "commit": ver.lower()}
    return None

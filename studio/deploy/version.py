"""version.json as the original writes it: per-component versions, compared the way it compares them.

Integers compare directly, semver strings as tuples of numbers, and a type mismatch counts as an
update (the original's rule: a component that changed its kind of version was rebuilt). ``runtime``
is the image's business, never a component to copy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from studio.jsonio import loads

MAX_VERSION_FILE_BYTES = 256 * 1024
# The components Studio copies, in the order a person reads them; runtime is the image.
COMPONENTS = ("backend", "frontend", "models", "loras", "llm_models", "workflows")
CATALOG_COMPONENTS = {"models": "models.json", "loras": "loras.json", "llm_models": "llm.json"}
_SEMVER = re.compile(r"^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?")


class VersionFileError(ValueError):
    """A version.json that cannot be used; the message says why, for the log and the page."""


@dataclass(frozen=True)
class VersionFile:
    raw: dict[str, Any]

    @property
    def app_version(self) -> str:
        return str(self.raw.get("app_version") or "0")

    @property
    def min_runtime(self) -> int:
        value = self.raw.get("min_runtime", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def components(self) -> dict[str, dict[str, Any]]:
        found = self.raw.get("components")
        if not isinstance(found, dict):
            return {}
        return {name: entry for name, entry in found.items() if isinstance(entry, dict)}

    def version_of(self, component: str) -> Any:
        return self.components.get(component, {}).get("version")


def parse_version_file(data: bytes | str) -> VersionFile:
    if len(data) > MAX_VERSION_FILE_BYTES:
        raise VersionFileError("version.json is larger than 256 KiB")
    try:
        raw = loads(data)
    except (ValueError, RecursionError) as err:
        raise VersionFileError(f"version.json is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise VersionFileError("version.json is not a JSON object")
    return VersionFile(raw)


def dump_version_file(version: VersionFile) -> bytes:
    return (json.dumps(version.raw, indent=2, ensure_ascii=False) + "\n").encode()


def _as_tuple(text: str) -> tuple[int, ...] | None:
    match = _SEMVER.match(text.strip())
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def is_newer(local: Any, remote: Any) -> bool:
    """Whether ``remote`` replaces ``local`` by the original's rules."""
    if remote is None:
        return False
    if local is None:
        return True
    if isinstance(local, bool) or isinstance(remote, bool):
        return local != remote
    if isinstance(local, int) and isinstance(remote, int):
        return remote > local
    if isinstance(local, str) and isinstance(remote, str):
        mine, theirs = _as_tuple(local), _as_tuple(remote)
        if mine is None or theirs is None:
            return local != remote
        return theirs > mine
    return True  # a type mismatch forces an update


def compare(local: VersionFile | None, remote: VersionFile) -> list[dict[str, Any]]:
    """One row per component: what runs here, what the repository has, whether it is an update."""
    rows = []
    for name in COMPONENTS:
        theirs = remote.components.get(name)
        if theirs is None:
            continue
        mine = local.version_of(name) if local else None
        rows.append({"component": name, "local": mine, "remote": theirs.get("version"),
                     "date": theirs.get("date"), "update": is_newer(mine, theirs.get("version"))})
    return rows


def merged_version(local: VersionFile | None, remote: VersionFile, taken: set[str]) -> VersionFile:
    """The version.json to write after an update: skipped components keep their local entry."""
    raw = dict(remote.raw)
    components = dict(remote.components)
    for name in COMPONENTS:
        if name in taken:
            continue
        if local is not None and name in local.components:
            components[name] = local.components[name]
        else:
            components.pop(name, None)
    raw["components"] = components
    return VersionFile(raw)


def runtime_blocked(remote: VersionFile, runtime_version: int) -> str | None:
    """The sentence shown when the repository needs a newer image than this one, else None."""
    if remote.min_runtime > runtime_version:
        return (f"This version needs Docker image runtime v{remote.min_runtime} (this image is "
                f"v{runtime_version}): pull the newer image and restart the pod, then update.")
    return None

"""CivitAI files: a model version id → its primary file, with CivitAI's own SHA-256; and the lookups
"where can this file a workflow needs be had?" by hash and by name.

All the talking goes through ``studio.civitai.client`` (timeouts, retries, 429, the key only for
CivitAI's own hosts); this module turns its answers and failures into what the download queue and
the workflow "what is missing" planner need. The version is asked again before every download
attempt (download links redirect to signed storage URLs that expire), so that call skips the cache.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import requests

from studio.civitai.client import CivitaiClient
from studio.civitai.errors import (
    CivitaiEarlyAccess,
    CivitaiError,
    CivitaiLoginRequired,
    CivitaiNotFound,
    CivitaiRateLimited,
    CivitaiUnavailable,
)
from studio.downloads.transfer import FatalTransferError, TransferError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_SIZE_GB = 10_000_000


def _sha(value: Any) -> str | None:
    """CivitAI's SHA-256 of a file, only when it is one (an answer is not trusted to be well-formed)."""
    text = str(value or "").strip().lower()
    return text if SHA256.match(text) else None


def _size_gb(size_kb: Any) -> float:
    try:
        size = float(size_kb or 0) / 1024 / 1024
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return round(size, 3) if math.isfinite(size) and 0 <= size <= MAX_SIZE_GB else 0.0


# CivitAI's version details are public; a model whose creator requires a login refuses the download
# itself (401), which the manager turns into this sentence too.
LOGIN_WANTED = "CivitAI wants a login for this model: set a CivitAI API key in Settings."


def version_url(endpoint: str, version_id: int) -> str:
    return f"{endpoint.rstrip('/')}/api/download/models/{version_id}"


def resolve_civitai_file(
    session: requests.Session, endpoint: str, version_id: int, tokens: dict[str, str], expected_sha256: str | None
) -> tuple[str, str | None]:
    """(the URL to fetch, the SHA-256 to check it against). The queue owns retries and backoff
    across attempts, so this asks once: an outage or a 429 becomes a retryable ``TransferError``."""
    client = CivitaiClient(endpoint, lambda: tokens, session=session, timeout=(10, 30), retries=0)
    try:
        version = client.version(version_id, cached=False)
    except CivitaiNotFound:
        raise FatalTransferError(f"CivitAI has no model version {version_id}.") from None
    except CivitaiLoginRequired:
        raise FatalTransferError(LOGIN_WANTED) from None
    except CivitaiEarlyAccess as err:
        raise FatalTransferError(err.message) from None
    except (CivitaiUnavailable, CivitaiRateLimited) as err:
        raise TransferError(err.message) from None
    except CivitaiError as err:
        raise TransferError(err.message) from None
    if version.get("earlyAccessEndsAt") and not tokens:
        raise FatalTransferError("This model is in early access on CivitAI: it needs a CivitAI API key "
                                 "of an account that has access.")
    files = [f for f in version.get("files") or [] if isinstance(f, dict)]
    primary = next((f for f in files if f.get("primary")), files[0] if files else None)
    if primary is None:
        raise FatalTransferError(f"CivitAI's model version {version_id} has no files.")
    hashes = primary.get("hashes")
    sha = _sha(hashes.get("SHA256") if isinstance(hashes, dict) else None)
    download = primary.get("downloadUrl")
    if not isinstance(download, str) or not download.startswith(("https://", "http://")):
        download = version_url(endpoint, version_id)
    return download, expected_sha256 or sha


# Model folder → the CivitAI model types that belong in it (for the name search).
FOLDER_TYPES = {"checkpoints": "Checkpoint", "loras": "LORA,LoCon,DoRA", "embeddings": "TextualInversion",
                "vae": "VAE", "controlnet": "Controlnet", "upscale_models": "Upscaler"}


def _words(text: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text.rsplit(".", 1)[0] if "." in text[-13:] else text)
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if len(w) > 1}


class CivitaiLookup:
    """Finds a CivitAI model version for a file a workflow needs: by its SHA-256, else by name.

    A name match needs the exact file name, or at least 60 % of the wanted name's words and at
    least two of them in the model's or version's name (the original's rule, which keeps
    "detail" from matching every detail LoRA). It asks through the app's one client, whose cache
    remembers the answers for a while: "What is missing?" followed by "Download" asks the same
    questions twice. A lookup that fails (CivitAI down, rate limited) finds nothing this time.
    """

    def __init__(self, client: CivitaiClient) -> None:
        # A person waits on this: one quick retry, and once CivitAI is found down or limiting, the
        # rest of this lookup does not ask again (a workflow with ten unknown files would wait ten times).
        self.client = client.with_options(retries=1, backoff_s=0.5, max_retry_after_s=5.0)
        self.down = False

    def _ask(self, call: Callable[[], Any]) -> Any:
        if self.down:
            return None
        try:
            return call()
        except (CivitaiUnavailable, CivitaiRateLimited):
            self.down = True
            return None
        except CivitaiError:
            return None

    def by_hash(self, sha256: str) -> dict[str, Any] | None:
        version = self._ask(lambda: self.client.version_by_hash(sha256))
        if not isinstance(version, dict) or not version.get("id"):
            return None
        wanted = next((f for f in _dicts(version.get("files"))
                       if _sha((_dict(f.get("hashes"))).get("SHA256")) == sha256.lower()), None)
        return _found(version, wanted, "civitai_hash")

    def by_name(self, file_name: str, folder: str | None) -> dict[str, Any] | None:
        wanted = _words(file_name)
        if len(wanted) < 2 and "." not in file_name:
            return None
        query = " ".join(sorted(wanted, key=file_name.lower().find))
        answer = self._ask(lambda: self.client.search_models(query, types=FOLDER_TYPES.get(folder or ""), limit=3))
        for model in _dicts(_dict(answer).get("items")):
            for version in _dicts(model.get("modelVersions")):
                version = {**version, "model": {"name": model.get("name"), "type": model.get("type")}}
                exact = next((f for f in _dicts(version.get("files")) if f.get("name") == file_name), None)
                if exact is not None:
                    return _found(version, exact, "civitai_name")
                shared = wanted & (_words(str(model.get("name", ""))) | _words(str(version.get("name", ""))))
                if len(shared) >= 2 and len(shared) >= 0.6 * len(wanted):
                    return _found(version, None, "civitai_name")
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _found(version: dict[str, Any], wanted: dict[str, Any] | None, via: str) -> dict[str, Any] | None:
    """What a lookup found, or None when CivitAI's answer is not usable (it is not trusted to be)."""
    files = _dicts(version.get("files"))
    chosen = wanted or next((f for f in files if f.get("primary")), files[0] if files else None)
    if not isinstance(chosen, dict):
        return None
    version_id = version.get("id")
    if not isinstance(version_id, int) or isinstance(version_id, bool) or not 0 < version_id <= 2**53:
        return None
    model = _dict(version.get("model"))
    name = str(model.get("name") or chosen.get("name") or "")[:255]
    if not name:
        return None
    hashes = chosen.get("hashes")
    return {"version_id": version_id, "name": name, "size_gb": _size_gb(chosen.get("sizeKB")),
            "sha256": _sha(hashes.get("SHA256") if isinstance(hashes, dict) else None), "via": via}

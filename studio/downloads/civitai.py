"""CivitAI files: a model version id → its primary file, with CivitAI's own SHA-256.

Asked again before every attempt (download links redirect to signed storage URLs that expire).
The API key is sent as a Bearer header to CivitAI's hosts only; the storage host never sees it,
and it never goes into a URL, where it would end up in logs and error messages.
"""

from __future__ import annotations

from typing import Any

import requests

from studio.downloads.transfer import FatalTransferError, TransferError, auth_headers


def version_url(endpoint: str, version_id: int) -> str:
    return f"{endpoint.rstrip('/')}/api/download/models/{version_id}"


def resolve_civitai_file(
    session: requests.Session, endpoint: str, version_id: int, tokens: dict[str, str], expected_sha256: str | None
) -> tuple[str, str | None]:
    url = f"{endpoint.rstrip('/')}/api/v1/model-versions/{version_id}"
    try:
        response = session.get(url, headers=auth_headers(url, tokens), timeout=(10, 30))
    except requests.RequestException as err:
        raise TransferError(f"{type(err).__name__} while asking CivitAI") from None
    if response.status_code == 401:
        raise FatalTransferError("CivitAI wants a login for this model: set a CivitAI API key in Settings.")
    if response.status_code == 404:
        raise FatalTransferError(f"CivitAI has no model version {version_id}.")
    if response.status_code >= 400:
        raise TransferError(f"CivitAI answered {response.status_code}")
    try:
        version: dict[str, Any] = response.json()
    except ValueError as err:
        raise TransferError("CivitAI's answer was not JSON") from err
    if version.get("earlyAccessEndsAt") and not tokens:
        raise FatalTransferError("This model is in early access on CivitAI: it needs a CivitAI API key "
                                 "of an account that has access.")
    files = version.get("files") or []
    primary = next((f for f in files if f.get("primary")), files[0] if files else None)
    if primary is None:
        raise FatalTransferError(f"CivitAI's model version {version_id} has no files.")
    sha = str((primary.get("hashes") or {}).get("SHA256") or "").lower() or None
    download = str(primary.get("downloadUrl") or version_url(endpoint, version_id))
    return download, expected_sha256 or sha

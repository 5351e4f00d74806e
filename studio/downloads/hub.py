"""Hugging Face files: resolved through huggingface-hub before every attempt.

``get_hf_file_metadata`` follows the Hub's own redirects and stops at the storage (CDN) URL, so
the token goes to the Hub and never to the storage host (the download itself sends it only to the
exact API hosts in ``credentials.py``: ``cdn-lfs.hf.co`` and the like never see it); the LFS ETag
is the file's SHA-256, checked when the file is complete.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx2
from huggingface_hub import get_hf_file_metadata
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from studio.downloads.transfer import FatalTransferError, TransferError

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def hub_url(endpoint: str, repo: str, file_name: str, revision: str = "main") -> str:
    """The Hub's ``resolve`` URL; the file's path is quoted (a ``#`` or ``?`` in a name stays a name)."""
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quote(file_name, safe='/')}"


def resolve_hub_file(url: str, token: str | None,
                     expected_sha256: str | None) -> tuple[str, str | None, str | None]:
    """(URL to download now, expected SHA-256, the commit it comes from) for a Hub ``resolve`` URL."""
    try:
        meta = get_hf_file_metadata(url, token=token or False, timeout=15, retry_on_errors=True)
    except GatedRepoError as err:
        raise FatalTransferError("This Hugging Face repository is gated: accept its terms on the Hub and set "
                                 "a Hugging Face token in Settings.") from err
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise FatalTransferError("Hugging Face has no such repository or revision, or it is private and "
                                 "needs a token.") from err
    except EntryNotFoundError as err:
        raise FatalTransferError("The Hugging Face repository has no such file.") from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise FatalTransferError("Hugging Face refused access: set a valid token in Settings.") from err
        raise TransferError(f"Hugging Face answered {status}") from err
    except httpx2.HTTPError as err:
        raise TransferError(f"{type(err).__name__} while asking Hugging Face") from err
    etag = (meta.etag or "").lower()
    return meta.location, expected_sha256 or (etag if SHA256.match(etag) else None), meta.commit_hash

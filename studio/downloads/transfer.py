"""One file over HTTP: resumed from ``<file>.part`` with Range, hashed while it streams, checked
before an atomic rename into place.

The hash covers the bytes already on disk too (they are read once when resuming), so a resumed
file is verified exactly like one fetched in a single go. A server that ignores Range, or answers
for a different file, makes the transfer start over cleanly instead of gluing two files together.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3

CHUNK = 1024 * 1024


class TransferError(Exception):
    """A failure worth retrying (network, 5xx, a short read)."""


class FatalTransferError(Exception):
    """A failure retrying cannot fix (401, 404, hash mismatch, not enough space)."""


class DiskFull(FatalTransferError):
    """The disk filled up while writing: the partial file is kept for a later resume."""


class Stopped(Exception):
    """Paused or cancelled by a person."""


@dataclass(frozen=True)
class Stall:
    """The watchdog: fewer than ``min_bytes`` within ``window_s`` drops the connection and retries
    (a fresh connection, and for Hugging Face and CivitAI a freshly signed URL)."""

    window_s: float = 60.0
    min_bytes: int = 1024 * 1024


@dataclass
class Progress:
    bytes_done: int
    total: int | None
    speed: float


def auth_headers(url: str, tokens: dict[str, str]) -> dict[str, str]:
    """The token for this URL's host, if there is one; never anyone else's."""
    host = (urlsplit(url).hostname or "").lower()
    for suffix, token in tokens.items():
        if host == suffix or host.endswith("." + suffix):
            return {"Authorization": f"Bearer {token}"}
    return {}


def _hash_existing(path: Path) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest, size


def fetch(
    session: requests.Session,
    url: str,
    target: Path,
    *,
    tokens: dict[str, str],
    expected_sha256: str | None,
    should_stop: Callable[[], bool],
    report: Callable[[Progress], None],
    free_bytes: Callable[[], int],
    margin: int,
    stall: Stall | None = None,
    verifying: Callable[[bool], None] = lambda _: None,
) -> str:
    """Downloads ``url`` to ``target``; returns the file's SHA-256. Raises the errors above.

    ``verifying(True)`` / ``verifying(False)`` bracket re-reading a partial file, which for a
    20 GB model takes a while and should not look like a stuck download.
    """
    stall = stall or Stall()
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    if part.is_file() and part.stat().st_size:
        verifying(True)
        digest, offset = _hash_existing(part)
        verifying(False)
    else:
        digest, offset = hashlib.sha256(), 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _get(session, url, headers, tokens)
    except requests.RequestException as err:
        raise TransferError(f"{type(err).__name__} while connecting") from None
    with response:
        if response.status_code == 416 and offset:
            total = _content_range_total(response.headers.get("Content-Range", ""))
            if total == offset:  # the part file already holds the whole thing
                return _finish(part, target, digest, expected_sha256)
            response.close()
            part.unlink()
            raise TransferError("the partial file did not match the server's file; starting over")
        if response.status_code in (401, 403):
            raise FatalTransferError(f"The server refused access (HTTP {response.status_code}): "
                                     "a token or login is needed.")
        if response.status_code == 404:
            raise FatalTransferError("The server has no such file (HTTP 404).")
        if response.status_code >= 400:
            raise TransferError(f"HTTP {response.status_code}")
        if offset and response.status_code == 200:  # Range ignored: start over
            digest, offset = hashlib.sha256(), 0
            part.write_bytes(b"")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if total is not None and total - offset + margin > free_bytes():
            raise FatalTransferError(f"Not enough disk space: {total - offset} more bytes are needed, "
                                     f"{free_bytes()} are free.")
        started, done, last_report = time.monotonic(), offset, 0.0
        window_start, window_done = started, done
        with part.open("ab" if offset else "wb") as handle:
            try:
                # read1 hands over whatever arrived, so a trickling server is noticed below; a silent
                # one runs into the read timeout.
                while chunk := response.raw.read1(CHUNK, decode_content=True):
                    if should_stop():
                        raise Stopped
                    handle.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if now - last_report > 0.5:
                        report(Progress(done, total, (done - offset) / max(now - started, 1e-6)))
                        last_report = now
                    if now - window_start >= stall.window_s:
                        if done - window_done < stall.min_bytes:
                            raise TransferError(f"stalled: {done - window_done} bytes in the last "
                                                f"{stall.window_s:g} s; reconnecting")
                        window_start, window_done = now, done
            except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
                # before OSError: requests' errors are OSErrors too
                raise TransferError(f"{type(err).__name__} while downloading") from None
            except OSError as err:
                if err.errno == errno.ENOSPC:
                    raise DiskFull("The disk filled up: the download is paused and its partial file kept. "
                                   "Free some space, then resume.") from None
                raise
        report(Progress(done, total, 0.0))
        if total is not None and done != total:
            raise TransferError(f"the connection ended after {done} of {total} bytes")
    return _finish(part, target, digest, expected_sha256)


def _get(session: requests.Session, url: str, headers: dict[str, str], tokens: dict[str, str]) -> requests.Response:
    """Follows redirects by hand so a token is only ever sent to its own host."""
    for _ in range(10):
        # identity: the bytes on disk are the bytes hashed, and Range offsets mean file offsets.
        wanted = {**headers, **auth_headers(url, tokens), "Accept-Encoding": "identity"}
        response = session.get(url, headers=wanted, stream=True, timeout=(10, 60), allow_redirects=False)
        if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            url = requests.compat.urljoin(url, response.headers["Location"])
            response.close()
            continue
        return response
    raise TransferError("too many redirects")


def _content_range_total(header: str) -> int | None:
    total = header.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _finish(part: Path, target: Path, digest: hashlib._Hash, expected: str | None) -> str:
    found = digest.hexdigest()
    if expected and found.lower() != expected.lower():
        quarantine = target.parent / ".quarantine"
        quarantine.mkdir(exist_ok=True)
        os.replace(part, quarantine / target.name)
        raise FatalTransferError(f"The file's SHA-256 is {found}, not the expected {expected.lower()}: "
                                 f"it was moved to {quarantine.name}/ and not used.")
    os.replace(part, target)
    return found

"""One file over HTTP: resumed from ``<file>.part`` with Range, hashed while it streams, checked
before an atomic rename into place.

The hash covers the bytes already on disk too (they are read once when resuming), so a resumed
file is verified exactly like one fetched in a single go. A resumed request carries ``If-Range``
with the validator (a strong ``ETag``, else ``Last-Modified``) the first response gave: a server
whose file changed in between answers 200 with the whole new file, and the transfer starts over
from zero instead of gluing two files together. A 206 whose validator, start or total disagree
with what was kept (a server that ignores ``If-Range``) also starts over.

Every write, rename and removal goes through ``studio.safepath`` below the models folder: no
component may be a symlink (a planted ``X.part`` or ``.quarantine`` link makes the download fail,
it never writes elsewhere), and a partial file with other hard links is refused too.

Durable on power loss: a fresh partial file's name is fsynced into its folder (a resume after a
power cut finds what was kept), and a finished one is fsynced before its rename into place, the
folder after it: the model is whole under its name or still ``.part``, never a torn file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

import requests
import urllib3

from studio.downloads.credentials import auth_headers, token_for
from studio.safepath import (
    UnsafePath,
    makedirs_inside,
    open_inside,
    parent_fd,
    replace_inside,
    sync_inside,
    sync_parent,
    unlink_inside,
)

CHUNK = 1024 * 1024
MAX_VALIDATOR = 512

__all__ = ["auth_headers", "fetch", "Fetched", "Progress", "Stall", "TransferError", "FatalTransferError",
           "DiskFull", "Stopped", "validator_of"]


class TransferError(Exception):
    """A failure worth retrying (network, 5xx, a short read)."""


class FatalTransferError(Exception):
    """A failure retrying cannot fix (401, 404, hash mismatch, not enough space)."""


class AccessRefused(FatalTransferError):
    """The file's server wants a login or token (401/403): the caller knows which service that is."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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


@dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int
    path: Path


def validator_of(response: requests.Response) -> str | None:
    """What ``If-Range`` may carry for this response: a strong ETag, else Last-Modified, else None.

    A weak ETag (``W/"…"``) is not allowed in ``If-Range``, so it falls back to the date.
    """
    etag = (response.headers.get("ETag") or "").strip()
    if len(etag) >= 2 and etag.startswith('"') and etag.endswith('"') and len(etag) <= MAX_VALIDATOR:
        return etag
    modified = (response.headers.get("Last-Modified") or "").strip()
    if modified and len(modified) <= 100:
        try:
            parsedate_to_datetime(modified)
        except (TypeError, ValueError):
            return None
        return modified
    return None


def _disagrees(stored: str | None, response: requests.Response) -> bool:
    """True when a 206 names another version of the file than the one the partial file came from."""
    if not stored:
        return False
    if stored.startswith('"'):
        etag = (response.headers.get("ETag") or "").strip()
        return etag.startswith('"') and etag != stored
    modified = (response.headers.get("Last-Modified") or "").strip()
    return bool(modified) and modified != stored


def _content_range(header: str) -> tuple[int | None, int | None]:
    """(first byte, total) of ``bytes first-last/total``; None for what is missing."""
    unit, _, spec = header.strip().partition(" ")
    if unit.lower() != "bytes":
        return None, None
    span, _, total = spec.partition("/")
    first = span.partition("-")[0].strip()
    return (int(first) if first.isdigit() else None), (int(total) if total.strip().isdigit() else None)


def _check_alone(handle: IO[Any], path: Path) -> os.stat_result:
    """A partial file with another hard link could be someone else's file: never written to."""
    info = os.fstat(handle.fileno())
    if info.st_nlink > 1:
        raise UnsafePath(errno.EMLINK, "the partial file has other hard links", os.fspath(path))
    return info


def _hash_existing(root: Path, part: Path, verifying: Callable[[bool], None]) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        handle = open_inside(root, part, "rb")
    except FileNotFoundError:
        return digest, 0
    with handle:
        if not _check_alone(handle, part).st_size:
            return digest, 0
        verifying(True)
        try:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        finally:
            verifying(False)
    return digest, size


def _fresh_part(root: Path, part: Path) -> IO[Any]:
    """An empty partial file: whatever had that name (a link included) is removed, never followed."""
    unlink_inside(root, part)
    handle = open_inside(root, part, "xb")
    try:
        sync_parent(root, part)
    except BaseException:
        handle.close()
        raise
    return handle


def _resumed_part(root: Path, part: Path, offset: int) -> IO[Any]:
    handle = open_inside(root, part, "ab")
    try:
        if _check_alone(handle, part).st_size != offset:
            raise TransferError("the partial file changed while resuming; starting over")
    except BaseException:
        handle.close()
        raise
    return handle


def fetch(
    session: requests.Session,
    url: str,
    target: Path | None,
    *,
    root: Path,
    tokens: dict[str, str],
    expected_sha256: str | None,
    should_stop: Callable[[], bool],
    report: Callable[[Progress], None],
    free_bytes: Callable[[], int],
    margin: int,
    stall: Stall | None = None,
    verifying: Callable[[bool], None] = lambda _: None,
    validator: str | None = None,
    known_total: int | None = None,
    remember: Callable[[str | None], None] = lambda _: None,
    name_file: Callable[[requests.Response], Path] | None = None,
) -> Fetched:
    """Downloads ``url`` to ``target`` (below ``root``); returns its SHA-256, size and path.

    ``verifying(True)`` / ``verifying(False)`` bracket re-reading a partial file, which for a
    20 GB model takes a while and should not look like a stuck download. ``validator`` and
    ``known_total`` are what the response that started the partial file said (``remember`` is
    called with the new validator whenever a transfer starts from zero, before any byte is written).
    A ``target`` of None is named by ``name_file`` from the first good answer (its headers), before
    any byte is written.
    """
    stall = stall or Stall()
    digest, offset = hashlib.sha256(), 0
    if target is not None:
        makedirs_inside(root, target.parent)
        digest, offset = _hash_existing(root, _part_of(target), verifying)
    while True:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        if offset and validator:
            headers["If-Range"] = validator
        try:
            response = _get(session, url, headers, tokens)
        except requests.RequestException as err:
            raise TransferError(f"{type(err).__name__} while connecting") from None
        if offset and response.status_code == 206:
            first, total = _content_range(response.headers.get("Content-Range", ""))
            if (first != offset or _disagrees(validator, response)
                    or (known_total is not None and total is not None and total != known_total)):
                response.close()  # another version of the file: the kept bytes are worthless
                assert target is not None  # only a kept partial file gives an offset
                unlink_inside(root, _part_of(target))
                digest, offset, validator, known_total = hashlib.sha256(), 0, None, None
                continue
        break
    with response:
        if response.status_code == 416 and offset:
            assert target is not None
            total = _content_range(response.headers.get("Content-Range", ""))[1]
            if total == offset and (known_total is None or known_total == total):
                return _finish(root, _part_of(target), target, digest, expected_sha256, offset)
            response.close()
            unlink_inside(root, _part_of(target))
            remember(None)
            raise TransferError("the partial file did not match the server's file; starting over")
        if response.status_code in (401, 403):
            raise AccessRefused(f"The server refused access (HTTP {response.status_code}): "
                                "a token or login is needed.", response.status_code)
        if response.status_code == 404:
            raise FatalTransferError("The server has no such file (HTTP 404).")
        if response.status_code >= 400:
            raise TransferError(f"HTTP {response.status_code}")
        if response.status_code >= 300:  # a redirect that names no address: its body is no model file
            raise FatalTransferError(f"The server answered HTTP {response.status_code} without saying where "
                                     "the file is.")
        if response.status_code != 206:  # a whole file: a fresh start, or Range refused, or the file changed
            digest, offset = hashlib.sha256(), 0
        if target is None:
            if name_file is None:
                raise ValueError("fetch needs a target or name_file")
            target = name_file(response)
            makedirs_inside(root, target.parent)
        part = _part_of(target)
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if response.status_code == 206:
            total = _content_range(response.headers.get("Content-Range", ""))[1] or total
        if total is not None and total - offset + margin > free_bytes():
            raise FatalTransferError(f"Not enough disk space: {total - offset} more bytes are needed, "
                                     f"{free_bytes()} are free.")
        if offset == 0:
            remember(validator_of(response))
        elif not validator:
            remember(validator_of(response))  # an older partial file: at least the rest is checked
        started, done, last_report = time.monotonic(), offset, 0.0
        window_start, window_done = started, done
        handle = _resumed_part(root, part, offset) if offset else _fresh_part(root, part)
        with handle:
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
    return _finish(root, part, target, digest, expected_sha256, done)


def _part_of(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _get(session: requests.Session, url: str, headers: dict[str, str], tokens: dict[str, str]) -> requests.Response:
    """Follows redirects by hand so a token is only ever sent to its own host.

    The host is read from the request as ``requests`` prepared it, the URL it really connects to.
    """
    for _ in range(10):
        # identity: the bytes on disk are the bytes hashed, and Range offsets mean file offsets.
        prepared = session.prepare_request(requests.Request(
            "GET", url, headers={**headers, "Accept-Encoding": "identity"}))
        token = token_for(prepared.url or "", tokens)
        if token:
            prepared.headers["Authorization"] = f"Bearer {token}"
        environment = session.merge_environment_settings(prepared.url, {}, True, None, None)
        response = session.send(prepared, timeout=(10, 60), allow_redirects=False, **environment)
        if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            url = requests.compat.urljoin(prepared.url or url, response.headers["Location"])
            response.close()
            continue
        return response
    raise TransferError("too many redirects")


def _leaf_is_link(root: Path, path: Path) -> bool:
    """True when ``path`` exists and is not a regular file (a symlink, a folder): never replaced."""
    with parent_fd(root, path) as (fd, leaf):
        try:
            info = os.stat(leaf, dir_fd=fd, follow_symlinks=False) if fd is not None else os.lstat(leaf)
        except FileNotFoundError:
            return False
    return not stat.S_ISREG(info.st_mode)


def _finish(root: Path, part: Path, target: Path, digest: hashlib._Hash, expected: str | None, size: int) -> Fetched:
    """Quarantined or renamed into place, its data fsynced first (this attempt may not have written
    it: a part found complete after a crash is synced here too)."""
    found = digest.hexdigest()
    sync_inside(root, part)
    if expected and found.lower() != expected.lower():
        quarantine = target.parent / ".quarantine"
        try:
            makedirs_inside(root, quarantine)
            replace_inside(root, part, quarantine / target.name)
        except UnsafePath:
            unlink_inside(root, part)
            raise FatalTransferError(
                f"The file's SHA-256 is {found}, not the expected {expected.lower()}. It was deleted, not "
                f"quarantined: {quarantine.name}/ is a symbolic link or not a folder, which Studio never "
                "follows.") from None
        raise FatalTransferError(f"The file's SHA-256 is {found}, not the expected {expected.lower()}: "
                                 f"it was moved to {quarantine.name}/ and not used.")
    if _leaf_is_link(root, target):
        raise UnsafePath(errno.ELOOP, "the target is a symbolic link or not a file", os.fspath(target))
    replace_inside(root, part, target)
    return Fetched(found, size, target)

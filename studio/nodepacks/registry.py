"""The Comfy Registry (``https://api.comfy.org``): which archive a node pack version is, and getting it safely.

``GET /nodes/{id}/install[?version=]`` answers a NodeVersion (``version``, ``downloadUrl`` of a zip,
``dependencies``, ``status``, ``deprecated``); ``GET /nodes/{id}`` the pack itself (``name``,
``repository``, ``description``). The archive is unpacked by us, member by member: no absolute
path, no ``..``, no link, and a bound on the unpacked size, so a hostile zip cannot write outside
its folder or fill the disk.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from studio.errors import NotFound, ServiceUnavailable, Unprocessable

TIMEOUT = (10, 60)
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
MAX_UNPACKED_BYTES = 2 * 1024 * 1024 * 1024
MAX_MEMBERS = 50_000
REFUSED_STATUSES = {"NodeVersionStatusDeleted", "NodeVersionStatusBanned"}


@dataclass
class RegistryVersion:
    node_id: str
    version: str
    download_url: str
    dependencies: list[str]
    deprecated: bool
    status: str
    name: str
    repository: str | None


class RegistryClient:
    def __init__(self, base_url: str, http: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or requests.Session()

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            answer = self.http.get(f"{self.base_url}{path}", params=params, timeout=TIMEOUT)
        except requests.RequestException as err:
            raise ServiceUnavailable(f"The Comfy Registry did not answer: {type(err).__name__}.",
                                     code="registry_unreachable") from err
        if answer.status_code == 404:
            raise NotFound("The Comfy Registry has no such node pack or version.", code="registry_not_found")
        if answer.status_code != 200:
            raise ServiceUnavailable(f"The Comfy Registry answered {answer.status_code}.", code="registry_failed")
        try:
            body = answer.json()
        except ValueError as err:
            raise ServiceUnavailable("The Comfy Registry's answer is not JSON.", code="registry_failed") from err
        if not isinstance(body, dict):
            raise ServiceUnavailable("The Comfy Registry's answer is not an object.", code="registry_failed")
        return body

    def version(self, node_id: str, version: str | None) -> RegistryVersion:
        """The pinned version to install (the latest when none is asked for), refused when deleted or banned."""
        path = f"/nodes/{quote(node_id, safe='')}"
        found = self._get(f"{path}/install", {"version": version} if version else None)
        node = self._get(path)
        url, number = found.get("downloadUrl"), found.get("version")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not isinstance(number, str):
            raise ServiceUnavailable("The Comfy Registry named no archive for this version.", code="registry_failed")
        status = str(found.get("status") or "")
        if status in REFUSED_STATUSES:
            marked = status.removeprefix("NodeVersionStatus").lower()
            raise Unprocessable(f"The Comfy Registry marks {node_id} {number} as {marked}: it will not be installed.",
                                code="registry_refused")
        dependencies = [str(d) for d in found.get("dependencies") or [] if isinstance(d, str)][:500]
        repository = node.get("repository")
        page = repository if isinstance(repository, str) and repository.startswith("https://") else None
        return RegistryVersion(node_id, number, url, dependencies, bool(found.get("deprecated")), status,
                               str(node.get("name") or node_id)[:200], page)

    def download(self, url: str, dest: Path) -> int:
        """The archive into ``dest`` (a file of ours), at most ``MAX_ARCHIVE_BYTES``; its size."""
        size = 0
        try:
            with self.http.get(url, stream=True, timeout=TIMEOUT) as answer:
                if answer.status_code != 200:
                    raise ServiceUnavailable(f"The node pack's archive answered {answer.status_code}.",
                                             code="registry_failed")
                with dest.open("wb") as out:
                    for chunk in answer.iter_content(chunk_size=1024 * 1024):
                        size += len(chunk)
                        if size > MAX_ARCHIVE_BYTES:
                            raise Unprocessable("The node pack's archive is larger than 512 MiB.",
                                                code="archive_too_large")
                        out.write(chunk)
        except requests.RequestException as err:
            raise ServiceUnavailable(f"The node pack's archive could not be downloaded: {type(err).__name__}.",
                                     code="registry_unreachable") from err
        return size


def unpack(archive: Path, dest: Path) -> None:
    """Every regular file and folder of the zip below ``dest``; anything that would leave it is refused."""
    try:
        with zipfile.ZipFile(archive) as opened:
            members = opened.infolist()
            if len(members) > MAX_MEMBERS:
                raise Unprocessable("The node pack's archive holds too many files.", code="bad_archive")
            if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise Unprocessable("The node pack's archive unpacks to more than 2 GiB.", code="bad_archive")
            for member in members:
                target = _member_path(dest, member)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(member) as source, target.open("xb") as out:
                    while chunk := source.read(1024 * 1024):
                        out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, FileExistsError) as err:
        raise Unprocessable("The node pack's archive is not a usable zip file.", code="bad_archive") from err


def _member_path(dest: Path, member: zipfile.ZipInfo) -> Path:
    name = PurePosixPath(member.filename.replace("\\", "/"))
    mode = member.external_attr >> 16
    if name.is_absolute() or ".." in name.parts or not name.parts or (mode and stat.S_ISLNK(mode)) \
            or any(":" in part or "\x00" in part for part in name.parts):
        raise Unprocessable("The node pack's archive holds a path that would leave its folder: "
                            f"{member.filename[:120]!r}.", code="bad_archive")
    return dest.joinpath(*name.parts)

"""What an admin may type to install a node pack: a folder name, a git URL, a commit or tag, a registry id.

Each reaches ``git`` or the file system, so each is refused before anything runs when it could be read
as something else: a URL or ref starting with ``-`` (an option such as ``--upload-pack``), git's
``ext::`` and other ``<transport>::`` helpers, a name with a path in it, control characters.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from studio.errors import BadRequest
from studio.safepath import name_problem

COMMIT = re.compile(r"[0-9a-f]{40}")
# A tag as git allows it, and less: no "..", no "@{", no leading "-" or "/", nothing git would read as an option.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+/-]{0,99}")
REGISTRY_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
REGISTRY_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
PACK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._ +-]{0,99}")
MAX_URL = 2000
# Folder names ComfyUI or Studio use inside custom_nodes for themselves.
RESERVED = {"__pycache__", ".disabled", "node_modules"}


def pack_name(name: str, *, field: str = "name") -> str:
    """A folder name in custom_nodes that stays one folder: no path, no dot files, real length limits."""
    problem = name_problem(name)
    if problem is None and not PACK_NAME.fullmatch(name):
        problem = "may hold only letters, digits, spaces and . _ + - (at most 100, not starting with . or -)"
    if problem is None and (name in RESERVED or name.lower().endswith(".disabled") or ".." in name):
        problem = "is a name ComfyUI keeps for itself"
    if problem:
        raise BadRequest(f"The {field} {name[:80]!r} {problem}.", fields={field: problem}, code="bad_pack_name")
    return name


def git_url(url: str) -> str:
    """``https://host/path`` or a local repository (an absolute path or ``file://``), else a 400."""
    problem = _url_problem(url)
    if problem:
        raise BadRequest(f"The repository URL {url[:120]!r} {problem}.", fields={"url": problem}, code="bad_git_url")
    return url


def _url_problem(url: str) -> str | None:
    if not url or len(url) > MAX_URL:
        return f"must be 1 to {MAX_URL} characters"
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        return "must not contain spaces or control characters"
    if url.startswith("-"):
        return "must not start with - (git would read it as an option)"
    if "::" in url:
        return "must not name a git transport helper (::)"
    if url.startswith("/"):
        return None if ".." not in Path(url).parts else "must not contain .."
    parts = urlsplit(url)
    if parts.scheme == "file":
        return None if parts.path.startswith("/") and ".." not in Path(unquote(parts.path)).parts else \
            "must be file:///an/absolute/path"
    if parts.scheme != "https":
        return "must start with https:// (or be a local path)"
    if not parts.hostname or parts.hostname.startswith("-"):
        return "must name a host"
    if parts.username or parts.password:
        return "must not hold a user name or password"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if not parts.path.strip("/"):
        return "must name a repository (https://host/owner/repo)"
    return None


def name_from_url(url: str) -> str:
    """The folder a clone of ``url`` would get: its last path part without ``.git``."""
    path = unquote(urlsplit(url).path if "://" in url else url).rstrip("/")
    last = path.rsplit("/", 1)[-1]
    return last[:-4] if last.endswith(".git") else last


def git_ref(ref: str) -> str:
    """A full 40-hex commit, or a tag to be resolved to one; nothing git could take as an option."""
    ref = ref.strip()
    if COMMIT.fullmatch(ref.lower()):
        return ref.lower()
    if TAG.fullmatch(ref) and ".." not in ref and "@{" not in ref and not ref.endswith((".lock", "/", ".")):
        return ref
    raise BadRequest("The commit must be a full 40-character commit hash or a tag name.",
                     fields={"commit": "40 hex characters or a tag"}, code="bad_commit")


def registry_id(value: str) -> str:
    if not REGISTRY_ID.fullmatch(value):
        raise BadRequest(f"The Comfy Registry id {value[:80]!r} is not one (lower-case letters, digits, . _ -).",
                         fields={"id": "a registry id such as comfyui-impact-pack"}, code="bad_registry_id")
    return value


def registry_version(value: str) -> str:
    if not REGISTRY_VERSION.fullmatch(value):
        raise BadRequest(f"The version {value[:80]!r} is not a registry version such as 1.2.3.",
                         fields={"version": "a version such as 1.2.3"}, code="bad_registry_version")
    return value

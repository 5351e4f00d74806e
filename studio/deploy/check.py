"""The update check: fetch the branch into ``.repo`` and compare its version.json with ours.

Used by the page's "check now", the supervisor's daily check and ``studio update --check``. One
git operation at a time on the clone (a lock file), whichever process asks.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from studio.deploy import gitrepo
from studio.deploy.layout import Layout, read_json, write_json
from studio.deploy.version import (
    VersionFile,
    VersionFileError,
    compare,
    parse_version_file,
    runtime_blocked,
)

MAX_CHANGELOG_BYTES = 16 * 1024


@dataclass(frozen=True)
class RepoSource:
    url: str
    branch: str
    runtime_version: int


@contextmanager
def repo_lock(layout: Layout) -> Iterator[None]:
    layout.state.mkdir(parents=True, exist_ok=True)
    with (layout.state / "repo.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_version(layout: Layout) -> VersionFile | None:
    try:
        return parse_version_file(layout.version_file.read_bytes())
    except (OSError, VersionFileError):
        return None


def fetch_remote(layout: Layout, source: RepoSource) -> tuple[str, VersionFile, str]:
    """The branch's newest commit, its version.json and changelog; a broken clone is made again
    (the original's behaviour: a fetch that fails deletes ``.repo`` and clones afresh)."""
    if not source.url:
        raise gitrepo.GitError("REPO_URL is not set, so there is nowhere to look for updates")
    with repo_lock(layout):
        try:
            if not gitrepo.is_clone(layout.repo):
                raise gitrepo.GitError("no clone")
            commit = gitrepo.fetch(layout.repo, source.url, source.branch)
        except gitrepo.GitError:
            shutil.rmtree(layout.repo, ignore_errors=True)
            gitrepo.clone(source.url, source.branch, layout.repo)
            commit = gitrepo.head(layout.repo)
        data = gitrepo.show(layout.repo, commit, "version.json")
        changelog = gitrepo.show(layout.repo, commit, "CHANGELOG.md", max_bytes=MAX_CHANGELOG_BYTES) or b""
    if data is None:
        raise gitrepo.GitError("the repository has no version.json at its top")
    try:
        remote = parse_version_file(data)
    except VersionFileError as err:
        raise gitrepo.GitError(str(err)) from err
    return commit, remote, changelog.decode(errors="replace")


def check(layout: Layout, source: RepoSource) -> dict[str, Any]:
    """Fetches and records ``remote_version.json`` (the original's file, plus our stamps)."""
    commit, remote, changelog = fetch_remote(layout, source)
    record = dict(remote.raw)
    record.update({"_checked_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "_commit": commit,
                   "_changelog": changelog})
    write_json(layout.root, layout.remote_version_file, record)
    return summary(layout, source.runtime_version)


def summary(layout: Layout, runtime_version: int) -> dict[str, Any]:
    """What the page shows: each component here and there, whether it is newer, and why not."""
    local = local_version(layout)
    raw = read_json(layout.remote_version_file)
    remote = VersionFile(raw) if isinstance(raw, dict) else None
    rows = compare(local, remote) if remote else []
    return {
        "local": {"app_version": local.app_version if local else None},
        "remote": None if remote is None else {
            "app_version": remote.app_version, "checked_at": remote.raw.get("_checked_at"),
            "commit": str(remote.raw.get("_commit") or "")[:40], "min_runtime": remote.min_runtime,
            "changelog": str(remote.raw.get("_changelog") or "")[:MAX_CHANGELOG_BYTES],
        },
        "components": rows,
        "available": any(row["update"] for row in rows),
        "blocked": runtime_blocked(remote, runtime_version) if remote else None,
        "runtime_version": runtime_version,
    }


def remote_commit(layout: Layout) -> str | None:
    raw = read_json(layout.remote_version_file)
    commit = raw.get("_commit") if isinstance(raw, dict) else None
    return commit if isinstance(commit, str) and gitrepo.COMMIT.match(commit) else None


def checked_remote(layout: Layout, source: RepoSource) -> tuple[str, VersionFile]:
    """The commit the last check recorded (what the admin was shown), else a fresh fetch."""
    commit = remote_commit(layout)
    if commit is not None:
        with repo_lock(layout):
            data = gitrepo.show(layout.repo, commit, "version.json")
        if data is not None:
            try:
                return commit, parse_version_file(data)
            except VersionFileError:
                pass
    commit, remote, _changelog = fetch_remote(layout, source)
    return commit, remote

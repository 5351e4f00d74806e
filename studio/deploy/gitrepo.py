"""The staging clone ``.repo/``: fetched shallowly, read with ``git show``/``git archive``, never
served. A commit is exported into a release folder from the object store, so the clone's own
working tree (which anyone may have poked at) never matters.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

GIT_TIMEOUT_S = 300
BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
# What a release holds, as paths in the repository.
RELEASE_PATHS = ("studio", "webui", "catalogs", "workflows", "pyproject.toml", "version.json")


class GitError(RuntimeError):
    """A git step failed; the message is safe to show (credentials in the URL are masked)."""


def mask_url(url: str) -> str:
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", url)


def _git(args: list[str], *, cwd: Path | None = None, timeout_s: float = GIT_TIMEOUT_S,
         secret: str = "") -> bytes:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as err:
        raise GitError(f"git {args[0]} took longer than {timeout_s:.0f} s") from err
    except OSError as err:
        raise GitError(f"git could not run: {err}") from err
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        text = " ".join(detail)
        if secret:
            text = text.replace(secret, mask_url(secret))
        raise GitError(f"git {args[0]} failed: {mask_url(text)[:500]}")
    return done.stdout


def check_branch(branch: str) -> str:
    if not BRANCH_NAME.match(branch) or ".." in branch:
        raise GitError(f"not a branch name: {branch[:100]!r}")
    return branch


def clone(url: str, branch: str, target: Path) -> None:
    """A shallow clone of one branch into ``target`` (removed first when a crash left it)."""
    if target.exists():
        shutil.rmtree(target)
    _git(["clone", "--quiet", "--depth", "1", "--single-branch", "--branch", check_branch(branch), "--", url,
          str(target)], secret=url)


def fetch(repo: Path, url: str, branch: str) -> str:
    """The branch's newest commit fetched into ``origin/<branch>``; its id."""
    check_branch(branch)
    _git(["remote", "set-url", "origin", url], cwd=repo, secret=url)
    _git(["fetch", "--quiet", "--depth", "1", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"],
         cwd=repo, secret=url)
    return head(repo, f"origin/{branch}")


def head(repo: Path, ref: str = "HEAD") -> str:
    return _git(["rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=repo).decode().strip()


def is_clone(repo: Path) -> bool:
    if not (repo / ".git").exists():
        return False
    try:
        head(repo)
    except GitError:
        return False
    return True


def show(repo: Path, commit: str, path: str, *, max_bytes: int = 1024 * 1024) -> bytes | None:
    """One file at ``commit``, or None when the commit has no such file."""
    try:
        data = _git(["show", f"{commit}:{path}"], cwd=repo)
    except GitError:
        return None
    return data[:max_bytes]


def export(repo: Path, commit: str, target: Path, paths: tuple[str, ...] = RELEASE_PATHS) -> None:
    """The tracked content of ``paths`` at ``commit`` written under ``target`` (links and
    anything escaping refused by tarfile's data filter)."""
    if not COMMIT.match(commit):
        raise GitError(f"not a commit id: {commit[:40]!r}")
    present = [path for path in paths if show(repo, commit, path, max_bytes=1) is not None]
    archive = _git(["archive", "--format=tar", commit, "--", *present], cwd=repo)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")

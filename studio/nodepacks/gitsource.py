"""The few ``git`` commands a node pack needs, each bounded in time and unable to run anything else.

Every call passes ``--`` before a URL and ``--end-of-options`` before a ref (``names.py`` already
refused anything that looks like an option), allows only the https and file transports
(``GIT_ALLOW_PROTOCOL``: no ``ext::``, ssh or git://), never prompts for a password, and runs no hook.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from studio.nodepacks.names import COMMIT

log = logging.getLogger(__name__)

CLONE_TIMEOUT_S = 600.0
READ_TIMEOUT_S = 10.0
OUTPUT_TAIL = 2000


class GitError(Exception):
    """A git command failed or ran too long; the message is a sentence, ``output`` git's last words."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.output = output[-OUTPUT_TAIL:]


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ALLOW_PROTOCOL="https:file", GIT_ASKPASS="true", SSH_ASKPASS="true",
               LC_ALL="C", GIT_CONFIG_NOSYSTEM="1")
    return env


def run_git(args: list[str], *, cwd: Path | None = None, timeout_s: float = READ_TIMEOUT_S) -> str:
    command = ["git", "-c", "core.hooksPath=/dev/null", "-c", "protocol.ext.allow=never",
               "-c", "core.fsmonitor=false", "-c", "safe.directory=*", *args]
    try:
        done = subprocess.run(command, cwd=cwd, env=_environment(), capture_output=True, text=True,
                              timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        raise GitError(f"git {args[0]} took longer than {timeout_s:.0f} s and was stopped.") from err
    except OSError as err:
        raise GitError(f"git could not be run: {err.strerror or err}.") from err
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed (exit {done.returncode}).", (done.stderr or done.stdout).strip())
    return done.stdout.strip()


def clone(url: str, dest: Path, *, timeout_s: float = CLONE_TIMEOUT_S) -> None:
    """A full clone without a working tree yet: the commit is checked out once it is known to exist."""
    try:
        run_git(["clone", "--quiet", "--no-checkout", "--", url, str(dest)], timeout_s=timeout_s)
    except GitError as err:
        raise GitError(f"The repository {display_url(url)} could not be cloned.", err.output) from err


def resolve(repo: Path, ref: str) -> tuple[str, str | None]:
    """(commit, tag or None): a 40-hex commit must exist in the clone; a tag is looked up as a tag."""
    wanted = f"{ref}^{{commit}}" if COMMIT.fullmatch(ref) else f"refs/tags/{ref}^{{commit}}"
    try:
        commit = run_git(["rev-parse", "--verify", "--quiet", "--end-of-options", wanted], cwd=repo)
    except GitError as err:
        what = "commit" if COMMIT.fullmatch(ref) else "tag"
        raise GitError(f"The repository has no {what} {ref}.") from err
    return commit, None if COMMIT.fullmatch(ref) else ref


def checkout(repo: Path, commit: str, *, timeout_s: float = CLONE_TIMEOUT_S) -> None:
    if not COMMIT.fullmatch(commit):  # resolve() answered it: 40 hex, never an option
        raise GitError(f"{commit[:50]!r} is not a commit.")
    run_git(["checkout", "--quiet", "--detach", commit], cwd=repo, timeout_s=timeout_s)
    if (repo / ".gitmodules").is_file():
        run_git(["submodule", "update", "--init", "--recursive", "--quiet"], cwd=repo, timeout_s=timeout_s)


@dataclass
class Checkout:
    remote: str | None
    commit: str | None


def read_checkout(folder: Path) -> Checkout | None:
    """The remote (without any password in it) and commit of an installed pack, when it is a git checkout."""
    if not (folder / ".git").exists():
        return None
    try:
        commit: str | None = run_git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=folder)
    except GitError:
        commit = None
    try:
        remote: str | None = display_url(run_git(["remote", "get-url", "origin"], cwd=folder))
    except GitError:
        remote = None
    return Checkout(remote, commit if commit and COMMIT.fullmatch(commit) else None)


def display_url(url: str) -> str:
    """``url`` without user name or password: a remote set up with a token must not show it."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))

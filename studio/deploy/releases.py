"""Release folders: built from a commit (skipped components taken from the running release),
checked before anything switches (dependencies this image has, migrations on a copy of the
database), and pruned to the last few.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from studio.deploy import gitrepo
from studio.deploy.layout import KEEP_RELEASES, Layout, fsync_folder
from studio.deploy.version import CATALOG_COMPONENTS

# Which release paths each component of version.json owns.
COMPONENT_PATHS: dict[str, tuple[str, ...]] = {
    "backend": ("studio", "pyproject.toml"),
    "frontend": ("webui",),
    "models": (f"catalogs/{CATALOG_COMPONENTS['models']}",),
    "loras": (f"catalogs/{CATALOG_COMPONENTS['loras']}",),
    "llm_models": (f"catalogs/{CATALOG_COMPONENTS['llm_models']}",),
    "workflows": ("workflows",),
}
MIGRATE_TIMEOUT_S = 300
_REVISION_LINE = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*['"]([A-Za-z0-9_]{1,64})['"]""", re.MULTILINE)


class ReleaseError(RuntimeError):
    """Why a release cannot be used; shown to the admin as it is."""


def build(layout: Layout, name: str, commit: str, taken: set[str], previous: str | None) -> Path:
    """``releases/<name>`` from ``commit``; components not taken come from ``previous``.

    Built in ``.<name>.partial`` and renamed, so a folder under its real name is always whole.
    """
    final = layout.release(name)
    partial = layout.releases / f".{name}.partial"
    for leftover in (partial, final):
        if leftover.exists():
            shutil.rmtree(leftover)
    layout.releases.mkdir(parents=True, exist_ok=True)
    gitrepo.export(layout.repo, commit, partial)
    if previous is not None:
        old = layout.release(previous)
        for component, paths in COMPONENT_PATHS.items():
            if component in taken:
                continue
            for relative in paths:
                _replace_path(old / relative, partial / relative)
    _fsync_tree(partial)
    os.replace(partial, final)
    fsync_folder(layout.releases)
    return final


def _replace_path(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _fsync_tree(root: Path) -> None:
    """Everything under ``root`` on disk before it is renamed into place: one ``syncfs`` of the
    volume where Linux offers it (hundreds of fsyncs cost seconds), else a file at a time."""
    if _syncfs(root):
        return
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_folder(Path(folder))


def _syncfs(path: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


def missing_dependencies(release: Path) -> list[str]:
    """Requirements of the release's pyproject.toml that this image's environment does not meet."""
    try:
        project = tomllib.loads((release / "pyproject.toml").read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        return [f"pyproject.toml unreadable: {err}"]
    problems = []
    for line in project.get("dependencies", []):
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            problems.append(f"{line[:100]} (not a requirement)")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} (not installed)")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement.name}{requirement.specifier} (this image has {installed})")
    return problems


def known_revisions(release: Path) -> set[str]:
    folder = release / "studio" / "db" / "migrations" / "versions"
    found: set[str] = set()
    if not folder.is_dir():
        return found
    for path in folder.glob("*.py"):
        match = _REVISION_LINE.search(path.read_text(errors="replace"))
        if match:
            found.add(match.group(1))
    return found


def sqlite_path(database_url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(database_url[len(prefix):]) if database_url.startswith(prefix) else None


def database_revision(database: Path) -> str | None:
    if not database.is_file():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(row[0]) if row else None


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy (SQLite's backup API, so a WAL still open elsewhere is included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        stale.unlink(missing_ok=True)
    source_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    target_db = sqlite3.connect(target)
    try:
        source_db.backup(target_db)
    finally:
        target_db.close()
        source_db.close()
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore_database(backup: Path, database: Path) -> None:
    scratch = database.with_name(f".{database.name}.restore")
    copy_database(backup, scratch)
    for sidecar in (database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        sidecar.unlink(missing_ok=True)
    os.replace(scratch, database)
    fsync_folder(database.parent)


def run_in_release(release: Path, args: list[str], *, env: dict[str, str] | None = None,
                   timeout_s: float = MIGRATE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``python -m studio …`` with the release's own code first on the path."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(release), "PYTHONDONTWRITEBYTECODE": "1"}
    full_env.pop("STUDIO_DEPLOY_CRASH_AFTER", None)
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=release, env=full_env, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def migrate_copy(release: Path, database: Path, scratch: Path) -> None:
    """The release's migrations run on a copy of the database; the real one is not touched."""
    if database.is_file():
        copy_database(database, scratch)
    else:
        scratch.unlink(missing_ok=True)
    try:
        done = run_in_release(release, ["db", "upgrade"], env={"DATABASE_URL": f"sqlite:///{scratch}"})
    except subprocess.TimeoutExpired as err:
        raise ReleaseError("the new version's database migration took too long") from err
    finally:
        for path in (scratch, scratch.with_name(scratch.name + "-wal"), scratch.with_name(scratch.name + "-shm")):
            path.unlink(missing_ok=True)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])[:600]
        raise ReleaseError(f"the new version's database migration failed on a copy: {tail}")


def prune(layout: Layout, keep: int = KEEP_RELEASES) -> list[str]:
    """Removes all but the newest ``keep`` releases; the current one always stays."""
    current = layout.current_name()
    names = layout.release_names()
    removed = []
    for name in names[: max(0, len(names) - keep)]:
        if name == current:
            continue
        shutil.rmtree(layout.release(name), ignore_errors=True)
        removed.append(name)
    for leftover in layout.releases.glob(".*.partial") if layout.releases.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)
    return removed

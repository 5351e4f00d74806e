"""Files inside a folder of ours, and nowhere else, even when someone plants a symlink there.

Resolving a path and then checking it lies inside a folder is not enough: between the check and
the open, or for a component that does not exist yet, a link can send the write elsewhere. So every
write and every serve walks from a trusted root one component at a time with ``O_NOFOLLOW`` on
directory file descriptors (``openat``): no component below the root may be a symlink, whatever
happens in between. The root itself may be one (a volume mounted through a link is normal).

Durability on power loss: a file renamed into place is fsynced first (its data reaches the disk
before any name points at it), and the folder is fsynced after the rename (the new name itself
reaches the disk). A folder created on the way, and a name removed, are made durable the same
way, in their parent. The helpers here do that once; every write path goes through them.

Names are checked against the file system's real limits before anything is accepted, so a name
that could never be written (too long once ``.part`` is added, a NUL, a lone surrogate) is refused
up front instead of failing later in the background.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from studio.errors import BadRequest

NAME_MAX = 255  # bytes in one path component on ext4, xfs, btrfs, NTFS (in UTF-16 units there)
PATH_MAX = 4096
# What Studio may append to a name it was given (``.part``, ``.tmp``): names leave room for it.
SUFFIX_ROOM = 8

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_HAS_DIR_FD = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")


class UnsafePath(OSError):
    """A path that would leave its folder or pass through a symlink; never followed."""


def name_problem(name: object, *, reserve: int = SUFFIX_ROOM) -> str | None:
    """Why ``name`` cannot be one file or folder name, or None when it can."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty name"
    if name in (".", ".."):
        return "must not be . or .."
    if any(ch in name for ch in "/\\\x00"):
        return "must not contain /, \\ or NUL"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "must not contain control characters"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid text (a lone surrogate)"
    if size > NAME_MAX - reserve:
        return f"is too long ({size} bytes; at most {NAME_MAX - reserve})"
    if name != name.strip() or name.endswith("."):
        return "must not start or end with a space or end with a dot"
    return None


def check_name(name: object, *, field: str, reserve: int = SUFFIX_ROOM) -> str:
    """``name`` as one safe file or folder name, else a 400 naming ``field``."""
    problem = name_problem(name, reserve=reserve)
    if problem:
        raise BadRequest(f"The {field} {str(name)[:80]!r} {problem}.", fields={field: problem})
    assert isinstance(name, str)
    return name


def check_relative(relative: object, *, field: str, reserve: int = SUFFIX_ROOM, allow_empty: bool = False) -> str:
    """A ``a/b/c`` path below some folder: each part a safe name, no ``..``, not absolute."""
    if not isinstance(relative, str):
        raise BadRequest(f"The {field} must be text.", fields={field: "must be text"})
    if relative.startswith("/") or (len(relative) > 1 and relative[1] == ":"):
        raise BadRequest(f"The {field} {relative[:80]!r} must be relative.", fields={field: "must be relative"})
    cleaned = relative.strip("/")
    if not cleaned:
        if allow_empty:
            return ""
        raise BadRequest(f"The {field} must not be empty.", fields={field: "must not be empty"})
    if "\\" in relative:
        raise BadRequest(f"The {field} {relative[:80]!r} must use / between folders.", fields={field: "backslash"})
    if len(cleaned.encode("utf-8", "surrogatepass")) > PATH_MAX // 2:
        raise BadRequest(f"The {field} is too long.", fields={field: "too long"})
    for index, part in enumerate(cleaned.split("/")):
        last = index == cleaned.count("/")
        problem = name_problem(part, reserve=reserve if last else 0)
        if problem:
            raise BadRequest(f"The {field} {relative[:80]!r}: {part[:40]!r} {problem}.", fields={field: problem})
    return cleaned


def _parts(root: Path, path: Path | str) -> tuple[str, list[str]]:
    """The resolved root and ``path``'s components below it, refusing anything outside."""
    anchor = os.path.realpath(root)
    candidate = os.path.abspath(os.fspath(path))
    for base in (os.path.abspath(os.fspath(root)), anchor):
        relative = os.path.relpath(candidate, base)
        if relative != os.curdir and not relative.startswith(os.pardir + os.sep) and relative != os.pardir:
            parts = relative.split(os.sep)
            if any(part in ("", os.curdir, os.pardir) for part in parts):
                break
            return anchor, parts
    raise UnsafePath(errno.EPERM, "outside its folder", os.fspath(path))


def _open_dir_chain(anchor: str, parts: list[str], *, create: bool) -> int:
    """A descriptor of the folder holding ``parts[-1]``, every step refusing a symlink."""
    fd = os.open(anchor, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                else:
                    fsync_fd(fd)  # the new folder's name, before anything is written inside it
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise UnsafePath(errno.ELOOP, "a symlink or not a folder on the way", part) from err
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _lstat_chain(anchor: str, parts: list[str]) -> None:
    """Fallback where ``openat`` is missing (Windows): refuse a link at any existing component."""
    current = anchor
    for part in parts:
        current = os.path.join(current, part)
        try:
            if os.path.islink(current) or (os.name == "nt" and os.stat(current, follow_symlinks=False).st_file_attributes & 0x400):  # type: ignore[attr-defined]  # noqa: E501
                raise UnsafePath(errno.ELOOP, "a symlink on the way", current)
        except FileNotFoundError:
            return


@contextmanager
def parent_fd(root: Path, path: Path | str, *, create: bool = False) -> Iterator[tuple[int | None, str]]:
    """(descriptor of the containing folder, leaf name); None for the descriptor where unsupported."""
    anchor, parts = _parts(root, path)
    if not _HAS_DIR_FD:
        _lstat_chain(anchor, parts)
        if create:
            os.makedirs(os.path.join(anchor, *parts[:-1]), exist_ok=True)
        yield None, os.path.join(anchor, *parts)
        return
    fd = _open_dir_chain(anchor, parts, create=create)
    try:
        yield fd, parts[-1]
    finally:
        os.close(fd)


_MODES = {
    "rb": os.O_RDONLY,
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "xb": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "r+b": os.O_RDWR,
}


def open_inside(root: Path, path: Path | str, mode: str = "rb", *, create_dirs: bool = False,
                permissions: int = 0o644) -> IO[Any]:
    """``open(path, mode)`` that refuses to leave ``root`` or to pass through a link (``O_NOFOLLOW``)."""
    flags = _MODES[mode] | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    with parent_fd(root, path, create=create_dirs and mode != "rb") as (fd, leaf):
        try:
            handle = (os.open(leaf, flags, permissions, dir_fd=fd) if fd is not None
                      else os.open(leaf, flags, permissions))
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise UnsafePath(errno.ELOOP, "the file is a symlink", os.fspath(path)) from err
            raise
    stat = os.fstat(handle)
    import stat as stat_module

    if not stat_module.S_ISREG(stat.st_mode):
        os.close(handle)
        raise UnsafePath(errno.EINVAL, "not a regular file", os.fspath(path))
    return os.fdopen(handle, mode)


def is_file_inside(root: Path, path: Path | str) -> bool:
    """True for a regular file reached without leaving ``root`` or following a link."""
    try:
        with open_inside(root, path, "rb"):
            return True
    except OSError:
        return False


def replace_inside(root: Path, source: Path | str, target: Path | str) -> None:
    """``os.replace`` between two names below ``root``; neither folder reached through a link.

    The target's own name may exist (it is replaced, a link there included: replacing a link
    swaps the link itself, never what it points to). The caller has fsynced the source's data
    (``sync_file``); here the target's folder is fsynced after the rename, and the source's too
    when it is another folder (its old name must not come back after a power cut).
    """
    with parent_fd(root, source) as (source_fd, source_leaf), \
            parent_fd(root, target, create=True) as (target_fd, target_leaf):
        if source_fd is None or target_fd is None:
            os.replace(source_leaf, target_leaf)
            return
        os.replace(source_leaf, target_leaf, src_dir_fd=source_fd, dst_dir_fd=target_fd)
        fsync_fd(target_fd)
        if not os.path.samestat(os.fstat(source_fd), os.fstat(target_fd)):
            fsync_fd(source_fd)


def unlink_inside(root: Path, path: Path | str, *, missing_ok: bool = True) -> None:
    """Removes one name below ``root`` (a link there is removed itself, never its target); the
    folder is fsynced when a name went, so a removed file does not come back after a power cut."""
    try:
        with parent_fd(root, path) as (fd, leaf):
            if fd is None:
                os.unlink(leaf)
            else:
                os.unlink(leaf, dir_fd=fd)
                fsync_fd(fd)
    except FileNotFoundError:
        if not missing_ok:
            raise


def makedirs_inside(root: Path, path: Path | str) -> None:
    """``mkdir -p`` below ``root`` that refuses to go through a link."""
    with parent_fd(root, Path(path) / "_", create=True):
        pass


def lexists_inside(root: Path, path: Path | str) -> bool:
    try:
        with parent_fd(root, path) as (fd, leaf):
            if fd is None:
                return os.path.lexists(leaf)
            os.stat(leaf, dir_fd=fd, follow_symlinks=False)
            return True
    except OSError:
        return False


def fsync_fd(fd: int) -> None:
    """fsync for a folder's descriptor: names created, renamed or removed in it reach the disk."""
    with suppress(OSError):  # some file systems (and Windows folders) cannot fsync a directory
        os.fsync(fd)


def sync_file(handle: IO[Any]) -> None:
    """Python's buffer, then the kernel's, onto the disk. Unlike a folder's, a file's fsync error
    is raised: its data may be lost, so it must not be renamed into place as if it were whole."""
    handle.flush()
    os.fsync(handle.fileno())


def sync_inside(root: Path, path: Path | str) -> None:
    """fsyncs a file already written (and closed) below ``root``, opened without following links:
    a partial download written by an earlier attempt, or an earlier process, before its rename."""
    with open_inside(root, path, "r+b") as handle:
        os.fsync(handle.fileno())


def sync_parent(root: Path, path: Path | str) -> None:
    """fsyncs the folder holding ``path``: a newly created name in it survives a power cut."""
    with parent_fd(root, path) as (fd, _):
        if fd is not None:
            fsync_fd(fd)


def makedirs_durable(path: Path, *, mode: int = 0o755) -> None:
    """``mkdir -p`` of a trusted folder (a data folder's own root, which may be a link) where each
    folder it creates is fsynced into its parent. ``mode`` is the last folder's, as ``Path.mkdir``."""
    missing: list[Path] = []
    current = Path(path)
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode if folder == Path(path) else 0o777)
        except FileExistsError:
            continue
        _fsync_folder(folder.parent)
    if not Path(path).is_dir():
        raise FileExistsError(errno.EEXIST, "exists and is not a folder", os.fspath(path))


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        fsync_fd(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(root: Path, target: Path | str, *, temporary: Path | str | None = None,
                permissions: int = 0o644) -> Iterator[IO[Any]]:
    """A fresh file to write ``target``'s new content into; when the block ends it is fsynced,
    renamed over ``target`` and the folder fsynced. A crash at any moment leaves the old file or
    the new one, never a torn one; a failure inside the block removes the temporary file.

    ``temporary`` (beside the target, ``.<name>.tmp`` by default) is removed first when it exists
    (a leftover from a crash, or a planted link: never written through) and created exclusively.
    """
    final = Path(target)
    scratch = Path(temporary) if temporary is not None else final.with_name(f".{final.name}.tmp")
    unlink_inside(root, scratch)
    try:
        with open_inside(root, scratch, "xb", create_dirs=True, permissions=permissions) as handle:
            yield handle
            sync_file(handle)
        replace_inside(root, scratch, final)
    except BaseException:
        with suppress(OSError):
            unlink_inside(root, scratch)
        raise


def write_atomic(root: Path, path: Path | str, data: bytes, *, permissions: int = 0o644) -> None:
    """``data`` as the whole new content of ``path``, durably (see ``atomic_file``)."""
    with atomic_file(root, path, permissions=permissions) as handle:
        handle.write(data)


__all__ = [
    "NAME_MAX", "PATH_MAX", "SUFFIX_ROOM", "UnsafePath", "name_problem", "check_name", "check_relative",
    "open_inside", "is_file_inside", "replace_inside", "unlink_inside", "makedirs_inside", "lexists_inside",
    "write_atomic", "atomic_file", "fsync_fd", "sync_file", "sync_inside", "sync_parent", "makedirs_durable",
]

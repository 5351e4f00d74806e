"""Three-way merges of what a person may have edited on the volume (catalogs, workflows) against
the copy the running release shipped (the base) and the one the new release ships.

A change on one side only is taken; the same change on both is fine; different changes to the
same thing are a conflict: the person's version stays, the new one is saved beside the update's
record, and the conflict is listed on the page. Nothing the person wrote is overwritten.
Catalogs merge entry by entry (``categories[].id``, ``models[].file``), so an edited entry and a
new shipped one both survive; other files merge whole.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.jsonio import loads
from studio.safepath import write_atomic

MAX_CATALOG_BYTES = 32 * 1024 * 1024
MAX_FILES = 10_000
_MISSING: Any = object()


@dataclass
class MergeReport:
    changed: list[str] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)


def _pick(base: Any, ours: Any, theirs: Any) -> tuple[Any, bool]:
    """The merged value and whether the two sides disagree."""
    if ours in (base, theirs):
        return theirs, False
    if theirs == base:
        return ours, False
    return ours, True


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return _MISSING
    if path.stat().st_size > MAX_CATALOG_BYTES:
        raise ValueError(f"{path.name} is larger than 32 MiB")
    return loads(path.read_bytes())


def _keyed(items: Any, key: str) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {str(item[key]): item for item in items if isinstance(item, dict) and isinstance(item.get(key), str)}


def _merge_keyed(base: Any, ours: Any, theirs: Any, key: str, where: str,
                 inner: str | None, report: MergeReport, label: str) -> list[Any]:
    b, o, t = _keyed(base, key), _keyed(ours, key), _keyed(theirs, key)
    order = list(t) + [name for name in o if name not in t]
    merged = []
    for name in order:
        bv, ov, tv = b.get(name, _MISSING), o.get(name, _MISSING), t.get(name, _MISSING)
        if isinstance(ov, dict) and isinstance(tv, dict) and ov != tv:
            bd = bv if isinstance(bv, dict) else {}
            entry: dict[str, Any] = {}
            for field_name in list(tv) + [f for f in ov if f not in tv]:
                if field_name == inner:
                    continue
                value, clash = _pick(bd.get(field_name, _MISSING), ov.get(field_name, _MISSING),
                                     tv.get(field_name, _MISSING))
                if clash:
                    report.conflicts.append({"path": where, "item": f"{label} {name}: {field_name}",
                                             "message": "changed here and in the update; your value was kept"})
                if value is not _MISSING:
                    entry[field_name] = value
            if inner:
                entry[inner] = _merge_keyed(bd.get(inner), ov.get(inner), tv.get(inner), "file", where, None,
                                            report, "entry")
            merged.append(entry)
            continue
        value, clash = _pick(bv, ov, tv)
        if clash:
            report.conflicts.append({"path": where, "item": f"{label} {name}",
                                     "message": "changed here and in the update; your version was kept"})
        if value is not _MISSING:
            merged.append(value)
    return merged


def merge_catalog(base_path: Path, live_path: Path, new_path: Path, root: Path, report: MergeReport,
                  where: str) -> None:
    base, ours, theirs = _read_json(base_path), _read_json(live_path), _read_json(new_path)
    if theirs is _MISSING or ours == theirs:
        return
    if ours is _MISSING or ours == base:
        result = theirs
    elif theirs == base:
        return
    elif not (isinstance(ours, dict) and isinstance(theirs, dict)):
        report.conflicts.append({"path": where, "item": "the whole file",
                                 "message": "changed here and in the update; your version was kept"})
        return
    else:
        result = dict(ours)
        for name in ("version", "date"):  # the shipped catalog's own stamp
            if name in theirs:
                result[name] = theirs[name]
        bd = base if isinstance(base, dict) else {}
        result["categories"] = _merge_keyed(bd.get("categories"), ours.get("categories"), theirs.get("categories"),
                                            "id", where, "models", report, "category")
    write_atomic(root, live_path, (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode())
    report.changed.append(where)


def _files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for directory, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                continue
            found[path.relative_to(folder).as_posix()] = path
            if len(found) > MAX_FILES:
                raise ValueError(f"{folder.name} holds more than {MAX_FILES} files")
    return found


def _content(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def merge_tree(base_dir: Path, live_dir: Path, new_dir: Path, root: Path, report: MergeReport, where: str,
               conflict_dir: Path) -> None:
    """File by file; a conflicting new file is saved under ``conflict_dir`` for the person to compare."""
    base, ours, theirs = _files(base_dir), _files(live_dir), _files(new_dir)
    for relative in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = _content(base.get(relative)), _content(ours.get(relative)), _content(theirs.get(relative))
        value, clash = _pick(b, o, t)
        label = f"{where}/{relative}"
        if clash:
            saved = conflict_dir / where / relative
            if t is not None:
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_bytes(t)
            report.conflicts.append({"path": label, "item": "the whole file",
                                     "message": "changed here and in the update; your version was kept"
                                     + (f", the new one is in {saved.relative_to(root)}" if t is not None else "")})
            continue
        if value == o:
            continue
        target = live_dir / relative
        if value is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(root, target, value)
        report.changed.append(label)


def seed_absent(release: Path, root: Path) -> list[str]:
    """First boot: shipped catalogs and workflows copied only where the volume has none."""
    seeded = []
    catalogs = release / "catalogs"
    for path in sorted(catalogs.glob("*.json")) if catalogs.is_dir() else []:
        target = root / "catalogs" / path.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(root, target, path.read_bytes())
            seeded.append(f"catalogs/{path.name}")
    workflows = release / "workflows"
    for entry in sorted(workflows.iterdir()) if workflows.is_dir() else []:
        target = root / "workflows" / entry.name
        if target.exists() or entry.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.is_dir():
            scratch = target.with_name(f".{entry.name}.seed")
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(entry, scratch, symlinks=False)
            os.replace(scratch, target)
        else:
            write_atomic(root, target, entry.read_bytes())
        seeded.append(f"workflows/{entry.name}")
    return seeded

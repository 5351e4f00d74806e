"""Presets in and out of Studio: one JSON file, or a ZIP of many, as people share them.

An uploaded ZIP is someone else's file: its entries are read with hard limits (count, size of each
and of all, as actually decompressed, never as the archive claims), only ``.json`` entries are
looked at, and their names only suggest an id, so nothing in an archive decides where a file lands.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath
from typing import Any

from studio import jsonio
from studio.auth.service import Identity
from studio.errors import BadRequest, StudioError
from studio.presets.service import PresetService
from studio.presets.store import MAX_FILE_BYTES, id_problem, parse

MAX_ENTRIES = 500
MAX_TOTAL_BYTES = 32 * 1024 * 1024


TOO_LARGE = f"is larger than {MAX_FILE_BYTES // 1024} KiB"


def _entries(data: bytes, file_name: str) -> list[tuple[str, bytes | None, str | None]]:
    """(name, content, why it cannot be read) of each JSON file uploaded."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return [(file_name, data, None)]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as err:
        raise BadRequest(f"That ZIP file cannot be read: {err}.", code="bad_archive") from err
    with archive:
        infos = [info for info in archive.infolist()
                 if not info.is_dir() and info.filename.lower().endswith(".json")
                 and not PurePosixPath(info.filename).name.startswith(".")]
        if len(infos) > MAX_ENTRIES:
            raise BadRequest(f"That ZIP holds more than {MAX_ENTRIES} presets.", code="bad_archive")
        found: list[tuple[str, bytes | None, str | None]] = []
        total = 0
        for info in infos:
            name = PurePosixPath(info.filename).name[:255]
            try:
                with archive.open(info) as handle:
                    content = handle.read(MAX_FILE_BYTES + 1)  # what it really unpacks to, not what it claims
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as err:
                found.append((name, None, f"cannot be unpacked ({str(err)[:200]})"))
                continue
            if len(content) > MAX_FILE_BYTES:
                found.append((name, None, TOO_LARGE))
                continue
            total += len(content)
            if total > MAX_TOTAL_BYTES:
                raise BadRequest(f"That ZIP unpacks to more than {MAX_TOTAL_BYTES // 1024 // 1024} MiB.",
                                 code="bad_archive")
            found.append((name, content, None))
        return found


def import_upload(presets: PresetService, actor: Identity, data: bytes, file_name: str, *,
                  replace: bool) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(imported [{file, id}], problems [{file, reason}]): one bad file never stops the others."""
    imported: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    for name, content, unreadable in _entries(data, file_name[:255]):
        if content is None:
            problems.append({"file": name, "reason": unreadable or TOO_LARGE})
            continue
        doc, problem = parse(content)
        if doc is None:
            problems.append({"file": name, "reason": problem or "is not a preset"})
            continue
        stem = PurePosixPath(name).stem
        wanted = doc.get("id") if isinstance(doc.get("id"), str) and not id_problem(doc.get("id")) else None
        wanted = wanted or (stem if not id_problem(stem) else None)
        try:
            imported.append({"file": name, "id": presets.import_document(doc, wanted, actor, replace=replace)})
        except StudioError as err:
            problems.append({"file": name, "reason": err.message})
    return imported, problems


def export_zip(presets: PresetService, viewer: Identity, wanted: list[str] | None) -> bytes:
    if wanted is None:
        found, _ = presets.store.load()
        wanted = [preset_id for preset_id, doc in found.items() if presets.visible(doc, viewer)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for preset_id in wanted[:MAX_ENTRIES]:
            doc: dict[str, Any] = presets.document(preset_id, viewer)  # 404 for one the viewer may not see
            archive.writestr(f"{preset_id}.json", jsonio.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return buffer.getvalue()

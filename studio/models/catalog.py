"""Catalogs in the original Studio's format: ``{version, date, categories: [{id, name, models: [...]}]}``.

An existing volume's catalogs load as they are. Each entry is validated on its own: a bad one is
reported by name and the rest still load. The user's copy in ``STUDIO_DIR/catalogs`` wins over the
bundled one of the same name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from studio.errors import BadRequest
from studio.safepath import UnsafePath, check_relative, lexists_inside, name_problem, open_inside

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent.parent.parent / "catalogs"
CATALOG_FILES = {"models": "models.json", "loras": "loras.json", "llm": "llm.json"}
LLM_FOLDER = "llm"  # where llm catalog entries with the original's ``dest: ""`` are downloaded


# A catalog's size in GB: finite and at most this (1e308, NaN, ±inf or a negative make the entry invalid).
MAX_SIZE_GB = 10_000_000
HF_REPO = r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$"
REVISION = r"^[A-Za-z0-9._/-]{1,100}$"


def text_problem(value: object, max_chars: int) -> str | None:
    """Why ``value`` cannot be a short line of text (a display name), or None when it can."""
    if not isinstance(value, str) or not value.strip():
        return "must be non-empty text"
    if len(value) > max_chars:
        return f"is too long ({len(value)} characters; at most {max_chars})"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must not contain control characters (NUL included)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text (a lone surrogate)"
    return None


def _relative_problem(value: str, *, reserve: int, allow_empty: bool) -> str | None:
    try:
        check_relative(value, field="path", reserve=reserve, allow_empty=allow_empty)
    except BadRequest as err:
        return next(iter(err.fields.values()), err.message)
    return None


class CatalogEntry(BaseModel):
    """One entry. Every value that becomes a file name, a folder, a URL or a number is checked
    against its real limits here, so a bad entry is named and skipped when a catalog is loaded or
    imported, and never reaches the download queue or a listing."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=255)
    file: str = Field(min_length=1)
    dest: str = ""
    source: Literal["huggingface", "civitai", "url", "direct"] = "url"
    size_gb: float = Field(0.0, ge=0, le=MAX_SIZE_GB, allow_inf_nan=False)
    base_model: str | None = Field(None, max_length=255)
    tags: list[str] = Field(default_factory=list, max_length=100)
    pair_id: str | None = Field(None, max_length=255)
    pair_role: Literal["high", "low", "both"] | None = None
    hf_repo: str | None = Field(None, max_length=200, pattern=HF_REPO)
    hf_file: str | None = Field(None, max_length=1024)
    # A branch, tag or commit of the Hugging Face repository; "main" when absent.
    revision: str | None = Field(None, pattern=REVISION)
    civitai_version_id: int | None = Field(None, gt=0, le=2**53)
    url: str | None = Field(None, max_length=4096, pattern=r"^https?://[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if problem := text_problem(value, 255):
            raise ValueError(f"the name {problem}")
        return value

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if problem := name_problem(value):
            raise ValueError(f"the file name {problem}")
        return value

    @field_validator("dest")
    @classmethod
    def _dest(cls, value: str) -> str:
        if problem := _relative_problem(value, reserve=0, allow_empty=True):
            raise ValueError(f"the folder {problem}")
        return value

    @field_validator("hf_file")
    @classmethod
    def _hf_file(cls, value: str | None) -> str | None:
        if value is not None and (problem := _relative_problem(value, reserve=0, allow_empty=False)):
            raise ValueError(f"the repository path {problem}")
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError("the revision must be a branch, tag or commit")
        return value


@dataclass
class Catalog:
    kind: str
    version: int | None
    entries: list[tuple[str, CatalogEntry]] = field(default_factory=list)  # (category id, entry)
    problems: list[str] = field(default_factory=list)

    def find(self, file_name: str) -> tuple[str, CatalogEntry] | None:
        return next(((category, entry) for category, entry in self.entries if entry.file == file_name), None)


def companions(entry: CatalogEntry) -> tuple[list[CatalogEntry], list[str]]:
    """The files an entry needs besides itself (a vision model's mmproj), as entries downloaded
    next to it; and why any listed one cannot be used."""
    raw = (entry.model_extra or {}).get("companions")
    found: list[CatalogEntry] = []
    problems: list[str] = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            problems.append(f"companion {index + 1}: not an object")
            continue
        role = str(item.get("role") or "companion")[:40]
        try:
            found.append(CatalogEntry.model_validate({
                "name": f"{entry.name} ({role})"[:255], "dest": entry.dest, "size_gb": item.get("size_gb", 0.0),
                **{key: item[key] for key in ("file", "source", "hf_repo", "hf_file", "revision", "url", "sha256")
                   if key in item}}))
        except ValidationError as err:
            problems.append(f"companion {index + 1}: {err.errors()[0]['msg']}")
    return found[:8], problems


def find_entry(catalogs: dict[str, Catalog], file_name: str) -> CatalogEntry | None:
    """The first entry, in any catalog, that installs ``file_name``."""
    for catalog in catalogs.values():
        found = catalog.find(file_name)
        if found is not None:
            return found[1]
    return None


def _label(item: Any, index: int) -> str:
    """How a problem names an entry: its name or file, shortened and printable, else its position."""
    if isinstance(item, dict):
        for key in ("name", "file"):
            value = item.get(key)
            if isinstance(value, str) and value:
                shown = value[:80]
                return shown if shown.isprintable() else ascii(shown)
    return f"entry {index + 1}"


def parse_catalog(kind: str, raw: Any) -> Catalog:
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        return Catalog(kind, None, problems=["not a catalog: expected {version, date, categories: [...]}"])
    version = raw.get("version")
    catalog = Catalog(kind, version if isinstance(version, int) and not isinstance(version, bool) else None)
    for position, category in enumerate(raw["categories"]):
        if not isinstance(category, dict):
            catalog.problems.append(f"category {position + 1}: not an object")
            continue
        category_id = str(category.get("id", ""))
        models = category.get("models") or []
        if not isinstance(models, list):
            catalog.problems.append(f"{category_id[:80]}: models: not a list")
            continue
        for index, item in enumerate(models):
            try:
                entry = CatalogEntry.model_validate(item)
                if kind == "llm" and not entry.dest:
                    # The original kept GGUF files outside ComfyUI's models; Studio downloads them to
                    # one folder of the models root, where llama-server is pointed (studio/llm).
                    entry = entry.model_copy(update={"dest": LLM_FOLDER})
                catalog.entries.append((category_id, entry))
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "entry"
                catalog.problems.append(f"{category_id[:80]}/{_label(item, index)}: {where}: {first['msg']}")
    return catalog


def read_user_file(user_dir: Path, name: str) -> bytes | None:
    """The user's copy of a catalog file, None when there is none. A link there (or a ``catalogs``
    folder entry that is not a plain file) raises ``UnsafePath``: never followed."""
    if not lexists_inside(user_dir, user_dir / name):
        return None
    with open_inside(user_dir, user_dir / name, "rb") as handle:
        return handle.read()


def unreadable(name: str, err: BaseException) -> str:
    if isinstance(err, UnsafePath):
        return f"{name} cannot be read: it is a symbolic link or not a file, which Studio does not follow"
    if isinstance(err, RecursionError):
        return f"{name} cannot be read: it is nested too deeply"
    return f"{name} cannot be read: {err}"


def load_catalogs(user_dir: Path, bundled_dir: Path = BUNDLED_DIR) -> dict[str, Catalog]:
    catalogs: dict[str, Catalog] = {}
    for kind, name in CATALOG_FILES.items():
        try:
            data = read_user_file(user_dir, name)
            if data is None:
                bundled = bundled_dir / name
                if not bundled.is_file():
                    catalogs[kind] = Catalog(kind, None)
                    continue
                data = bundled.read_bytes()
            raw = json.loads(data)
        except (OSError, ValueError, RecursionError) as err:
            catalogs[kind] = Catalog(kind, None, problems=[unreadable(name, err)])
            log.warning("catalog %s", catalogs[kind].problems[0])
            continue
        catalogs[kind] = parse_catalog(kind, raw)
        for problem in catalogs[kind].problems:
            log.warning("catalog %s: %s", name, problem)
    return catalogs

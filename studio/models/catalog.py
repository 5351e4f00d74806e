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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent.parent.parent / "catalogs"
CATALOG_FILES = {"models": "models.json", "loras": "loras.json", "llm": "llm.json"}


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    file: str = Field(min_length=1)
    dest: str = ""
    source: Literal["huggingface", "civitai", "url", "direct"] = "url"
    size_gb: float = Field(0.0, ge=0)
    base_model: str | None = None
    tags: list[str] = Field(default_factory=list)
    pair_id: str | None = None
    pair_role: Literal["high", "low", "both"] | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    # A branch, tag or commit of the Hugging Face repository; "main" when absent.
    revision: str | None = Field(None, pattern=r"^[A-Za-z0-9._/-]{1,100}$")
    civitai_version_id: int | None = None
    url: str | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


@dataclass
class Catalog:
    kind: str
    version: int | None
    entries: list[tuple[str, CatalogEntry]] = field(default_factory=list)  # (category id, entry)
    problems: list[str] = field(default_factory=list)

    def find(self, file_name: str) -> tuple[str, CatalogEntry] | None:
        return next(((category, entry) for category, entry in self.entries if entry.file == file_name), None)


def find_entry(catalogs: dict[str, Catalog], file_name: str) -> CatalogEntry | None:
    """The first entry, in any catalog, that installs ``file_name``."""
    for catalog in catalogs.values():
        found = catalog.find(file_name)
        if found is not None:
            return found[1]
    return None


def parse_catalog(kind: str, raw: Any) -> Catalog:
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        return Catalog(kind, None, problems=["not a catalog: expected {version, date, categories: [...]}"])
    catalog = Catalog(kind, raw.get("version") if isinstance(raw.get("version"), int) else None)
    for category in raw["categories"]:
        category_id = str((category or {}).get("id", "")) if isinstance(category, dict) else ""
        for index, item in enumerate((category or {}).get("models") or [] if isinstance(category, dict) else []):
            label = item.get("name") or item.get("file") or f"entry {index + 1}" if isinstance(item, dict) else index
            try:
                catalog.entries.append((category_id, CatalogEntry.model_validate(item)))
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                catalog.problems.append(f"{category_id}/{label}: {where}: {first['msg']}")
    return catalog


def load_catalogs(user_dir: Path, bundled_dir: Path = BUNDLED_DIR) -> dict[str, Catalog]:
    catalogs: dict[str, Catalog] = {}
    for kind, name in CATALOG_FILES.items():
        path = user_dir / name if (user_dir / name).is_file() else bundled_dir / name
        if not path.is_file():
            catalogs[kind] = Catalog(kind, None)
            continue
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            catalogs[kind] = Catalog(kind, None, problems=[f"{path.name} cannot be read: {err}"])
            continue
        catalogs[kind] = parse_catalog(kind, raw)
        for problem in catalogs[kind].problems:
            log.warning("catalog %s: %s", path.name, problem)
    return catalogs

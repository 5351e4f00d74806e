"""The data folder (``STUDIO_DIR``) and its layout, kept compatible with the original so an
existing volume keeps working. Studio writes nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def repo(self) -> Path:
        return self.root / ".repo"

    @property
    def catalogs(self) -> Path:
        return self.root / "catalogs"

    @property
    def workflows(self) -> Path:
        return self.root / "workflows"

    @property
    def presets(self) -> Path:
        return self.root / "presets"

    @property
    def inputs(self) -> Path:
        return self.root / "assets" / "input"

    @property
    def outputs(self) -> Path:
        return self.root / "assets" / "output"

    @property
    def gallery(self) -> Path:
        return self.root / "gallery"

    @property
    def db(self) -> Path:
        return self.root / "db"

    @property
    def llm(self) -> Path:
        return self.root / "llm"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secrets(self) -> Path:
        """Signing keys; mode 0700, never served."""
        return self.root / "secrets"

    @property
    def version_file(self) -> Path:
        return self.root / "version.json"

    def folders(self) -> list[Path]:
        return [
            self.repo,
            self.catalogs,
            self.workflows,
            self.presets,
            self.inputs,
            self.outputs / "studio",
            self.gallery,
            self.db,
            self.llm,
            self.logs,
            self.secrets,
        ]

    def ensure(self) -> list[Path]:
        """Create whatever is missing; returns the folders that were created."""
        created = []
        for folder in self.folders():
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                created.append(folder)
        self.secrets.chmod(0o700)
        return created

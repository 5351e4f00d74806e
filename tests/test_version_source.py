"""/api/health names the version of the code that runs, also for a release folder on the volume."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import studio

ROOT = Path(__file__).resolve().parent.parent


def test_a_release_folder_reports_its_own_version_not_the_installed_one(tmp_path: Path) -> None:
    release = tmp_path / "releases" / "0.9.1"
    shutil.copytree(ROOT / "studio", release / "studio", ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "pyproject.toml").read_text().replace(f'version = "{studio.__version__}"', 'version = "0.9.1"', 1)
    assert 'version = "0.9.1"' in text
    (release / "pyproject.toml").write_text(text)
    said = subprocess.run([sys.executable, "-c", "import studio, sys; sys.stdout.write(studio.__version__)"],
                          cwd=release, env={"PYTHONPATH": str(release)}, capture_output=True, text=True, check=True)
    assert said.stdout == "0.9.1"
    (release / "pyproject.toml").write_text('[project]\nname = "something-else"\nversion = "7.0.0"\n')
    said = subprocess.run([sys.executable, "-c", "import studio, sys; sys.stdout.write(studio.__version__)"],
                          cwd=release, env={"PYTHONPATH": str(release)}, capture_output=True, text=True, check=True)
    assert said.stdout != "7.0.0"  # not Studio's project file: the installed metadata speaks instead

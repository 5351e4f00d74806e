import re
from pathlib import Path

import pytest

from studio.config import Settings, environment_names, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_environment_beats_settings_file_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "settings.toml").write_text('studio_port = 9100\ncomfyui_url = "http://from-file:8188/"\n')
    monkeypatch.setenv("STUDIO_DIR", str(tmp_path))
    monkeypatch.setenv("COMFYUI_URL", "http://from-env:8188")

    settings = load_settings()

    assert settings.studio_port == 9100
    assert settings.comfyui_url == "http://from-env:8188"
    assert settings.studio_host == "127.0.0.1"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'db' / 'studio.db'}"


def test_invalid_settings_are_refused_with_the_field_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="comfyui_url"):
        Settings(studio_dir=tmp_path, comfyui_url="ftp://nope")
    with pytest.raises(ValueError, match="studio_port"):
        Settings(studio_dir=tmp_path, studio_port=70000)


def test_secrets_never_print(tmp_path: Path) -> None:
    token = "hf_abcdefghijklmnopqrstuvwxyz"
    settings = Settings(studio_dir=tmp_path, hf_token=token, database_url="postgresql://u:hunter22@db/studio")

    view = settings.public_view()

    assert token not in repr(settings)
    assert token not in str(view)
    assert view["hf_token"] == "hf_a…wxyz"
    assert "hunter22" not in str(view)


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", (ROOT / "docs" / "config.md").read_text(), re.MULTILINE))
    assert set(environment_names()) <= documented, set(environment_names()) - documented
    assert documented <= set(environment_names()), documented - set(environment_names())

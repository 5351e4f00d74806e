"""Studio's one typed settings object.

Precedence is environment > ``STUDIO_DIR/settings.toml`` > defaults. The settings file lives in the
data folder because that folder is what a container keeps on its persistent volume, so a user's
choices survive image upgrades. Every field is documented in ``docs/config.md``; a test checks that.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SETTINGS_FILE_NAME = "settings.toml"


def default_studio_dir() -> Path:
    """The platform's user data folder: where a desktop install keeps its state by default."""
    return Path(platformdirs.user_data_dir("comfyui-studio", appauthor=False))


class SettingsFileSource(PydanticBaseSettingsSource):
    """Reads ``settings.toml`` from the data folder chosen by the sources before it (or the default)."""

    def _path(self) -> Path:
        chosen = self.current_state.get("studio_dir") or default_studio_dir()
        return Path(chosen) / SETTINGS_FILE_NAME

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads the whole file at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self._path()
        if not path.is_file():
            return {}
        try:
            with path.open("rb") as handle:
                values = tomllib.load(handle)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from err
        known = set(self.settings_cls.model_fields)
        return {key.lower(): value for key, value in values.items() if key.lower() in known}


class Settings(BaseSettings):
    """Everything Studio can be told. Field names are the environment variable names, lowercased."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, validate_default=True)

    studio_dir: Path = Field(
        default_factory=default_studio_dir,
        description="The data folder: database, workflows, outputs, logs. Studio never writes outside it.",
    )
    studio_host: str = Field("127.0.0.1", description="Address Studio listens on.")
    studio_port: int = Field(8000, ge=0, le=65535, description="Port Studio listens on (0 picks a free one).")
    comfyui_url: str = Field("http://127.0.0.1:8188", description="Base URL of the ComfyUI server.")
    comfyui_dir: Path | None = Field(None, description="A ComfyUI checkout Studio may start itself.")
    database_url: str | None = Field(
        None, description="Any SQLAlchemy URL; default SQLite at STUDIO_DIR/db/studio.db."
    )
    studio_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level for Studio's own loggers."
    )
    studio_max_body_mb: int = Field(
        64, ge=1, description="Largest request body accepted, in MiB; larger ones get 413."
    )
    comfyui_timeout_s: float = Field(
        10.0, gt=0, description="Timeout for one HTTP call to ComfyUI, in seconds."
    )
    comfyui_reconnect_max_s: float = Field(
        10.0, gt=0, description="Longest wait between attempts to reconnect the ComfyUI socket."
    )
    studio_models_dir: Path | None = Field(
        None, description="The models folder; default COMFYUI_DIR/models, else STUDIO_DIR/models."
    )
    comfyui_extra_model_paths: Path | None = Field(
        None, description="ComfyUI's extra_model_paths.yaml; default COMFYUI_DIR/extra_model_paths.yaml when present."
    )
    comfyui_max_in_flight: int = Field(
        2, ge=1, le=32, description="Jobs handed to ComfyUI at once; the rest wait in Studio's own queue."
    )
    comfyui_outage_grace_s: float = Field(
        120.0, ge=0, le=86400,
        description="How long jobs in ComfyUI wait for it to answer again before they fail, in seconds.",
    )
    studio_requeue_lost_jobs: bool = Field(
        False, description="Queue a job again when ComfyUI lost it (restart) instead of failing it."
    )
    studio_ws_queue_size: int = Field(
        2000, ge=10, description="Events buffered per browser socket before it is told to refetch."
    )
    studio_event_retention_count: int = Field(
        2000, ge=10, description="Most recent activity events kept in the database."
    )
    studio_event_retention_days: float = Field(
        7.0, gt=0, description="Age after which activity events are trimmed, in days."
    )
    studio_telemetry_interval_s: float = Field(
        2.0, gt=0, description="How often CPU, RAM, GPU and disk figures are sampled for the Home page."
    )
    studio_admin_username: str = Field(
        "admin", description="User name of the admin created from STUDIO_ADMIN_PASSWORD."
    )
    studio_admin_password: SecretStr | None = Field(
        None, description="Creates the first admin on first boot (headless installs); hashed, never stored in clear."
    )
    trusted_proxies: str = Field(
        "", description="Comma-separated IPs/CIDRs whose X-Forwarded-For/-Proto/-Host headers are believed."
    )
    studio_allowed_hosts: str = Field(
        "", description="Comma-separated host names Studio answers to besides IP addresses, localhost and this "
        "machine's name (``*.example.com`` matches sub-domains; RunPod: ``<pod id>-8000.proxy.runpod.net``). "
        "Any other Host header gets 421, which stops DNS-rebinding attacks.",
    )
    studio_session_idle_hours: float = Field(72.0, ge=0.25, description="A session unused this long ends.")
    studio_session_max_days: float = Field(30.0, ge=1 / 24, description="A session ends this long after sign-in.")
    # The container's bootstrap and self-update (studio/deploy, docs/deploy.md).
    repo_url: SecretStr | None = Field(None, description="Git repository the container installs and updates "
                                       "Studio from (unset: no bootstrap, no updates); secret: it may hold a token.")
    repo_branch: str = Field("main", max_length=100, description="Branch of REPO_URL that is installed.")
    runtime_version: int = Field(0, ge=0, le=1_000_000, description="The image's runtime version (set by the "
                                 "image); a version.json needing more asks for a newer image.")
    studio_update_health_timeout_s: float = Field(120.0, gt=0, le=3600, description="How long a new release may "
                                                  "take to answer /api/health before it is rolled back, in seconds.")
    hf_endpoint: str = Field("https://huggingface.co", description="The Hugging Face Hub (or a mirror).")
    civitai_endpoint: str = Field("https://civitai.com", description="CivitAI (civitai.com or civitai.red).")
    # Where the two sites the Settings page chooses between are (a mirror, or the tests' local CivitAI).
    civitai_com_url: str = Field("https://civitai.com", description="civitai.com's address (SFW only).")
    civitai_red_url: str = Field("https://civitai.red", description="civitai.red's address (everything).")
    hf_token: SecretStr | None = Field(None, description="Hugging Face access token (secret).")
    civitai_api_key: SecretStr | None = Field(None, description="CivitAI API key (secret).")
    civitai_cache_ttl_s: float = Field(600.0, ge=0, le=7 * 86400,
                                       description="How long CivitAI's answers are remembered, in seconds.")
    civitai_metadata_interval_h: float = Field(24.0, ge=0, le=24 * 365, description="How often local model files "
                                               "are looked up on CivitAI, in hours (0: only when an admin asks).")
    civitai_preview_nsfw_level: int = Field(1, ge=1, le=31, description="Highest CivitAI NSFW level of a model "
                                            "preview picture Studio keeps (1 PG, 2 PG-13, 4 R, 8 X, 16 XXX).")
    telegram_bot_token: SecretStr | None = Field(None, description="Telegram bot token (secret).")
    telegram_api_url: str = Field("https://api.telegram.org",
                                  description="Telegram's Bot API (or a local Bot API server).")
    telegram_public_url: str = Field("", description="Studio's address as a phone reaches it, for links to "
                                     "results too large for Telegram.")
    llm_server_binary: str = Field("", description="Path of llama-server (empty: /opt/llama-server, then PATH, "
                                   "then a packaged CPU build).")
    llm_port: int = Field(0, ge=0, le=65535, description="Port llama-server listens on, on 127.0.0.1 (0: any free "
                          "port).")
    llm_load_timeout_s: float = Field(300.0, gt=0, description="How long a model may take to load before the start "
                                      "counts as failed, in seconds.")
    llm_gpu_policy: Literal["share", "take_turns", "llm_never"] = Field(
        "take_turns", description="Who holds the GPU: share (both stay loaded), take_turns (the LLM leaves before a "
        "job, ComfyUI frees its models before the LLM loads), llm_never (no chat while jobs run or wait).")
    llm_job_wait_s: float = Field(120.0, gt=0, le=3600, description="How long a job waits for a chat to end before "
                                  "the LLM is stopped for it (and a chat for ComfyUI's queue), in seconds.")
    llm_image_max_side: int = Field(1024, ge=64, le=8192, description="Pictures in chat messages are scaled down "
                                    "to this longest side, in pixels, before they reach the model.")
    # Studio's own ComfyUI (studio/comfyui_process): only when COMFYUI_DIR is set.
    comfyui_autostart: bool = Field(True, description="Start ComfyUI from COMFYUI_DIR when Studio starts (false: "
                                    "only when an admin presses Start on the ComfyUI page).")
    comfyui_port: int = Field(8188, ge=0, le=65535, description="Port Studio's own ComfyUI listens on, on "
                              "127.0.0.1 (0: any free port). A ComfyUI already answering there is used instead.")
    comfyui_python: str = Field("", max_length=4096, description="The Python that runs ComfyUI (empty: "
                                "COMFYUI_DIR/venv or .venv when present, else Studio's own).")
    comfyui_args: str = Field("", max_length=4096, description="Extra flags for ComfyUI's main.py, as a shell "
                              "would split them (e.g. ``--lowvram --fast``).")
    comfyui_preview_method: Literal["none", "auto", "latent2rgb", "taesd"] = Field(
        "auto", description="ComfyUI's --preview-method: the live previews a running job shows.")
    comfyui_start_timeout_s: float = Field(600.0, gt=0, le=86400, description="How long ComfyUI may take to "
                                           "answer after a start before it counts as failed, in seconds.")
    comfy_registry_url: str = Field("https://api.comfy.org", max_length=2000, description="The Comfy Registry's "
                                    "API, where node packs are installed from by registry id.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, SettingsFileSource(settings_cls))

    @field_validator("comfyui_url", "hf_endpoint", "civitai_endpoint", "comfy_registry_url", "civitai_com_url",
                     "civitai_red_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
        return value

    @field_validator("studio_dir", mode="after")
    @classmethod
    def _absolute_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def models_dir(self) -> Path:
        if self.studio_models_dir is not None:
            return self.studio_models_dir
        return (self.comfyui_dir / "models") if self.comfyui_dir else self.studio_dir / "models"

    @property
    def extra_model_paths_file(self) -> Path | None:
        if self.comfyui_extra_model_paths is not None:
            return self.comfyui_extra_model_paths
        default = self.comfyui_dir / "extra_model_paths.yaml" if self.comfyui_dir else None
        return default if default is not None and default.is_file() else None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.studio_dir / 'db' / 'studio.db'}"

    def public_view(self) -> dict[str, Any]:
        """The settings as shown to people and logs: secrets masked, never in clear."""
        view: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                view[name] = mask_secret(value.get_secret_value())
            elif name == "database_url" and value:
                view[name] = mask_url_password(value)
            else:
                view[name] = str(value) if isinstance(value, Path) else value
        return view


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_USERINFO = re.compile(r"^[A-Za-z0-9._~%!$&()*+,;=:-]*$")


def url_problem(value: str) -> str | None:
    """Why ``value`` cannot be a server's base URL, read the way requests and websocket-client read
    it; None when it can. A URL only one of them could use would take down the ComfyUI socket."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    if not isinstance(value, str) or len(value) > 2048 or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        return "must be an http:// or https:// address without spaces"
    try:
        parts = parse_url(value)
    except (LocationParseError, ValueError):
        return "is not a valid address"
    if parts.scheme not in ("http", "https") or not value.lower().startswith(("http://", "https://")):
        return "must start with http:// or https://"
    host = parts.host or ""
    if not host:
        return "names no host"
    if parts.port is not None and not 1 <= parts.port <= 65535:
        return "has a port outside 1-65535"
    if parts.query is not None or parts.fragment is not None:
        return "must not have a query or fragment"
    if parts.auth is not None and not _USERINFO.match(parts.auth):
        return "has a user name or password with characters that must be percent-encoded"
    if host.startswith("["):
        return None  # an IPv6 literal: urllib3 checked it
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in host.rstrip(".").split(".")):
        return "has a host name that is not valid"
    return None


def mask_secret(value: str) -> str:
    """``abcd…wxyz`` for long secrets, a bare ``…`` for short ones so nothing useful leaks."""
    if len(value) < 12:
        return "…" if value else ""
    return f"{value[:4]}…{value[-4:]}"


def mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "…"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the process environment, the settings file and ``overrides`` (highest)."""
    return Settings(**overrides)


def environment_names() -> list[str]:
    return [name.upper() for name in Settings.model_fields]


__all__ = ["Settings", "load_settings", "default_studio_dir", "mask_secret", "environment_names"]

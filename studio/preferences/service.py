"""The Settings page's values: validated, stored, audited, applied at once.

Each editable setting starts from Studio's configuration (environment > settings.toml > default)
and may be overridden here. Secrets are kept server-side, answered only masked (``abcd…wxyz``)
and never revealed again; setting one to an empty string removes the stored value.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio.civitai.site import configured_site
from studio.comfy.client import display_url
from studio.comfyui_process.launch import parse_flags
from studio.config import Settings, mask_secret, url_problem
from studio.errors import BadRequest
from studio.events import EventBus
from studio.logs import register_secret
from studio.preferences.models import StoredSetting

SECRET_KEYS = ("civitai_api_key", "hf_token", "telegram_bot_token", "webhook_secret")

log = logging.getLogger(__name__)


class SettingsUpdate(BaseModel):
    """What the Settings page may change; every field optional, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    comfyui_url: str | None = Field(None, max_length=2048)
    # Studio's own ComfyUI (studio/comfyui_process): "" for comfyui_dir means none (COMFYUI_URL is used).
    comfyui_dir: str | None = Field(None, max_length=4096)
    comfyui_python: str | None = Field(None, max_length=4096)
    comfyui_args: str | None = Field(None, max_length=4096)
    comfyui_preview_method: Literal["none", "auto", "latent2rgb", "taesd"] | None = None

    @field_validator("comfyui_dir", "comfyui_python")
    @classmethod
    def _comfyui_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value and (not Path(value).is_absolute() or any(ord(ch) < 32 for ch in value)):
            raise ValueError("must be an absolute path (or empty)")
        return value

    @field_validator("comfyui_args")
    @classmethod
    def _comfyui_flags(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_flags(value)
        except BadRequest as err:
            raise ValueError(err.message) from err
        return value.strip()
    download_concurrency: int | None = Field(None, ge=1, le=8)
    trusted_proxies: str | None = Field(None, max_length=2048)
    # Floors, so that a typo cannot sign everyone out before their next click.
    session_idle_hours: float | None = Field(None, ge=0.25, le=24 * 365)
    session_max_days: float | None = Field(None, ge=1 / 24, le=3650)
    civitai_api_key: str | None = Field(None, max_length=512)
    # Which CivitAI Studio talks to (studio.civitai.site): the SFW site, everything, or CIVITAI_ENDPOINT.
    civitai_site: Literal["com", "red", "configured"] | None = None
    hf_token: str | None = Field(None, max_length=512)
    telegram_bot_token: str | None = Field(None, max_length=512)
    webhook_secret: str | None = Field(None, max_length=512)
    # Hosts webhooks may reach although they resolve to a private or loopback address (a LAN service).
    webhook_allowed_hosts: str | None = Field(None, max_length=2048)
    # Telegram groups that no admin allowed yet: "ask" (listed as a request) or "ignore" (never a word).
    telegram_groups: Literal["ask", "ignore"] | None = None
    # The LLM (studio/llm): the binary, its port, how long a load may take, and who holds the GPU.
    llm_server_binary: str | None = Field(None, max_length=1024)
    llm_port: int | None = Field(None, ge=0, le=65535)
    llm_load_timeout_s: float | None = Field(None, ge=5, le=3600, allow_inf_nan=False)
    llm_gpu_policy: Literal["share", "take_turns", "llm_never"] | None = None
    llm_job_wait_s: float | None = Field(None, ge=1, le=3600, allow_inf_nan=False)

    @field_validator("llm_server_binary")
    @classmethod
    def _binary(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value and (not value.startswith("/") or any(ord(ch) < 32 for ch in value)):
            raise ValueError("must be an absolute path (or empty: found automatically)")
        return value

    @field_validator("comfyui_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [part.strip() for part in value.split(",") if part.strip()]
        for part in parts:
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as err:
                raise ValueError(f"{part!r} is not an IP address or network") from err
        return ", ".join(parts)

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _hosts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [part.strip().lower() for part in value.split(",") if part.strip()]
        for part in parts:
            if not re.fullmatch(r"[a-z0-9.:\[\]_-]{1,253}", part):
                raise ValueError(f"{part[:60]!r} is not a host name or IP address")
        return ", ".join(parts)

    @field_validator("civitai_api_key", "hf_token", "telegram_bot_token", "webhook_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value and (len(value) < 8 or any(ch.isspace() for ch in value)):
            raise ValueError("does not look like a key: at least 8 characters, no spaces")
        return value


def defaults_from(config: Settings) -> dict[str, Any]:
    def secret(name: str) -> str | None:
        value = getattr(config, name, None)
        return value.get_secret_value() if value is not None else None

    return {
        "comfyui_url": config.comfyui_url,
        "comfyui_dir": str(config.comfyui_dir) if config.comfyui_dir else "",
        "comfyui_python": config.comfyui_python,
        "comfyui_args": config.comfyui_args,
        "comfyui_preview_method": config.comfyui_preview_method,
        "download_concurrency": 2,
        "trusted_proxies": config.trusted_proxies,
        "session_idle_hours": config.studio_session_idle_hours,
        "session_max_days": config.studio_session_max_days,
        "civitai_api_key": secret("civitai_api_key"),
        "civitai_site": configured_site(config),
        "hf_token": secret("hf_token"),
        "telegram_bot_token": secret("telegram_bot_token"),
        "webhook_secret": None,
        "webhook_allowed_hosts": "",
        "telegram_groups": "ask",
        "llm_server_binary": config.llm_server_binary,
        "llm_port": config.llm_port,
        "llm_load_timeout_s": config.llm_load_timeout_s,
        "llm_gpu_policy": config.llm_gpu_policy,
        "llm_job_wait_s": config.llm_job_wait_s,
    }


Listener = Callable[[dict[str, Any]], None]


class PreferencesService:
    def __init__(self, engine: Engine, bus: EventBus, config: Settings) -> None:
        self.engine = engine
        self.bus = bus
        self.defaults = defaults_from(config)
        self._stored: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        for key in SECRET_KEYS:
            if self.defaults.get(key):
                register_secret(self.defaults[key])
        _register_url_password(self.defaults.get("comfyui_url"))

    def on_change(self, listener: Listener) -> None:
        """``listener`` gets the effective values whenever an admin saves, and once at ``apply``."""
        self._listeners.append(listener)

    def _load(self) -> dict[str, Any]:
        with self._lock:
            if self._stored is None:
                with Session(self.engine) as session:
                    rows = {row.key: row.value for row in session.exec(select(StoredSetting))}
                self._stored = {key: value for key, value in rows.items() if _still_valid(key, value)}
                for key in SECRET_KEYS:
                    if self._stored.get(key):
                        register_secret(self._stored[key])
                _register_url_password(self._stored.get("comfyui_url"))
            return dict(self._stored)

    def effective(self) -> dict[str, Any]:
        return {**self.defaults, **self._load()}

    def get(self, key: str) -> Any:
        return self.effective()[key]

    def public_view(self) -> dict[str, Any]:
        stored = self._load()
        values: dict[str, Any] = {}
        for key, value in self.effective().items():
            source = "settings page" if key in stored else "configuration"
            if key in SECRET_KEYS:
                values[key] = {"value": mask_secret(value) if value else None, "set": bool(value), "source": source,
                               "secret": True}
            else:
                values[key] = {"value": _shown(key, value), "source": source, "secret": False}
        return {"settings": values}

    def update(self, changes: dict[str, Any], *, actor: str) -> dict[str, Any]:
        try:
            update = SettingsUpdate.model_validate(changes)
        except ValidationError as err:
            fields = {".".join(str(p) for p in e["loc"]) or "body": e["msg"] for e in err.errors()}
            raise BadRequest(f"Invalid value for {', '.join(fields)}.", fields=fields) from err
        given = update.model_dump(exclude_unset=True)
        if not given:
            return self.public_view()
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            for key, value in given.items():
                row = session.get(StoredSetting, key)
                if key not in SECRET_KEYS and value is None:
                    # null: back to the configured value (environment, settings.toml or default).
                    if row is not None:
                        session.delete(row)
                    continue
                row = row or StoredSetting(key=key, value=None)
                if key == "comfyui_url":
                    _register_url_password(value)
                if key in SECRET_KEYS:
                    # An empty string clears the secret, even one that came from the environment.
                    value = value or None
                    if value:
                        register_secret(value)
                row.value, row.updated_at, row.updated_by = value, now, actor
                session.add(row)
            session.commit()
        with self._lock:
            self._stored = None
        self.bus.publish("settings/changed", {
            "actor": actor,
            "changed": sorted(given),
            "values": {k: _shown(k, v) for k, v in given.items() if k not in SECRET_KEYS},
        })
        self.apply()
        return self.public_view()

    def apply(self) -> None:
        """Hand the values to every listener; one that fails is logged and never stops the rest
        (nor Studio's start: a bad stored value must not brick the next ``studio serve``)."""
        values = self.effective()
        for listener in self._listeners:
            try:
                listener(values)
            except Exception:  # noqa: BLE001 - logged; the other listeners and the caller go on
                log.exception("applying settings failed in %s", getattr(listener, "__qualname__", listener))


def _register_url_password(url: Any) -> None:
    """The password inside a ComfyUI URL is a secret like any other: scrubbed from every log line."""
    if isinstance(url, str) and "@" in url:
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
        register_secret(userinfo.partition(":")[2])


def _shown(key: str, value: Any) -> Any:
    """A value as answers and events carry it: a URL's ``user:password@`` never leaves the server."""
    return display_url(value) if key == "comfyui_url" and isinstance(value, str) else value


def _still_valid(key: str, value: Any) -> bool:
    """A stored row is used only if it would be accepted today; otherwise it is ignored, loudly."""
    if key not in SettingsUpdate.model_fields:
        log.warning("ignoring stored setting %r: Studio no longer knows it", key)
        return False
    if value is None:
        if key in SECRET_KEYS:
            return True  # a secret cleared on purpose, even one from the environment
        log.warning("ignoring stored setting %r: it is empty; the configured value applies", key)
        return False
    try:
        SettingsUpdate.model_validate({key: value})
    except ValidationError:
        log.warning("ignoring stored setting %r: its value is no longer valid; the configured value applies", key)
        return False
    return True

"""The app's one CivitAI client and the metadata service, built once per ``Services`` (opens nothing)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from studio.civitai.cache import TTLCache
from studio.civitai.client import CivitaiClient
from studio.civitai.metadata import ModelMetadata
from studio.civitai.previews import PreviewStore
from studio.config import Settings
from studio.events import EventBus
from studio.models.inventory import ModelInventory
from studio.paths import DataDir


def build_civitai(settings: Settings, data_dir: DataDir, engine: Engine, bus: EventBus, inventory: ModelInventory,
                  tokens: Callable[[], dict[str, str]],
                  endpoint: Callable[[], str] | None = None) -> tuple[CivitaiClient, ModelMetadata]:
    """``endpoint``: the site chosen on the Settings page (studio.civitai.site), asked at every request."""
    # A request a person waits on gives up on a 429 after 10 s; the background copy waits longer.
    client = CivitaiClient(endpoint or (lambda: settings.civitai_endpoint), tokens,
                           cache=TTLCache(settings.civitai_cache_ttl_s), retries=2, max_retry_after_s=10.0)
    meta = ModelMetadata(engine, bus, client, inventory.files, PreviewStore(data_dir.root / "civitai" / "previews"),
                         interval_h=settings.civitai_metadata_interval_h,
                         preview_nsfw_level=settings.civitai_preview_nsfw_level)
    return client, meta

"""The services one Studio process holds, built once and shared through ``app.extensions``.

``build_services`` wires objects and opens nothing: no thread, no socket, no connection to
ComfyUI. ``studio.runtime`` starts the background parts when Studio is really served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy.engine import Engine

from studio.auth.guard import Guard
from studio.auth.keys import load_signing_keys
from studio.auth.service import AuthService
from studio.auth.users import UserDirectory
from studio.civitai import site as civitai_site
from studio.civitai.client import CivitaiClient
from studio.civitai.metadata import ModelMetadata
from studio.civitai.wiring import build_civitai
from studio.comfy import ComfyClient, ComfyError, ComfyStream
from studio.comfyui_process import ComfyUIProcess
from studio.comfyui_process.wiring import build_comfyui_process
from studio.config import Settings
from studio.db import create_db_engine
from studio.downloads.credentials import credentials
from studio.downloads.manager import DownloadManager
from studio.events import EVENT_TYPES, EventBus
from studio.events.hub import SocketHub
from studio.events.store import ActivityStore
from studio.gallery.service import GalleryService
from studio.gallery.thumbs import GalleryThumbs
from studio.jobs.engine import JobEngine
from studio.jobs.inputs import InputStore
from studio.jobs.service import JobService
from studio.jobs.thumbnails import Thumbnails
from studio.llm.arbiter import VramArbiter
from studio.llm.conversations import Conversations
from studio.llm.presets import PromptPresets
from studio.llm.server import LlamaServer
from studio.models.catalog import LLM_FOLDER, Catalog, load_catalogs
from studio.models.extra_paths import read_extra_model_paths
from studio.models.inventory import ModelInventory
from studio.models.listing import list_catalogs, pairs
from studio.models.storage import ModelsRoot
from studio.nodepacks.registry import RegistryClient
from studio.nodepacks.service import NodePackService
from studio.paths import DataDir
from studio.preferences.service import PreferencesService
from studio.presets.service import PresetService
from studio.presets.store import PresetStore
from studio.schedules.service import ScheduleService
from studio.system.bridge import ComfyBridge
from studio.system.service import SystemService
from studio.system.telemetry import TelemetrySampler
from studio.telegram.bot import TelegramBot
from studio.telegram.chats import ChatDirectory
from studio.telegram.commands import Commands
from studio.telegram.dialog import Dialog
from studio.webhooks.service import WebhookService
from studio.workflows.comfyfacts import comfy_facts
from studio.workflows.importer import WorkflowImporter
from studio.workflows.library import WorkflowLibrary
from studio.workflows.runnable import current_workflow


@dataclass
class Services:
    settings: Settings
    data_dir: DataDir
    engine: Engine
    bus: EventBus
    hub: SocketHub
    activity: ActivityStore
    comfy: ComfyClient
    stream: ComfyStream
    bridge: ComfyBridge
    telemetry: TelemetrySampler
    system: SystemService
    auth: AuthService
    users: UserDirectory
    guard: Guard
    preferences: PreferencesService
    library: WorkflowLibrary
    importer: WorkflowImporter
    inputs: InputStore
    jobs: JobService
    job_engine: JobEngine
    models_root: ModelsRoot
    inventory: ModelInventory
    downloads: DownloadManager
    presets: PresetService
    started_at: float = field(default_factory=time.time)
    # Built after the others (they need ``presets`` and each other); set by ``build_services``.
    webhooks: WebhookService = field(init=False, repr=False)
    schedules: ScheduleService = field(init=False, repr=False)
    telegram: TelegramBot = field(init=False, repr=False)
    llm: LlamaServer = field(init=False, repr=False)
    arbiter: VramArbiter = field(init=False, repr=False)  # who holds the GPU: jobs or the LLM (studio/llm)
    conversations: Conversations = field(init=False, repr=False)
    prompt_presets: PromptPresets = field(init=False, repr=False)
    civitai: CivitaiClient = field(init=False, repr=False)  # the one CivitAI client (studio/civitai)
    civitai_meta: ModelMetadata = field(init=False, repr=False)
    gallery: GalleryService = field(init=False, repr=False)  # the index of everything made (studio/gallery)
    comfyui_process: ComfyUIProcess = field(init=False, repr=False)  # the ComfyUI Studio runs itself
    nodepacks: NodePackService = field(init=False, repr=False)  # custom_nodes: list, install, set aside

    def catalogs(self) -> dict[str, Catalog]:
        return load_catalogs(self.data_dir.catalogs)

    def use_comfy_url(self, url: str | None) -> None:
        """Points the client, the socket listener and the status probe at ComfyUI's address
        (None: back to the configured COMFYUI_URL)."""
        url = url or self.preferences.get("comfyui_url")
        if url != self.comfy.base_url:
            self.comfy.base_url = url
            self.comfy.invalidate_object_info()
            self.system.set_comfy_url(url)
            self.bridge.url = self.comfy.display_url
            self.stream.set_url(self.comfy.ws_url)

    def apply_preferences(self, values: dict[str, Any]) -> None:
        """Makes Settings-page values take effect in the running services, without a restart."""
        # The ComfyUI Studio runs itself (COMFYUI_DIR) wins over COMFYUI_URL.
        self.use_comfy_url(self.comfyui_process.url or values["comfyui_url"])
        self.comfyui_process.reconfigure()
        self.guard.set_trusted_proxies(values["trusted_proxies"])
        self.auth.idle_timeout = timedelta(hours=values["session_idle_hours"])
        self.auth.max_age = timedelta(days=values["session_max_days"])


def build_services(settings: Settings, *, engine: Engine | None = None) -> Services:
    data_dir = DataDir(settings.studio_dir)
    engine = engine or create_db_engine(settings.effective_database_url)
    bus = EventBus(EVENT_TYPES)
    hub = SocketHub(bus, queue_size=settings.studio_ws_queue_size)
    activity = ActivityStore(
        engine,
        EVENT_TYPES,
        max_count=settings.studio_event_retention_count,
        max_age=timedelta(days=settings.studio_event_retention_days),
    )
    activity.attach(bus)
    comfy = ComfyClient(settings.comfyui_url, timeout_s=settings.comfyui_timeout_s)
    stream = ComfyStream(comfy.ws_url, backoff_max_s=settings.comfyui_reconnect_max_s)
    bridge = ComfyBridge(stream, bus, url=comfy.display_url)
    telemetry = TelemetrySampler(data_dir.root, comfy, stream)
    system = SystemService(settings, data_dir, comfy, stream, telemetry)
    auth = AuthService(
        engine,
        bus,
        signing_keys=load_signing_keys(data_dir.secrets),
        idle_timeout=timedelta(hours=settings.studio_session_idle_hours),
        max_age=timedelta(days=settings.studio_session_max_days),
    )
    users = UserDirectory(engine, bus)
    users.on_deleted(activity.forget_user)
    guard = Guard(settings.trusted_proxies, settings.studio_allowed_hosts)
    preferences = PreferencesService(engine, bus, settings)
    library = WorkflowLibrary(engine, data_dir.workflows)
    importer = WorkflowImporter(library, data_dir.workflows)
    inputs = InputStore(data_dir.inputs)

    def object_info() -> dict[str, Any] | None:
        try:
            return comfy.object_info()
        except ComfyError:
            return None  # validated again by ComfyUI itself when the job is submitted

    extra_file = settings.extra_model_paths_file
    models_root = ModelsRoot(settings.models_dir, tuple(read_extra_model_paths(extra_file)) if extra_file else ())
    inventory = ModelInventory(engine, bus, models_root)

    def lora_pairs(base_model: str | None) -> list[dict[str, Any]]:
        """The LoRA catalog's pairs for a base model: what a lora_picker may choose from."""
        catalogs = load_catalogs(data_dir.catalogs)
        listing, _ = list_catalogs({"loras": catalogs["loras"]}, inventory.files(), {})
        return pairs(listing["loras"]["entries"], base_model)

    jobs = JobService(engine, bus, library, data_dir, object_info, inputs.exists, lora_pairs)
    users.on_deleted(jobs.owner_deleted)
    job_engine = JobEngine(jobs, comfy, stream, bus, data_dir, inputs,
                           max_in_flight=lambda: settings.comfyui_max_in_flight,
                           requeue_lost=settings.studio_requeue_lost_jobs,
                           outage_grace_s=lambda: settings.comfyui_outage_grace_s,
                           before_send=lambda job: built.arbiter.before_job(job))
    def civitai_endpoint() -> str:
        """The CivitAI site chosen on the Settings page (studio.civitai.site), read at every request."""
        return civitai_site.endpoint_of(settings, preferences.get("civitai_site"))

    def tokens() -> dict[str, str]:
        """Each secret only for its own hosts (the CivitAI key for the chosen site alone); read at every
        request so page changes apply at once."""
        return {**credentials(hf_token=preferences.get("hf_token"), civitai_key=None,
                              hf_endpoint=settings.hf_endpoint, civitai_endpoint=civitai_endpoint()),
                **civitai_site.key_for(civitai_endpoint(), preferences.get("civitai_api_key"))}

    def downloaded(path: Path, sha256: str) -> None:
        """A new model: its hash is known already, and ComfyUI's model lists have changed."""
        inventory.record(path, sha256)
        comfy.invalidate_object_info()

    downloads = DownloadManager(engine, bus, models_root, tokens=tokens,
                                hf_token=lambda: preferences.get("hf_token"),
                                hf_endpoint=settings.hf_endpoint, civitai_endpoint=settings.civitai_endpoint,
                                concurrency=lambda: int(preferences.get("download_concurrency")),
                                on_completed=downloaded)
    presets = PresetService(PresetStore(data_dir.presets), library, jobs, bus, engine, data_dir.outputs,
                            facts=lambda: comfy_facts(comfy),
                            current=lambda workflow, facts: current_workflow(importer, bus, workflow, facts))
    presets.attach(bus)
    built = Services(settings, data_dir, engine, bus, hub, activity, comfy, stream, bridge, telemetry, system, auth,
                     users, guard, preferences, library, importer, inputs, jobs, job_engine, models_root, inventory,
                     downloads, presets)
    preferences.on_change(built.apply_preferences)
    built.civitai, built.civitai_meta = build_civitai(settings, data_dir, engine, bus, inventory, tokens,
                                                      civitai_endpoint)
    preferences.on_change(lambda _values: setattr(downloads, "civitai_endpoint", civitai_endpoint()))
    built.gallery = GalleryService(engine, bus, jobs, inputs, GalleryThumbs(
        engine, data_dir.outputs, data_dir.gallery / "thumbs", Thumbnails(engine, data_dir.outputs)))
    built.webhooks = WebhookService(engine, bus, allowed_hosts=lambda: preferences.get("webhook_allowed_hosts"))
    built.webhooks.attach(bus)
    built.schedules = ScheduleService(engine, bus, presets=lambda: built.presets, notifier=built.webhooks)
    built.schedules.attach(bus)
    users.on_deleted(built.schedules.owner_deleted)
    built.telegram = build_telegram(built)
    built.llm = LlamaServer(data_dir.llm, [models_root.root / LLM_FOLDER, data_dir.llm / "models"], bus,
                            lambda: preferences.get("llm_server_binary") or None,
                            lambda: int(preferences.get("llm_port")),
                            load_timeout_s=settings.llm_load_timeout_s)  # the page's value: on_change below
    built.arbiter = VramArbiter(built.llm, comfy, engine, bus, telemetry,
                                policy=lambda: str(preferences.get("llm_gpu_policy")),
                                job_wait_s=lambda: float(preferences.get("llm_job_wait_s")),
                                comfy_connected=lambda: stream.connected, wake_jobs=jobs.wakeup.set)
    preferences.on_change(lambda values: setattr(built.llm, "load_timeout_s", float(values["llm_load_timeout_s"])))
    built.conversations = Conversations(engine)
    built.prompt_presets = PromptPresets(engine)
    built.comfyui_process = build_comfyui_process(settings, data_dir, bus, preferences.effective, built.use_comfy_url)
    built.nodepacks = NodePackService(
        comfyui_dir=lambda: built.comfyui_process.comfyui_dir, python=lambda: str(built.comfyui_process.python),
        restart=built.comfyui_process.restart, bus=bus, logs_dir=data_dir.logs / "nodepacks", object_info=object_info,
        registry=RegistryClient(settings.comfy_registry_url))
    preferences.on_change(built.telegram.on_settings)
    # ComfyUI may come back with other custom nodes (a restart) or other model files.
    bus.subscribe(lambda event: comfy.invalidate_object_info()
                  if event.type == "comfy/connection" and event.payload.get("connected") else None)
    return built


def build_telegram(built: Services) -> TelegramBot:
    """The bot, wired to the same services the API uses; it polls only once the runtime enables it."""
    chats = ChatDirectory(built.engine)

    def cancel(job_id: str, actor: Any) -> dict[str, Any]:
        built.job_engine.cancel(built.jobs.owned(job_id, actor=actor))
        return built.jobs.get(job_id, actor=actor)

    def resend(bot: Any, chat: Any, identity: Any, job_id: str) -> None:
        telegram.resend(bot, chat, identity, job_id)

    commands = Commands(chats, built.jobs, built.telemetry.latest, cancel, resend)
    dialog = Dialog(chats, built.presets, built.inputs, commands, lambda: str(built.preferences.get("telegram_groups")))
    telegram = TelegramBot(chats, dialog, built.bus, built.data_dir.outputs, api_url=built.settings.telegram_api_url,
                           public_url=built.settings.telegram_public_url)
    return telegram


def services() -> Services:
    """The current app's services, for route handlers."""
    found: Services = current_app.extensions["studio"]
    return found

"""``create_app``: wiring only. It starts no thread and opens no socket, so tests can build as
many apps as they like, and ``studio.runtime`` decides what runs in the background."""

from __future__ import annotations

from flask import Flask

from studio.config import Settings
from studio.services import Services, build_services
from studio.web import BoundedIntConverter, StrictJSONProvider, protect_api_answers, register_error_handlers

# Browsers answer a ping within the interval; a socket that stops answering is closed.
WS_PING_INTERVAL_S = 20


class StudioFlask(Flask):
    """Flask with Studio's strict JSON (see ``studio.jsonio``) for every body read and written."""

    json_provider_class = StrictJSONProvider


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    app = StudioFlask(__name__, static_folder=None)
    app.url_map.converters["int"] = BoundedIntConverter
    from studio.presets.api import PresetIdConverter
    app.url_map.converters["preset"] = PresetIdConverter
    app.config.update(
        MAX_CONTENT_LENGTH=settings.studio_max_body_mb * 1024 * 1024,
        JSON_SORT_KEYS=False,
        SOCK_SERVER_OPTIONS={"ping_interval": WS_PING_INTERVAL_S, "max_message_size": 64 * 1024},
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["studio"] = services or build_services(settings)
    register_error_handlers(app)
    protect_api_answers(app)

    from studio.apidocs.api import bp as apidocs_bp
    from studio.auth.api import bp as auth_bp
    from studio.auth.api import users_bp
    from studio.auth.guard import install_guard
    from studio.civitai.api import bp as civitai_bp
    from studio.civitai.imports.api import bp as civitai_imports_bp
    from studio.comfyui_process.api import bp as comfyui_process_bp
    from studio.deploy.api import bp as updates_bp
    from studio.deploy.maintenance import install as install_maintenance
    from studio.downloads.api import bp as downloads_bp
    from studio.events.api import bp as events_bp
    from studio.gallery.api import bp as gallery_bp
    from studio.jobs.api import bp as jobs_bp
    from studio.llm.api import bp as llm_bp
    from studio.llm.chat_api import bp as llm_chats_bp
    from studio.llm.presets_api import bp as llm_presets_bp
    from studio.models.api import bp as models_bp
    from studio.nodepacks.api import bp as nodepacks_bp
    from studio.pages import bp as pages_bp
    from studio.preferences.api import bp as preferences_bp
    from studio.presets.api import bp as presets_bp
    from studio.runpage.api import bp as runpage_bp
    from studio.schedules.api import bp as schedules_bp
    from studio.system.api import bp as system_bp
    from studio.telegram.api import bp as telegram_bp
    from studio.webhooks.api import bp as webhooks_bp
    from studio.workflows.api import bp as workflows_bp

    install_maintenance(app, settings.studio_dir)  # an update's 503s come before every other check
    install_guard(app, app.extensions["studio"].guard)
    app.register_blueprint(auth_bp)
    app.register_blueprint(apidocs_bp)
    app.register_blueprint(users_bp)
    app.register_blueprint(system_bp)
    app.register_blueprint(events_bp)
    app.register_blueprint(preferences_bp)
    app.register_blueprint(workflows_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(gallery_bp)  # after jobs: it shares the jobs' thumbnail maker
    app.register_blueprint(downloads_bp)
    app.register_blueprint(models_bp)
    app.register_blueprint(civitai_bp)
    app.register_blueprint(civitai_imports_bp)
    app.register_blueprint(runpage_bp)
    app.register_blueprint(presets_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(schedules_bp)
    app.register_blueprint(telegram_bp)
    app.register_blueprint(nodepacks_bp)
    app.register_blueprint(comfyui_process_bp)
    app.register_blueprint(llm_bp)
    app.register_blueprint(llm_chats_bp)
    app.register_blueprint(llm_presets_bp)
    app.register_blueprint(updates_bp)
    app.register_blueprint(pages_bp)
    return app

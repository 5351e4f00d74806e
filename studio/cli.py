"""``studio`` / ``python -m studio``: serve, db upgrade, doctor; the HTTP client commands (studio/client)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from studio import __version__
from studio.client.commands import add_commands as add_client_commands
from studio.config import Settings, load_settings
from studio.deploy.cli import add_commands as add_deploy_commands

log = logging.getLogger("studio.cli")


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except (ValidationError, ValueError) as err:
        sys.stderr.write(f"studio: invalid settings:\n{err}\n")
        raise SystemExit(2) from err


def cmd_serve(args: argparse.Namespace) -> int:
    from studio.app import create_app
    from studio.db import upgrade
    from studio.logs import configure_logging
    from studio.paths import DataDir
    from studio.runtime import Runtime
    from studio.services import build_services

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["studio_host"] = args.host
    if args.port is not None:
        overrides["studio_port"] = args.port
    settings = load_settings(**overrides) if overrides else _settings_or_exit()
    data_dir = DataDir(settings.studio_dir)
    created = data_dir.ensure()
    configure_logging(settings, data_dir.logs)
    if created:
        log.info("created data folder %s", settings.studio_dir)
    services = build_services(settings)
    upgrade(services.engine)
    bootstrap_admin(services)
    app = create_app(settings, services)
    runtime = Runtime(app, services)
    runtime.bind(settings.studio_host, settings.studio_port)
    runtime.start_background()
    services.bus.publish("system/started", {"version": __version__, "port": runtime.port})
    log.info("Studio %s on http://%s:%d (ComfyUI at %s)", __version__, settings.studio_host, runtime.port,
             settings.comfyui_url)

    def _shutdown(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _shutdown)
    try:
        runtime.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        runtime.stop()
    return 0


def bootstrap_admin(services: Any) -> None:
    """Headless installs: STUDIO_ADMIN_PASSWORD creates the first admin (hashed) on first boot."""
    from studio.errors import StudioError

    password = services.settings.studio_admin_password
    if password is None or not services.users.setup_needed():
        return
    try:
        services.users.setup_admin(services.settings.studio_admin_username, password.get_secret_value())
    except StudioError as err:
        log.error("STUDIO_ADMIN_PASSWORD was not used: %s", err.message)
        return
    log.info("created admin %r from STUDIO_ADMIN_PASSWORD", services.settings.studio_admin_username)


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("studio: the passwords differ")
    return first


def cmd_user_create(args: argparse.Namespace) -> int:
    from studio.auth.models import Role
    from studio.db import upgrade
    from studio.errors import StudioError
    from studio.paths import DataDir
    from studio.services import build_services

    settings = _settings_or_exit()
    DataDir(settings.studio_dir).ensure()
    services = build_services(settings)
    upgrade(services.engine)
    try:
        user = services.users.create_user(args.username, _read_password(args), Role.ADMIN if args.admin else Role.USER,
                                         actor="cli")
    except StudioError as err:
        sys.stderr.write(f"studio: {err.message}\n")
        return 1
    sys.stdout.write(f"created {user['role']} {user['username']}\n")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from studio.auth.keys import rotate_signing_key
    from studio.paths import DataDir

    settings = _settings_or_exit()
    rotate_signing_key(DataDir(settings.studio_dir).secrets)
    sys.stdout.write("session signing key rotated; restart Studio to use it\n")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from studio.db import create_db_engine, current_revision, upgrade
    from studio.paths import DataDir

    settings = _settings_or_exit()
    DataDir(settings.studio_dir).ensure()
    engine = create_db_engine(settings.effective_database_url)
    upgrade(engine, args.revision)
    sys.stdout.write(f"database at revision {current_revision(engine)}\n")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Checks a person can run when something is off; exits non-zero if anything failed."""
    from studio.comfy import ComfyClient, ComfyError
    from studio.db import create_db_engine, current_revision

    settings = _settings_or_exit()
    checks: list[dict[str, Any]] = []
    checks.append({"check": "settings", "ok": True, "detail": settings.public_view()})
    try:
        engine = create_db_engine(settings.effective_database_url)
        checks.append({"check": "database", "ok": True, "detail": {"revision": current_revision(engine)}})
    except Exception as err:  # noqa: BLE001 - doctor reports every failure instead of stopping at the first
        checks.append({"check": "database", "ok": False, "detail": f"{err.__class__.__name__}: {err}"})
    try:
        stats = ComfyClient(settings.comfyui_url, timeout_s=3).system_stats()
        checks.append({"check": "comfyui", "ok": True, "detail": stats.get("system", {}).get("comfyui_version")})
    except ComfyError as err:
        checks.append({"check": "comfyui", "ok": False, "detail": str(err)})
    report = {"version": __version__, "checks": checks}
    sys.stdout.write(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    return 0 if all(check["ok"] for check in checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="ComfyUI Studio")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run Studio (HTTP, WebSocket and background work)")
    serve.add_argument("--host", help="override STUDIO_HOST")
    serve.add_argument("--port", type=int, help="override STUDIO_PORT (0 picks a free port)")
    serve.set_defaults(handler=cmd_serve)
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(handler=cmd_db_upgrade)
    user = commands.add_parser("user", help="manage accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_create = user_commands.add_parser("create", help="create an account")
    user_create.add_argument("username")
    user_create.add_argument("--admin", action="store_true", help="with the admin role")
    user_create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user_create.set_defaults(handler=cmd_user_create)
    keys = commands.add_parser("rotate-session-key", help="sign new session cookies with a fresh key")
    keys.set_defaults(handler=cmd_rotate_key)
    doctor = commands.add_parser("doctor", help="check settings, database and ComfyUI")
    doctor.set_defaults(handler=cmd_doctor)
    from studio.desktop.main import add_arguments as add_desktop_arguments
    from studio.desktop.main import launch_from_args as cmd_desktop

    desktop = commands.add_parser("desktop", help="Studio in a native window: here, or --remote URL (docs/desktop.md)")
    add_desktop_arguments(desktop)
    desktop.set_defaults(handler=cmd_desktop)
    add_client_commands(commands)  # run, jobs, presets, workflows, download, mcp: HTTP only (studio/client)
    add_deploy_commands(commands)  # bootstrap, supervise, update: the container's (studio/deploy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))

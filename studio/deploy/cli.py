"""``studio bootstrap``, ``studio supervise`` and ``studio update``: the container's commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from studio.deploy.layout import Layout, read_json, repo_url_of, say, write_json
from studio.deploy.version import COMPONENTS

FOLLOW_TIMEOUT_S = 3600


def _settings() -> Any:
    from studio.cli import _settings_or_exit

    return _settings_or_exit()


def _source(settings: Any) -> Any:
    from studio.deploy.check import RepoSource

    return RepoSource(repo_url_of(settings), settings.repo_branch, settings.runtime_version)


def cmd_bootstrap(_args: argparse.Namespace) -> int:
    from studio.deploy.bootstrap import BootstrapError, BootstrapOptions, bootstrap

    settings = _settings()
    options = BootstrapOptions(settings.studio_dir, repo_url_of(settings), settings.repo_branch,
                               settings.runtime_version)
    try:
        bootstrap(options)
    except BootstrapError as err:
        say("bootstrap", f"failed: {err}")
        return err.exit_code
    return 0


def cmd_supervise(_args: argparse.Namespace) -> int:
    from studio.deploy.supervisor import SuperviseOptions, Supervisor

    settings = _settings()
    options = SuperviseOptions(str(settings.studio_dir), settings.studio_port, settings.effective_database_url,
                               _source(settings), settings.studio_update_health_timeout_s)
    return Supervisor(options).run()


def cmd_update(args: argparse.Namespace) -> int:
    from studio.deploy.check import check
    from studio.deploy.gitrepo import GitError
    from studio.deploy.supervisor import supervisor_alive

    settings = _settings()
    layout = Layout(settings.studio_dir)
    try:
        found = check(layout, _source(settings))
    except GitError as err:
        say("update", f"check failed: {err}")
        return 1
    for row in found["components"]:
        mark = "update" if row["update"] else "same"
        say("update", f"{row['component']:<11} {row['local']!s:>10} → {row['remote']!s:<10} {mark}")
    if found["blocked"]:
        say("update", found["blocked"])
        return 3
    if args.check or not found["available"]:
        say("update", "an update is available" if found["available"] else "up to date")
        return 0
    if not supervisor_alive(layout):
        say("update", "no supervisor runs here (studio supervise): nothing can restart Studio, so nothing changed")
        return 1
    chosen = [name for name in (args.components.split(",") if args.components else COMPONENTS) if name]
    unknown = [name for name in chosen if name not in COMPONENTS]
    if unknown:
        say("update", f"unknown component {unknown[0][:40]!r}; choose from {', '.join(COMPONENTS)}")
        return 2
    started = time.time()
    write_json(layout.root, layout.request_file, {"components": chosen, "wait_for_jobs": not args.now,
                                                 "requested_by": "cli"})
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        record = read_json(layout.update_file)
        if isinstance(record, dict) and float(record.get("started_at") or 0) >= started - 1 \
                and record.get("finished_at"):
            sys.stdout.write(json.dumps(record, indent=2, default=str) + "\n")
            return 0 if record.get("state") in ("done", "nothing_to_do") else 1
        time.sleep(1)
    say("update", "still running; see Settings → Updates")
    return 1


def add_commands(commands: Any) -> None:
    bootstrap = commands.add_parser("bootstrap", help="first boot of a container volume: clone, install, seed")
    bootstrap.set_defaults(handler=cmd_bootstrap)
    supervise = commands.add_parser("supervise", help="run Studio from the current release, restart it, update it")
    supervise.set_defaults(handler=cmd_supervise)
    upd = commands.add_parser("update", help="check for an update and apply it through the supervisor")
    upd.add_argument("--check", action="store_true", help="only check and show the comparison")
    upd.add_argument("--components", help=f"comma-separated, of {', '.join(COMPONENTS)} (default: all)")
    upd.add_argument("--now", action="store_true", help="do not wait for running jobs to finish")
    upd.set_defaults(handler=cmd_update)

"""``studio desktop`` / ``python launcher.py`` / ``python -m studio.desktop``: arguments, the
window, and the restart on another remote chosen in it."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Sequence

from studio.desktop.window import LaunchOptions, Session, qt_environment, run

TOKEN_ENV = "STUDIO_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", metavar="URL",
                        help="open the Studio at URL (a RunPod pod: https://<pod>-8000.proxy.runpod.net) instead of "
                             "starting one here")
    parser.add_argument("--connect", action="store_true", help='open the "Connect to a remote Studio" screen')
    parser.add_argument("--token-stdin", action="store_true",
                        help=f"remote mode: read an API token from stdin instead of signing in (or set {TOKEN_ENV})")


def options_from(args: argparse.Namespace) -> LaunchOptions:
    token = sys.stdin.readline().strip() if args.token_stdin else os.environ.get(TOKEN_ENV, "").strip()
    return LaunchOptions(remote=args.remote, connect=bool(args.connect), token=token or None)


def launch(options: LaunchOptions, ready: Callable[[Session], None] | None = None) -> int:
    """The window until it closes; then, if another remote was chosen in it, the launcher again on
    that remote in place of this process. ``ready``: see ``window.run``."""
    if importlib.util.find_spec("webview") is None:
        sys.stderr.write("studio desktop: the window needs the desktop extra: pip install -e '.[desktop]' "
                         "(or run python launcher.py, which installs it)\n")
        return 2
    qt_environment()
    if options.remote or options.connect:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    outcome = run(options, ready=ready)
    if outcome.relaunch is None:
        return outcome.exit_code
    # Another remote: its own profile means a new webview.start(), which needs a new process.
    next_options = outcome.relaunch
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    if next_options.token:
        env[TOKEN_ENV] = next_options.token  # the environment, not argv: it stays out of the process list
    argv = [sys.executable, "-m", "studio.desktop", "--remote", str(next_options.remote)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def launch_from_args(args: argparse.Namespace) -> int:
    """``studio desktop``'s handler (studio/cli.py)."""
    return launch(options_from(args))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studio desktop", description="ComfyUI Studio in a window")
    add_arguments(parser)
    return launch(options_from(parser.parse_args(argv)))

"""Desktop entry point: ``python launcher.py`` opens Studio in a native window.

Local mode runs Studio in this process on a free loopback port; ``--remote URL`` points the same
window at a Studio running elsewhere (a RunPod pod, say). Needs the ``desktop`` extra
(``pip install -e '.[desktop]'``).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ComfyUI Studio in a window")
    parser.add_argument("--remote", help="URL of a Studio to open instead of starting one here")
    args = parser.parse_args(argv)
    try:
        import webview  # type: ignore[import-not-found]
    except ImportError:
        sys.stderr.write("The desktop window needs pywebview: pip install -e '.[desktop]'\n")
        return 2

    runtime = None
    if args.remote:
        url = args.remote.rstrip("/")
    else:
        from studio.app import create_app
        from studio.config import load_settings
        from studio.db import upgrade
        from studio.logs import configure_logging
        from studio.paths import DataDir
        from studio.runtime import Runtime
        from studio.services import build_services

        settings = load_settings()
        DataDir(settings.studio_dir).ensure()
        configure_logging(settings, DataDir(settings.studio_dir).logs)
        services = build_services(settings)
        upgrade(services.engine)
        runtime = Runtime(create_app(settings, services), services)
        port = runtime.start_in_thread("127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}"

    webview.create_window("ComfyUI Studio", url, width=1360, height=900, min_size=(380, 600))
    try:
        webview.start()
    finally:
        if runtime is not None:
            runtime.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Desktop entry point: ``python launcher.py`` opens Studio in a native window.

Local mode runs Studio in this process on a free loopback port; ``--remote URL`` points the same
window at a Studio running elsewhere (a RunPod pod, say); ``--connect`` opens the screen that asks
for one. On a machine without the ``desktop`` extra it first makes its own environment in
``.venv-desktop`` and restarts itself there (studio/desktop/bootstrap.py). See docs/desktop.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(CHECKOUT))  # the bootstrap must import before Studio is installed anywhere
    from studio.desktop import bootstrap

    failed = bootstrap.ensure(CHECKOUT, Path(__file__).resolve(), argv)
    if failed is not None:
        return failed
    from studio.desktop.main import main as desktop_main

    return desktop_main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

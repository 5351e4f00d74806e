"""``python -m studio.desktop``: the window (see main.py)."""

from studio.desktop.main import main

raise SystemExit(main())

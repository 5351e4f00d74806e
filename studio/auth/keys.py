"""The cookie-signing key: made on first boot, kept 0600 in ``STUDIO_DIR/secrets/``, rotatable.

Rotation keeps the previous key for verification only, so signed-in people are not thrown out
at once; their cookies are re-signed with the new key on their next request.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from studio.safepath import makedirs_durable, write_atomic

KEY_FILE = "session_signing_key"
PREVIOUS_KEY_FILE = "session_signing_key.previous"


def _write_private(path: Path, value: str) -> None:
    """0600, fsynced and renamed into place: a crash never leaves a torn or empty key behind."""
    makedirs_durable(path.parent, mode=0o700)
    os.chmod(path.parent, 0o700)
    write_atomic(path.parent, path, value.encode(), permissions=0o600)


def load_signing_keys(secrets_dir: Path) -> list[str]:
    """Keys for itsdangerous, oldest first: it signs with the last and verifies with all."""
    current = secrets_dir / KEY_FILE
    if not current.is_file():
        _write_private(current, secrets.token_urlsafe(48))
    keys = [current.read_text().strip()]
    previous = secrets_dir / PREVIOUS_KEY_FILE
    if previous.is_file():
        keys.insert(0, previous.read_text().strip())
    return keys


def rotate_signing_key(secrets_dir: Path) -> None:
    current = secrets_dir / KEY_FILE
    if current.is_file():
        _write_private(secrets_dir / PREVIOUS_KEY_FILE, current.read_text().strip())
    _write_private(current, secrets.token_urlsafe(48))

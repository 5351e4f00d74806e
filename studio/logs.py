"""Logging for Studio: to stderr and to ``STUDIO_DIR/logs/studio.log``, with secrets scrubbed.

The redaction filter sits on the handlers, so a secret that reaches any log record (a token in an
exception message, a URL with a key) is replaced before it is written anywhere.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from studio.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


_SECRETS: set[str] = set()
# The ``user:password@`` of any URL (a ComfyUI URL with credentials): never written to a log.
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s\"'?#]+@")


def mask_url_userinfo(text: str, replacement: str = "…") -> str:
    """``http://user:pass@host`` → ``http://…@host``, for every URL inside ``text``."""
    return _URL_USERINFO.sub(replacement + "@", text) if "@" in text else text
_SECRETS_LOCK = threading.Lock()


def register_secret(value: str) -> None:
    """From now on, ``value`` is replaced by ``[redacted]`` in every log line Studio writes."""
    if value and len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        for value in secrets:
            register_secret(value)

    @property
    def secrets(self) -> list[str]:
        with _SECRETS_LOCK:
            return sorted(_SECRETS, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        message = record.getMessage()
        if not secrets and "@" not in message and not record.exc_info:
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = mask_url_userinfo(message, "[redacted]")
        exc_text = mask_url_userinfo(record.exc_text or "", "[redacted]")
        for secret in secrets:
            redacted = redacted.replace(secret, "[redacted]")
            exc_text = exc_text.replace(secret, "[redacted]")
        record.msg, record.args = redacted, None
        record.exc_text = exc_text or None
        return True


class NoFollowRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Never appends through a link planted at ``logs/studio.log`` (a shared volume, a custom node)."""

    def _open(self):  # type: ignore[no-untyped-def]
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.baseFilename, flags, 0o644)
        except OSError as err:
            if os.path.islink(self.baseFilename):
                os.unlink(self.baseFilename)  # our own folder: the link goes, the file it named stays
                fd = os.open(self.baseFilename, flags, 0o644)
            else:
                raise err
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def secret_values(settings: Settings) -> list[str]:
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            values.append(value.get_secret_value())
    return values


def configure_logging(settings: Settings, log_dir: Path | None) -> None:
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    logging.getLogger("studio").setLevel(settings.studio_log_level)
    redact = RedactSecrets(secret_values(settings))
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            NoFollowRotatingFileHandler(log_dir / "studio.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        )
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(redact)
        root.addHandler(handler)
    # Werkzeug logs every request at INFO; keep its warnings and errors only.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

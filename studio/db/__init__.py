"""Database access: engine creation, sessions, retries and migrations. Never imports Flask."""

from studio.db.engine import create_db_engine, session_scope, transition, write_with_retry
from studio.db.migrate import current_revision, upgrade

__all__ = ["create_db_engine", "session_scope", "transition", "write_with_retry", "upgrade", "current_revision"]

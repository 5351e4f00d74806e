"""Account tables. Session ids and API tokens are stored only as SHA-256 digests, so a copy of the
database does not let anyone sign in."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from studio.db.models import utcnow


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class TokenScope(StrEnum):
    FULL = "full"
    # Run workflows and presets, read one's own jobs: enough for a script or a bot, nothing more.
    RUN = "run"


class User(SQLModel, table=True):
    __tablename__ = "user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    role: Role = Field(default=Role.USER, max_length=16)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)


class AuthSession(SQLModel, table=True):
    __tablename__ = "auth_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=255)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=64)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    # The first characters, shown in lists so a person can tell tokens apart.
    prefix: str = Field(max_length=16)
    scope: TokenScope = Field(default=TokenScope.FULL, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins per IP and per account; kept in the database so a restart resets nothing."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=128)
    failures: int = 0
    blocked_until: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)

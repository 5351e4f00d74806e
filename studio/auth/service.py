"""Users, sessions and API tokens: every rule about who may sign in and for how long lives here."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.auth.models import ApiToken, AuthSession, Role, TokenScope, User
from studio.auth.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from studio.auth.throttle import FREE_FAILURES_PER_ACCOUNT, Attempt, LoginThrottler
from studio.db import write_with_retry
from studio.errors import BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized
from studio.events import EventBus

log = logging.getLogger(__name__)

TOKEN_PREFIX = "sst_"
# Refresh ``last_seen_at`` at most this often, so reads do not turn into writes on every request.
TOUCH_EVERY = timedelta(minutes=1)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Identity:
    """Who is making this request, and how they proved it."""

    user_id: int
    username: str
    role: Role
    via: str  # "session" | "token"
    scope: TokenScope = TokenScope.FULL
    session_id_hash: str | None = None
    csrf_token: str | None = None
    token_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN and self.scope is TokenScope.FULL


def user_view(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role.value,
        "disabled": user.disabled,
        "created_at": aware(user.created_at).isoformat(),
    }


def token_view(token: ApiToken) -> dict:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope.value,
        "created_at": aware(token.created_at).isoformat(),
        "expires_at": aware(token.expires_at).isoformat() if token.expires_at else None,
        "last_used_at": aware(token.last_used_at).isoformat() if token.last_used_at else None,
        "revoked": token.revoked_at is not None,
    }


class AuthService:
    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        *,
        signing_keys: list[str],
        idle_timeout: timedelta,
        max_age: timedelta,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.serializer = URLSafeSerializer(signing_keys, salt="studio-session")
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.throttle = LoginThrottler(engine)

    # -- sign in and sessions -------------------------------------------------------------------

    def login(self, username: str, password: str, *, ip: str, user_agent: str | None) -> tuple[str, Identity]:
        attempt = Attempt(ip=ip, username=username)
        with self.throttle.serialised(attempt):
            return self._login(attempt, username, password, ip=ip, user_agent=user_agent)

    def _login(self, attempt: Attempt, username: str, password: str, *, ip: str,
               user_agent: str | None) -> tuple[str, Identity]:
        wait = self.throttle.retry_after_s(attempt)
        if wait:
            log.warning("sign-in as %r from %s refused for %d s (too many failures)", username[:64], ip, wait)
            self.bus.publish("auth/login_failed", {"username": username[:64], "ip": ip, "reason": "rate_limited"})
            raise TooManyRequests(f"Too many failed sign-ins. Try again in {wait} s.", retry_after_s=wait)
        with Session(self.engine) as session:
            user = session.exec(select(User).where(func.lower(User.username) == username.strip().lower())).first()
        valid = verify_password(password, user.password_hash if user else DUMMY_HASH)
        if not user or not valid or user.disabled:
            failure = self.throttle.failed(attempt)
            log.warning("failed sign-in as %r from %s (next delay %d s)", username[:64], ip, failure.delay_s)
            if failure.account_alert:
                log.warning("account %r is being guessed from many addresses", username[:64])
                self.bus.publish("auth/account_attacked", {"username": username[:64], "ip": ip,
                                                           "failures": FREE_FAILURES_PER_ACCOUNT + 1})
            self.bus.publish("auth/login_failed", {"username": username[:64], "ip": ip,
                                                   "reason": "disabled" if user and valid else "bad_credentials"})
            raise Unauthorized("Wrong user name or password.", code="bad_credentials")
        self.throttle.succeeded(attempt)
        log.info("%s signed in from %s", user.username, ip)
        assert user.id is not None
        if needs_rehash(user.password_hash):
            self._rehash(user.id, password)
        cookie, identity = self._new_session(user, ip=ip, user_agent=user_agent)
        self.bus.publish("auth/login", {"username": user.username, "ip": ip})
        return cookie, identity

    def _rehash(self, user_id: int, password: str) -> None:
        def work(session: Session) -> None:
            user = session.get(User, user_id)
            if user is not None:
                user.password_hash = hash_password(password)
                session.add(user)

        write_with_retry(self.engine, work)

    def _new_session(self, user: User, *, ip: str, user_agent: str | None) -> tuple[str, Identity]:
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = AuthSession(
            id_hash=digest(session_id),
            user_id=user.id or 0,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.max_age,
            ip=ip[:64],
            user_agent=(user_agent or "")[:255] or None,
        )
        write_with_retry(self.engine, lambda session: session.add(row))
        identity = Identity(user.id or 0, user.username, user.role, "session", session_id_hash=row.id_hash,
                            csrf_token=row.csrf_token)
        return self.serializer.dumps(session_id), identity

    def resolve_cookie(self, cookie: str) -> Identity | None:
        try:
            session_id = self.serializer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(session_id, str):
            return None
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            row = session.get(AuthSession, digest(session_id))
            if row is None or row.revoked_at is not None:
                return None
            user = session.get(User, row.user_id)
        if user is None or user.disabled:
            return None
        if aware(row.expires_at) <= now or aware(row.last_seen_at) + self.idle_timeout <= now:
            return None
        if now - aware(row.last_seen_at) > TOUCH_EVERY:
            self._touch(row.id_hash, now)
        return Identity(user.id or 0, user.username, user.role, "session", session_id_hash=row.id_hash,
                        csrf_token=row.csrf_token)

    def cookie_needs_resign(self, cookie: str) -> str | None:
        """A cookie signed with a rotated-out key gets re-signed with the current one."""
        try:
            session_id = self.serializer.loads(cookie)
        except BadSignature:
            return None
        fresh = self.serializer.dumps(session_id)
        return fresh if not hmac.compare_digest(fresh, cookie) else None

    def _touch(self, id_hash: str, now: datetime) -> None:
        def work(session: Session) -> None:
            session.execute(update(AuthSession).where(col(AuthSession.id_hash) == id_hash).values(last_seen_at=now))

        write_with_retry(self.engine, work)

    def recheck(self, identity: Identity) -> Identity | None:
        """``identity`` as it stands now, or None once its session or token no longer holds.

        For connections that outlive one request (the live socket): a user disabled or signed
        out, a revoked token, an expired session, or a changed role all show here.
        """
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            user = session.get(User, identity.user_id)
            if user is None or user.disabled:
                return None
            if identity.via == "session":
                row = session.get(AuthSession, identity.session_id_hash or "")
                if row is None or row.revoked_at is not None or aware(row.expires_at) <= now \
                        or aware(row.last_seen_at) + self.idle_timeout <= now:
                    return None
            else:
                token = session.get(ApiToken, identity.token_id or 0)
                if token is None or token.revoked_at is not None or \
                        (token.expires_at is not None and aware(token.expires_at) <= now):
                    return None
        return Identity(identity.user_id, user.username, user.role, identity.via, scope=identity.scope,
                        session_id_hash=identity.session_id_hash, csrf_token=identity.csrf_token,
                        token_id=identity.token_id)

    def logout(self, identity: Identity) -> None:
        if identity.session_id_hash is None:
            return

        def work(session: Session) -> None:
            row = session.get(AuthSession, identity.session_id_hash)
            if row is not None and row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                session.add(row)

        write_with_retry(self.engine, work)
        self.bus.publish("auth/logout", {"username": identity.username})

    # -- API tokens -----------------------------------------------------------------------------

    def create_token(
        self, identity: Identity, *, name: str, scope: TokenScope, expires_at: datetime | None
    ) -> tuple[str, dict]:
        if identity.via == "token":
            raise Forbidden("API tokens cannot create API tokens; sign in on the Account page.")
        if expires_at is not None and aware(expires_at) <= datetime.now(UTC):
            raise BadRequest("The expiry must be in the future.", fields={"expires_at": "in the past"})
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(user_id=identity.user_id, name=name, token_hash=digest(plain), prefix=plain[:10],
                         scope=scope, expires_at=expires_at)

        def work(session: Session) -> dict:
            session.add(token)
            session.flush()
            return token_view(token)

        view = write_with_retry(self.engine, work)
        self.bus.publish("auth/token_created", {"username": identity.username, "name": name, "scope": scope.value})
        return plain, view

    def list_tokens(self, user_id: int) -> list[dict]:
        with Session(self.engine) as session:
            rows = session.exec(select(ApiToken).where(ApiToken.user_id == user_id).order_by(col(ApiToken.id)))
            return [token_view(t) for t in rows]

    def revoke_token(self, identity: Identity, token_id: int) -> None:
        def work(session: Session) -> str:
            token = session.get(ApiToken, token_id)
            if token is None or (token.user_id != identity.user_id and not identity.is_admin):
                raise NotFound("No such token.")
            token.revoked_at = token.revoked_at or datetime.now(UTC)
            session.add(token)
            return token.name

        name = write_with_retry(self.engine, work)
        self.bus.publish("auth/token_revoked", {"username": identity.username, "name": name})

    def resolve_token(self, plain: str) -> Identity | None:
        if not plain.startswith(TOKEN_PREFIX):
            return None
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            token = session.exec(select(ApiToken).where(ApiToken.token_hash == digest(plain))).first()
            if token is None or token.revoked_at is not None:
                return None
            if token.expires_at is not None and aware(token.expires_at) <= now:
                return None
            user = session.get(User, token.user_id)
        if user is None or user.disabled:
            return None
        if token.last_used_at is None or now - aware(token.last_used_at) > TOUCH_EVERY:
            write_with_retry(self.engine, lambda s: s.execute(
                update(ApiToken).where(col(ApiToken.id) == token.id).values(last_used_at=now)))
        return Identity(user.id or 0, user.username, user.role, "token", scope=token.scope, token_id=token.id)
